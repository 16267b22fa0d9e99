package iiif

// Presentation API 3.0 (https://iiif.io/api/presentation/3.0/): a Manifest
// per item with one Canvas per frame, and a Collection per folder listing
// its sub-folders and items, so a viewer such as Mirador can open a folder
// of slides.

import (
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/tileserver/tileserver/girder/store"
	"github.com/tileserver/tileserver/tilesource"
)

// label is a language map without a language.
func label(s string) map[string][]string { return map[string][]string{"none": {s}} }

// imageService is the reference to an Image API 3.0 service.
func imageService(id string) []map[string]any {
	return []map[string]any{{"id": id, "type": "ImageService3", "profile": "level2"}}
}

// thumbnailSize fits a w×h image into the thumbnail box, never enlarging.
func thumbnailSize(w, h int) (int, int) {
	s := math.Min(1, math.Min(float64(thumbnailBox)/float64(w), float64(thumbnailBox)/float64(h)))
	return max(1, roundPx(float64(w)*s)), max(1, roundPx(float64(h)*s))
}

// thumbnail is a small rendering of an image service, in the canonical
// size form so that every client asks for the same cached bytes.
func thumbnail(svc string, w, h int) []map[string]any {
	tw, th := thumbnailSize(w, h)
	size := fmt.Sprintf("%d,%d", tw, th)
	if tw == w && th == h {
		size = "max"
	}
	return []map[string]any{{
		"id": svc + "/full/" + size + "/0/default.jpg", "type": "Image", "format": "image/jpeg",
		"width": tw, "height": th, "service": imageService(svc),
	}}
}

