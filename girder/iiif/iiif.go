// Package iiif serves every item over the IIIF Image API 3.0 and 2.1 at
// compliance level 2 (https://iiif.io/api/image/3.0/,
// https://iiif.io/api/image/2.1/) and describes items and folders with the
// IIIF Presentation API 3.0 (https://iiif.io/api/presentation/3.0/), so IIIF
// viewers such as Mirador and OpenSeadragon's IIIF tile source open them.
//
// Handlers parse the IIIF path, resolve it against the image size and call
// the pipeline: a request that is exactly one stored tile is the pipeline's
// tile (the same cache entry and JPEG passthrough as the large_image zxy
// route); anything else is the pipeline's region path plus the final
// resize, mirror, rotation and quality, cached under its own key.
//
// Identifiers are the item id, which names the item's first frame, and
// {itemId}~{frame} for frame n (0-based) of a multi-frame item.
package iiif

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/tileserver/tileserver/girder/store"
	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/pipeline"
)

// Core is the part of the pipeline the IIIF routes call;
// *pipeline.Pipeline implements it.
type Core interface {
	SourceInfo(ctx context.Context, loc pipeline.Locator) (tilesource.Info, error)
	Tile(ctx context.Context, loc pipeline.Locator, req pipeline.TileRequest) (*pipeline.Result, error)
	Transform(ctx context.Context, loc pipeline.Locator, req pipeline.TransformRequest) (*pipeline.Result, error)
}

// Locate finds an item by id and returns it with the pipeline's locator
// (the same resolution the large_image routes use).
type Locate func(id string) (store.Item, pipeline.Locator, error)

// Config wires the IIIF routes to the server.
type Config struct {
	Core   Core
	Store  *store.Store
	Locate Locate
	// MaxAge is the Cache-Control max-age of images and info.json, in
	// seconds; 0 means 3600.
	MaxAge int
	// Logger receives server-side failures; nil means slog.Default().
	Logger *slog.Logger
}

// Prefix is where the routes live: Prefix+"/3/…" and Prefix+"/2/…".
const Prefix = "/iiif"

// Specification URIs.
const (
	context3       = "http://iiif.io/api/image/3/context.json"
	context2       = "http://iiif.io/api/image/2/context.json"
	presentation3  = "http://iiif.io/api/presentation/3/context.json"
	protocol       = "http://iiif.io/api/image"
	level2Profile3 = "http://iiif.io/api/image/3/level2.json"
	level2Profile2 = "http://iiif.io/api/image/2/level2.json"
)

const (
	// frameSeparator joins an item id and a frame number in an
	// identifier; "~" is unreserved in URLs, so it needs no escaping.
	frameSeparator = "~"
	// thumbnailBox bounds the thumbnails of manifests and collections.
	thumbnailBox    = 256
	defaultMaxAgeS  = 3600
	mimeJSON        = "application/json"
	mimeJSONLD      = "application/ld+json"
	allowMethods    = "GET, HEAD, OPTIONS"
	errorMIME       = "text/plain; charset=utf-8"
	headerTileCache = "X-Tile-Cache"
)

type handler struct {
	cfg Config
	log *slog.Logger
}

// Register mounts the IIIF routes on e.
func Register(e *echo.Echo, cfg Config) {
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = defaultMaxAgeS
	}
	h := &handler{cfg: cfg, log: cfg.Logger}
	if h.log == nil {
		h.log = slog.Default()
	}
	preflight := func(c echo.Context) error {
		setCORS(c)
		c.Response().Header().Set("Access-Control-Max-Age", "86400")
		return c.NoContent(http.StatusNoContent)
	}
	// Every route answers GET and HEAD, and CORS preflights itself (echo
	// would otherwise answer OPTIONS without the CORS headers).
	route := func(path string, version int, fn func(echo.Context, int) error) {
		e.Match([]string{http.MethodGet, http.MethodHead}, path, h.wrap(version, fn))
		e.OPTIONS(path, preflight)
	}
	for _, v := range []int{2, 3} {
		base := fmt.Sprintf("%s/%d", Prefix, v)
		route(base+"/:id", v, h.redirect)
		route(base+"/:id/info.json", v, h.info)
		route(base+"/:id/:region/:size/:rotation/:qf", v, h.image)
		route(base+"/*", v, func(echo.Context, int) error {
			return badRequest("Malformed IIIF request")
		})
	}
	route(Prefix+"/3/:id/manifest", 3, h.manifest)
	route(Prefix+"/3/collection", 3, h.rootCollection)
	route(Prefix+"/3/collection/:folder", 3, h.collection)
	route(Prefix+"/*", 3, func(echo.Context, int) error {
		return tilesource.NotFound("No such IIIF resource: the Image API is at %s/3/ and %s/2/", Prefix, Prefix)
	})
}

func setCORS(c echo.Context) {
	h := c.Response().Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", allowMethods)
	h.Set("Access-Control-Allow-Headers", "*")
	h.Set("Access-Control-Expose-Headers", "Link, ETag, "+headerTileCache)
}

// wrap sends CORS headers on every response and renders errors as the
// specification recommends: the status and a plain-text explanation.
func (h *handler) wrap(version int, fn func(echo.Context, int) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		setCORS(c)
		err := fn(c, version)
		if err == nil || c.Response().Committed {
			return nil
		}
		status, msg := h.public(c, err)
		hd := c.Response().Header()
		for _, k := range []string{"ETag", "Cache-Control", "Link", headerTileCache} {
			hd.Del(k)
		}
		return c.Blob(status, errorMIME, []byte(msg+"\n"))
	}
}

// public maps an error to its status and public message; only
// *tilesource.Error carries a message that may be shown.
func (h *handler) public(c echo.Context, err error) (int, string) {
	var te *tilesource.Error
	if errors.As(err, &te) {
		status := te.Status
		if status == 0 {
			status = http.StatusBadRequest
		}
		if status >= 500 && status != http.StatusNotImplemented {
			h.log.Error("IIIF request failed", "path", c.Request().URL.Path, "err", err)
		}
		return status, te.Message
	}
	if errors.Is(err, context.Canceled) {
		return 499, "Request cancelled"
	}
	h.log.Error("IIIF request failed", "path", c.Request().URL.Path, "err", err)
	return http.StatusInternalServerError, "Internal server error"
}

// image is one resolved identifier.
type image struct {
	item  store.Item
	loc   pipeline.Locator
	info  tilesource.Info
	frame int
	// ident is the identifier as this server writes it.
	ident string
}

// identifier builds the identifier of frame of item; frame < 0 is the
// item itself.
func identifier(itemID string, frame int) string {
	if frame < 0 {
		return itemID
	}
	return itemID + frameSeparator + strconv.Itoa(frame)
}

// resolve parses an identifier ({itemId} or {itemId}~{frame}) and opens
// the image. An unknown item or frame is a 404.
func (h *handler) resolve(c echo.Context, raw string) (*image, error) {
	ident, err := url.PathUnescape(raw)
	if err != nil {
		return nil, tilesource.NotFound("Unknown identifier")
	}
	id, frameText, hasFrame := strings.Cut(ident, frameSeparator)
	frame := -1
	if hasFrame {
		if !reInt.MatchString(frameText) || (len(frameText) > 1 && frameText[0] == '0') {
			return nil, tilesource.NotFound("Unknown identifier %q", ident)
		}
		if frame, err = strconv.Atoi(frameText); err != nil {
			return nil, tilesource.NotFound("Unknown identifier %q", ident)
		}
	}
	it, loc, err := h.cfg.Locate(id)
	if err != nil {
		return nil, notFound(err, ident)
	}
	info, err := h.cfg.Core.SourceInfo(c.Request().Context(), loc)
	if err != nil {
		return nil, notFound(err, ident)
	}
	if frame >= info.FrameCount() {
		return nil, tilesource.NotFound("Unknown identifier %q: the image has %d frames", ident, info.FrameCount())
	}
	return &image{item: it, loc: loc, info: info, frame: max(frame, 0), ident: identifier(it.ID, frame)}, nil
}