// frameLabel names frame n: its position on each axis that varies across
// the frames, and its channel when the source names channels.
func frameLabel(in *tilesource.Info, n int) string {
	if n >= len(in.Frames) {
		return fmt.Sprintf("Frame %d", n)
	}
	varies := map[string]bool{}
	for _, f := range in.Frames {
		for k, v := range f {
			if strings.HasPrefix(k, "Index") && len(k) > len("Index") && fmt.Sprint(v) != "0" {
				varies[k] = true
			}
		}
	}
	var keys []string
	for k := range varies {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	f := in.Frames[n]
	var parts []string
	for _, k := range keys {
		part := fmt.Sprintf("%s=%v", strings.ToLower(strings.TrimPrefix(k, "Index")), f[k])
		if c, ok := f[k].(int); ok && k == "IndexC" && c >= 0 && c < len(in.Channels) && in.Channels[c] != "" {
			part += " (" + in.Channels[c] + ")"
		}
		parts = append(parts, part)
	}
	if len(parts) == 0 {
		return fmt.Sprintf("Frame %d", n)
	}
	return fmt.Sprintf("Frame %d: %s", n, strings.Join(parts, ", "))
}

func (h *handler) manifest(c echo.Context, _ int) error {
	img, err := h.resolve(c, c.Param("id"))
	if err != nil {
		return err
	}
	if img.ident != img.item.ID {
		return tilesource.NotFound("Manifests are per item: use %s", img.item.ID)
	}
	if h.cacheHeaders(c, img, "manifest") {
		return nil
	}
	in := &img.info
	base := baseURL(c) + Prefix + "/3/" + img.item.ID
	id := base + "/manifest"
	n := in.FrameCount()
	canvases := make([]map[string]any, n)
	for i := range n {
		frame := i
		name := img.item.Name
		if n == 1 {
			frame = -1
		} else {
			name = frameLabel(in, i)
		}
		svc := serviceURL(c, 3, identifier(img.item.ID, frame))
		canvasID := fmt.Sprintf("%s/canvas/%d", base, i)
		canvases[i] = map[string]any{
			"id": canvasID, "type": "Canvas", "label": label(name),
			"width": in.SizeX, "height": in.SizeY,
			"thumbnail": thumbnail(svc, in.SizeX, in.SizeY),
			"items": []map[string]any{{
				"id": fmt.Sprintf("%s/page/%d", base, i), "type": "AnnotationPage",
				"items": []map[string]any{{
					"id": fmt.Sprintf("%s/annotation/%d", base, i), "type": "Annotation",
					"motivation": "painting", "target": canvasID,
					"body": map[string]any{
						"id": svc + "/full/max/0/default.jpg", "type": "Image", "format": "image/jpeg",
						"width": in.SizeX, "height": in.SizeY, "service": imageService(svc),
					},
				}},
			}},
		}
	}
	m := map[string]any{
		"@context":  presentation3,
		"id":        id,
		"type":      "Manifest",
		"label":     label(img.item.Name),
		"thumbnail": thumbnail(serviceURL(c, 3, img.item.ID), in.SizeX, in.SizeY),
		"items":     canvases,
	}
	if mm := in.MMX; mm != nil && *mm > 0 {
		m["metadata"] = []map[string]any{{
			"label": label("Pixel size"), "value": label(fmt.Sprintf("%g µm", *mm*1000)),
		}}
	}
	return sendJSON(c, http.StatusOK, jsonLDOrJSON(c, presentation3), m)
}

// jsonLDOrJSON is the content type of a Presentation document: JSON-LD
// with its context when the client asks for it, JSON otherwise.
func jsonLDOrJSON(c echo.Context, ctx string) string {
	c.Response().Header().Set("Vary", "Accept")
	if wantsJSONLD(c) {
		return mimeJSONLD + `;profile="` + ctx + `"`
	}
	return mimeJSON
}

// collectionURL is the URL of a folder's collection.
func collectionURL(c echo.Context, folderID string) string {
	return baseURL(c) + Prefix + "/3/collection/" + folderID
}

// rootCollection lists the top folders of the slide root.
func (h *handler) rootCollection(c echo.Context, _ int) error {
	var items []map[string]any
	for _, f := range h.cfg.Store.Folders("collection", store.CollectionID) {
		items = append(items, map[string]any{"id": collectionURL(c, f.ID), "type": "Collection", "label": label(f.Name)})
	}
	return sendJSON(c, http.StatusOK, jsonLDOrJSON(c, presentation3), map[string]any{
		"@context": presentation3,
		"id":       baseURL(c) + Prefix + "/3/collection",
		"type":     "Collection",
		"label":    label("Slides"),
		"items":    nonNil(items),
	})
}

// collection lists a folder's sub-folders (as collections) and items (as
// manifests).
func (h *handler) collection(c echo.Context, _ int) error {
	id := c.Param("folder")
	f, ok := h.cfg.Store.Folder(id)
	if !ok {
		return tilesource.NotFound("Unknown folder %q", id)
	}
	var items []map[string]any
	for _, sub := range h.cfg.Store.Folders("folder", f.ID) {
		items = append(items, map[string]any{"id": collectionURL(c, sub.ID), "type": "Collection", "label": label(sub.Name)})
	}
	for _, it := range h.cfg.Store.Items(store.ItemQuery{FolderID: f.ID}) {
		svc := serviceURL(c, 3, it.ID)
		items = append(items, map[string]any{
			"id": baseURL(c) + Prefix + "/3/" + it.ID + "/manifest", "type": "Manifest", "label": label(it.Name),
			// The size is not known without opening the slide; the
			// confined form needs none.
			"thumbnail": []map[string]any{{
				"id":   svc + fmt.Sprintf("/full/!%d,%d/0/default.jpg", thumbnailBox, thumbnailBox),
				"type": "Image", "format": "image/jpeg", "service": imageService(svc),
			}},
		})
	}
	return sendJSON(c, http.StatusOK, jsonLDOrJSON(c, presentation3), map[string]any{
		"@context": presentation3,
		"id":       collectionURL(c, f.ID),
		"type":     "Collection",
		"label":    label(f.Name),
		"items":    nonNil(items),
	})
}

func nonNil(items []map[string]any) []map[string]any {
	if items == nil {
		return []map[string]any{}
	}
	return items
}