// notFound turns a failure to find or open an item into a 404, keeping
// server faults as they are.
func notFound(err error, ident string) error {
	var te *tilesource.Error
	if errors.As(err, &te) && te.Status >= 500 && te.Status != 499 {
		return err
	}
	return &tilesource.Error{Status: http.StatusNotFound, Message: fmt.Sprintf("Unknown identifier %q", ident), Cause: err}
}

// baseURL is the absolute URL of the server as the client reached it.
func baseURL(c echo.Context) string {
	return c.Scheme() + "://" + c.Request().Host
}

// serviceURL is the base URI of an image service.
func serviceURL(c echo.Context, version int, ident string) string {
	return fmt.Sprintf("%s%s/%d/%s", baseURL(c), Prefix, version, ident)
}

// redirect answers the base URI with a 303 to its info.json.
func (h *handler) redirect(c echo.Context, version int) error {
	img, err := h.resolve(c, c.Param("id"))
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, serviceURL(c, version, img.ident)+"/info.json")
}

// limitsFor are the output limits the server advertises and enforces for
// an image.
func limitsFor(in *tilesource.Info) limits {
	area := pipeline.MaxTransformPixels(in)
	// Sides are bounded by the smallest encoder limit (WebP's 16383).
	side := 16383
	return limits{maxWidth: side, maxHeight: side, maxArea: area}
}

// cacheHeaders sets ETag and Cache-Control for a response that depends on
// the image's version and the request path, and answers If-None-Match.
func (h *handler) cacheHeaders(c echo.Context, img *image, variant string) (done bool) {
	sum := sha256.Sum256([]byte(img.item.Version + "\x00" + img.loc.Version + "\x00" +
		c.Request().URL.Path + "\x00" + variant))
	tag := `"` + hex.EncodeToString(sum[:12]) + `"`
	hd := c.Response().Header()
	hd.Set("ETag", tag)
	hd.Set("Cache-Control", fmt.Sprintf("public, max-age=%d", h.cfg.MaxAge))
	for _, t := range strings.Split(c.Request().Header.Get("If-None-Match"), ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == tag || t == "*" {
			_ = c.NoContent(http.StatusNotModified)
			return true
		}
	}
	return false
}

// sendJSON writes v without HTML escaping (URLs stay readable).
func sendJSON(c echo.Context, status int, ctype string, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	return c.Blob(status, ctype, buf.Bytes())
}

// wantsJSONLD reports whether the Accept header asks for JSON-LD.
func wantsJSONLD(c echo.Context) bool {
	for _, part := range strings.Split(c.Request().Header.Get("Accept"), ",") {
		mt, _, _ := strings.Cut(part, ";")
		if strings.EqualFold(strings.TrimSpace(mt), mimeJSONLD) {
			return true
		}
	}
	return false
}

func (h *handler) info(c echo.Context, version int) error {
	img, err := h.resolve(c, c.Param("id"))
	if err != nil {
		return err
	}
	ld := wantsJSONLD(c)
	ctype := mimeJSON
	profile := level2Profile3
	if version == 2 {
		profile = level2Profile2
	}
	if ld {
		ctype = mimeJSONLD + `;profile="` + context3 + `"`
		if version == 2 {
			ctype = mimeJSONLD + `;profile="` + context2 + `"`
		}
	}
	hd := c.Response().Header()
	hd.Set("Vary", "Accept")
	hd.Set("Link", "<"+profile+`>;rel="profile"`)
	if h.cacheHeaders(c, img, ctype) {
		return nil
	}
	svc := serviceURL(c, version, img.ident)
	if version == 2 {
		return sendJSON(c, http.StatusOK, ctype, info2(svc, &img.info, limitsFor(&img.info)))
	}
	return sendJSON(c, http.StatusOK, ctype, info3(svc, &img.info, limitsFor(&img.info)))
}

func (h *handler) image(c echo.Context, version int) error {
	img, err := h.resolve(c, c.Param("id"))
	if err != nil {
		return err
	}
	in := &img.info
	lim := limitsFor(in)
	req, err := parseRequest(version, c.Param("region"), c.Param("size"), c.Param("rotation"), c.Param("qf"),
		in.SizeX, in.SizeY, lim)
	if err != nil {
		return err
	}
	profile := level2Profile3
	if version == 2 {
		profile = level2Profile2
	}
	canonical := serviceURL(c, version, img.ident) + "/" + req.canonical(version, in.SizeX, in.SizeY, lim)
	c.Response().Header().Set("Link", "<"+profile+`>;rel="profile", <`+canonical+`>;rel="canonical"`)
	if h.cacheHeaders(c, img, "") {
		return nil
	}
	res, err := h.render(c.Request().Context(), img, req)
	if err != nil {
		return err
	}
	if res.CacheStatus != "" {
		c.Response().Header().Set(headerTileCache, res.CacheStatus)
	}
	c.Response().Header().Set(echo.HeaderContentLength, strconv.Itoa(len(res.Data)))
	return c.Blob(http.StatusOK, res.MIME, res.Data)
}

// jpegQuality is the quality of JPEG output: large_image's default, which
// the zxy route uses too, so stored-tile requests share its cache entries.
const jpegQuality = 95

// render produces the image: a stored tile when the request is exactly
// one, otherwise the transformed region.
func (h *handler) render(ctx context.Context, img *image, req imageRequest) (*pipeline.Result, error) {
	enc := pipeline.EncodeOptions{Encoding: formats[req.format], JPEGQuality: jpegQuality}
	if z, x, y, ok := tileOf(&img.info, req); ok {
		return h.cfg.Core.Tile(ctx, img.loc, pipeline.TileRequest{Z: z, X: x, Y: y, Frame: img.frame, Encode: enc})
	}
	quality := pipeline.QualityColor
	switch req.quality {
	case "gray":
		quality = pipeline.QualityGray
	case "bitonal":
		quality = pipeline.QualityBitonal
	}
	return h.cfg.Core.Transform(ctx, img.loc, pipeline.TransformRequest{
		Frame: img.frame, X: req.x, Y: req.y, W: req.w, H: req.h,
		Width: req.width, Height: req.height, Mirror: req.mirror, Rotate: req.rotate,
		Quality: quality, Encode: enc,
	})
}

// tileOf reports whether req is exactly one whole tile of the pyramid, in
// colour, unrotated, as JPEG: its region is a tile of level z scaled by
// 2^(levels-1-z) and its size that tile's size. Edge tiles, which the tile
// route pads to full size, are not: their IIIF answer is cropped.
func tileOf(in *tilesource.Info, req imageRequest) (z, x, y int, ok bool) {
	if req.format != "jpg" || req.mirror || req.rotate != 0 ||
		(req.quality != "default" && req.quality != "color") ||
		req.width != in.TileWidth || req.height != in.TileHeight {
		return 0, 0, 0, false
	}
	if req.w%req.width != 0 || req.h != req.height*(req.w/req.width) {
		return 0, 0, 0, false
	}
	f := req.w / req.width
	if f&(f-1) != 0 {
		return 0, 0, 0, false
	}
	k := 0
	for 1<<k < f {
		k++
	}
	z = in.Levels - 1 - k
	if z < 0 || req.x%req.w != 0 || req.y%req.h != 0 {
		return 0, 0, 0, false
	}
	return z, req.x / req.w, req.y / req.h, true
}
