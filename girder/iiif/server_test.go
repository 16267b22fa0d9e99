package iiif_test

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	_ "image/jpeg"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	_ "golang.org/x/image/tiff"
	_ "golang.org/x/image/webp"

	"github.com/tileserver/tileserver/girder"
	"github.com/tileserver/tileserver/girder/store"
	"github.com/tileserver/tileserver/tilecache"
	"github.com/tileserver/tileserver/tilesource/limits"
	"github.com/tileserver/tileserver/tilesource/pipeline"
)

var testdata = filepath.Join("..", "..", "..", "shared", "testdata")

const (
	cmuName   = "CMU-1-Small-Region.svs"
	omeName   = "sub/multi-channel-z-series.ome.tif"
	quadsName = "sub/quads.png"
	// quads.png is quadsW×quadsH, split into four solid quadrants.
	quadsW, quadsH = 120, 80
)

// Quadrant colours of quads.png: top left, top right, bottom left, bottom
// right. Any mirror or rotation moves them to distinct places.
var quadColors = [4]color.RGBA{
	{255, 0, 0, 255}, {0, 255, 0, 255}, {0, 0, 255, 255}, {255, 255, 255, 255},
}

// writeQuads writes the asymmetric test image.
func writeQuads(t testing.TB, path string) {
	img := image.NewRGBA(image.Rect(0, 0, quadsW, quadsH))
	for y := range quadsH {
		for x := range quadsW {
			q := 0
			if x >= quadsW/2 {
				q++
			}
			if y >= quadsH/2 {
				q += 2
			}
			img.SetRGBA(x, y, quadColors[q])
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

type env struct {
	t    testing.TB
	url  string
	st   *store.Store
	cmu  string // item ids
	ome  string
	quad string
}

func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// newEnv serves a slide root holding a real Aperio slide, a multi-frame
// OME-TIFF and the quadrant image through the real pipeline and caches.
func newEnv(t testing.TB) *env {
	return newEnvWith(t, nil)
}

// newEnvWith is newEnv with extra files linked (or copied) into the slide
// root (slide-root path → absolute path).
func newEnvWith(t testing.TB, extra map[string]string) *env {
	t.Helper()
	// The output-pixel limit the expected sizes below are computed for.
	limits.Set(limits.Limits{MaxOutputPixels: 1 << 26})
	t.Cleanup(func() { limits.Set(limits.Limits{}) })
	base := t.TempDir()
	slides := filepath.Join(base, "slides")
	copyFile(t, filepath.Join(testdata, "libvips", cmuName), filepath.Join(slides, cmuName))
	copyFile(t, filepath.Join(testdata, "libvips", filepath.Base(omeName)), filepath.Join(slides, omeName))
	writeQuads(t, filepath.Join(slides, quadsName))
	for dst, src := range extra {
		// A hard link: symbolic links leaving the slide root are skipped.
		if err := os.Link(src, filepath.Join(slides, dst)); err != nil {
			copyFile(t, src, filepath.Join(slides, dst))
		}
	}
	if err := os.MkdirAll(filepath.Join(base, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(base, "data"), slides)
	if err != nil {
		t.Fatal(err)
	}
	tiles, err := tilecache.New(tilecache.Config{Mode: tilecache.ModeMemory, MemoryBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	sources := tilecache.NewSources(tilecache.SourcesConfig{MemoryBytes: 256 << 20})
	pl, err := pipeline.New(pipeline.Config{Tiles: tiles, Sources: sources})
	if err != nil {
		t.Fatal(err)
	}
	srv := girder.New(girder.Config{MaxAge: 600}, pl, st)
	if _, err := srv.Import(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
		tiles.Close()
		sources.Close()
		st.Close()
	})
	return &env{t: t, url: hs.URL, st: st, cmu: store.ID("item", cmuName), ome: store.ID("item", omeName),
		quad: store.ID("item", quadsName)}
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (e *env) get(path string, hdr ...string) resp {
	e.t.Helper()
	return e.do(http.MethodGet, path, hdr...)
}

func (e *env) do(method, path string, hdr ...string) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{r.StatusCode, r.Header, b}
}

func (e *env) decode(path string) image.Image {
	e.t.Helper()
	r := e.get(path)
	if r.status != http.StatusOK {
		e.t.Fatalf("GET %s: %d %s", path, r.status, r.body)
	}
	img, _, err := image.Decode(bytes.NewReader(r.body))
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	return img
}

func TestInfoJSON(t *testing.T) {
	e := newEnv(t)
	r := e.get("/iiif/3/" + e.cmu + "/info.json")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("info.json: %d %q", r.status, r.header.Get("Content-Type"))
	}
	var got map[string]any
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	// The slide stores full resolution only: the region path may read a
	// level up to eight times finer than the output in each direction, so
	// maxArea is the 2^26-pixel output limit over 64.
	area := float64(1 << 20)
	want := map[string]any{
		"@context": "http://iiif.io/api/image/3/context.json",
		"id":       e.url + "/iiif/3/" + e.cmu,
		"type":     "ImageService3",
		"protocol": "http://iiif.io/api/image",
		"profile":  "level2",
		"width":    2220.0, "height": 2967.0,
		"maxWidth": 16383.0, "maxHeight": 16383.0, "maxArea": area,
		"tiles": []any{map[string]any{"width": 240.0, "height": 240.0,
			"scaleFactors": []any{1.0, 2.0, 4.0, 8.0, 16.0}}},
		// Level sizes (large_image's, rounded down) within maxArea.
		"sizes": []any{
			map[string]any{"width": 138.0, "height": 185.0},
			map[string]any{"width": 277.0, "height": 370.0},
			map[string]any{"width": 555.0, "height": 741.0},
		},
		"extraQualities": []any{"color", "gray", "bitonal"},
		"extraFormats":   []any{"webp", "tif"},
		"extraFeatures":  []any{"canonicalLinkHeader", "mirroring", "profileLinkHeader", "sizeUpscaling"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("info.json\n got %v\nwant %v", got, want)
	}
	if r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Error("no CORS header on info.json")
	}
	if got := r.header.Get("Link"); got != `<http://iiif.io/api/image/3/level2.json>;rel="profile"` {
		t.Errorf("Link %q", got)
	}

	// JSON-LD when asked for.
	r = e.get("/iiif/3/"+e.cmu+"/info.json", "Accept", "application/ld+json")
	if ct := r.header.Get("Content-Type"); ct != `application/ld+json;profile="http://iiif.io/api/image/3/context.json"` {
		t.Errorf("JSON-LD content type %q", ct)
	}
	if !strings.Contains(r.header.Get("Vary"), "Accept") {
		t.Error("info.json does not vary on Accept")
	}
	// The ETag gives 304.
	if r2 := e.get("/iiif/3/"+e.cmu+"/info.json", "If-None-Match", e.get("/iiif/3/"+e.cmu+"/info.json").header.Get("ETag")); r2.status != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", r2.status)
	}

	// Version 2.1.
	r = e.get("/iiif/2/" + e.cmu + "/info.json")
	got = nil
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	want2 := map[string]any{
		"@context": "http://iiif.io/api/image/2/context.json",
		"@id":      e.url + "/iiif/2/" + e.cmu,
		"protocol": "http://iiif.io/api/image",
		"width":    2220.0, "height": 2967.0,
		"tiles": want["tiles"], "sizes": want["sizes"],
		"profile": []any{"http://iiif.io/api/image/2/level2.json", map[string]any{
			"formats":   []any{"jpg", "png", "webp", "tif"},
			"qualities": []any{"default", "color", "gray", "bitonal"},
			"supports":  []any{"canonicalLinkHeader", "mirroring", "profileLinkHeader", "regionSquare", "sizeAboveFull"},
			"maxWidth":  16383.0, "maxHeight": 16383.0, "maxArea": area,
		}},
	}
	if !reflect.DeepEqual(got, want2) {
		t.Errorf("2.1 info.json\n got %v\nwant %v", got, want2)
	}
	r = e.get("/iiif/2/"+e.cmu+"/info.json", "Accept", "application/ld+json")
	if ct := r.header.Get("Content-Type"); ct != `application/ld+json;profile="http://iiif.io/api/image/2/context.json"` {
		t.Errorf("2.1 JSON-LD content type %q", ct)
	}

	// A CORS preflight and HEAD.
	r = e.do(http.MethodOptions, "/iiif/3/"+e.cmu+"/info.json", "Origin", "http://viewer.example",
		"Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "accept")
	if r.status != http.StatusNoContent || r.header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "GET") {
		t.Errorf("preflight: %d %v", r.status, r.header)
	}
	r = e.do(http.MethodHead, "/iiif/3/"+e.cmu+"/full/64,/0/default.jpg")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "image/jpeg" || len(r.body) != 0 {
		t.Errorf("HEAD: %d %v", r.status, r.header)
	}

	// Base URI redirect.
	for _, v := range []string{"2", "3"} {
		r = e.get("/iiif/" + v + "/" + e.cmu)
		if r.status != http.StatusSeeOther || r.header.Get("Location") != e.url+"/iiif/"+v+"/"+e.cmu+"/info.json" ||
			r.header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("base URI v%s: %d %q", v, r.status, r.header.Get("Location"))
		}
	}
}

func TestErrors(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		path   string
		status int
		msg    string
	}{
		{"/iiif/3/0123456789abcdef01234567/info.json", 404, `Unknown identifier "0123456789abcdef01234567"`},
		{"/iiif/3/nothex/full/max/0/default.jpg", 404, `Unknown identifier "nothex"`},
		{"/iiif/3/" + e.cmu + "~1/info.json", 404, `Unknown identifier "` + e.cmu + `~1": the image has 1 frames`},
		{"/iiif/3/" + e.ome + "~15/info.json", 404, `Unknown identifier "` + e.ome + `~15": the image has 15 frames`},
		{"/iiif/3/" + e.ome + "~01/info.json", 404, `Unknown identifier "` + e.ome + `~01"`},
		{"/iiif/3/" + e.cmu + "/3000,0,10,10/max/0/default.jpg", 400, `Invalid region "3000,0,10,10": it lies outside the image`},
		{"/iiif/3/" + e.cmu + "/0,0,0,10/max/0/default.jpg", 400, `Invalid region "0,0,0,10": the width and height must be above zero`},
		{"/iiif/3/" + e.cmu + "/0,0,100,100/200,/0/default.jpg", 400, `Invalid size "200,": larger than the region needs ^`},
		{"/iiif/3/" + e.cmu + "/full/pct:101/0/default.jpg", 400, `Invalid size "pct:101": above 100 percent needs ^`},
		{"/iiif/3/" + e.cmu + "/full/full/0/default.jpg", 400, `Invalid size "full"`},
		{"/iiif/2/" + e.cmu + "/full/full/0/default.jpg", 400, `Invalid size "full": 2220×2967 is beyond the server's limits (maxWidth 16383, maxHeight 16383, maxArea 1048576)`},
		{"/iiif/2/" + e.cmu + "/full/^max/0/default.jpg", 400, `Invalid size "^max"`},
		{"/iiif/3/" + e.cmu + "/full/max/45/default.jpg", 501, `Rotation by 45 degrees is not supported: only multiples of 90`},
		{"/iiif/3/" + e.cmu + "/full/max/400/default.jpg", 400, `Invalid rotation "400"`},
		{"/iiif/3/" + e.cmu + "/full/max/0/sepia.jpg", 400, `Invalid quality "sepia"`},
		{"/iiif/3/" + e.cmu + "/full/max/0/default.gif", 501, `Format "gif" is not supported`},
		{"/iiif/3/" + e.cmu + "/full/max/0/default.xyz", 400, `Invalid format "xyz"`},
		{"/iiif/3/" + e.cmu + "/full/max/0", 400, `Malformed IIIF request`},
		{"/iiif/4/" + e.cmu + "/info.json", 404, `No such IIIF resource: the Image API is at /iiif/3/ and /iiif/2/`},
		{"/iiif/3/collection/0123456789abcdef01234567", 404, `Unknown folder "0123456789abcdef01234567"`},
	} {
		r := e.get(c.path)
		if r.status != c.status || string(r.body) != c.msg+"\n" ||
			r.header.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Errorf("%s: %d %q (%s), want %d %q", c.path, r.status, r.body, r.header.Get("Content-Type"), c.status, c.msg)
		}
		if r.header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: no CORS header on the error", c.path)
		}
		if r.header.Get("Cache-Control") != "" || r.header.Get("ETag") != "" {
			t.Errorf("%s: an error is cacheable", c.path)
		}
	}
}

func TestOutputSizes(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		path string
		w, h int
	}{
		{"full/max/0/default.jpg", 885, 1183}, // maxArea: 1048576 pixels
		{"full/max/0/default.png", 885, 1183},
		{"full/500,/0/default.jpg", 500, 668},
		{"full/,300/0/default.png", 224, 300},
		{"full/300,300/0/default.jpg", 300, 300},
		{"full/!300,300/0/default.webp", 224, 300},
		{"full/pct:5/0/default.jpg", 111, 148},
		{"square/max/0/default.jpg", 1024, 1024}, // 2220² is beyond maxArea
		{"square/100,100/0/default.jpg", 100, 100},
		{"pct:50,50,50,50/max/0/default.jpg", 885, 1183},  // 1110×1483 is beyond maxArea
		{"pct:50,50,25,25/max/0/default.jpg", 555, 741},   // rows 1484 (1483.5 rounded) to 2225
		{"2000,2800,500,500/max/0/default.jpg", 220, 167}, // cropped at the edge
		{"100,100,50,40/^100,/0/default.png", 100, 80},
		{"100,100,50,40/^max/0/default.png", 1144, 915}, // up to maxArea
		{"100,100,50,40/50,40/90/default.png", 40, 50},  // rotation swaps the sides
		{"100,100,50,40/50,40/!270/gray.png", 40, 50},
		{"full/200,/0/default.tif", 200, 267},
	} {
		img := e.decode("/iiif/3/" + e.cmu + "/" + c.path)
		if b := img.Bounds(); b.Dx() != c.w || b.Dy() != c.h {
			t.Errorf("%s: %d×%d, want %d×%d", c.path, b.Dx(), b.Dy(), c.w, c.h)
		}
	}
	// Version 2.1 sizes.
	for _, c := range []struct {
		path string
		w, h int
	}{
		{"0,0,800,1200/full/0/default.jpg", 800, 1200},
		{"full/max/0/native.jpg", 885, 1183},         // full/full is beyond maxArea: see TestErrors
		{"0,0,100,100/200,/0/default.png", 200, 200}, // sizeAboveFull
		{"full/pct:10/0/default.jpg", 222, 297},
	} {
		img := e.decode("/iiif/2/" + e.cmu + "/" + c.path)
		if b := img.Bounds(); b.Dx() != c.w || b.Dy() != c.h {
			t.Errorf("v2 %s: %d×%d, want %d×%d", c.path, b.Dx(), b.Dy(), c.w, c.h)
		}
	}
}

// quadrantAt returns which quadrant colour the pixel at the centre of
// each quarter of img shows (top left, top right, bottom left, bottom
// right), or -1 where none is within the tolerance.
func quadrants(img image.Image) [4]int {
	b := img.Bounds()
	var out [4]int
	for i, p := range [4]image.Point{
		{b.Dx() / 4, b.Dy() / 4}, {3 * b.Dx() / 4, b.Dy() / 4},
		{b.Dx() / 4, 3 * b.Dy() / 4}, {3 * b.Dx() / 4, 3 * b.Dy() / 4},
	} {
		r, g, bl, _ := img.At(b.Min.X+p.X, b.Min.Y+p.Y).RGBA()
		out[i] = -1
		for q, c := range quadColors {
			if near(r>>8, c.R) && near(g>>8, c.G) && near(bl>>8, c.B) {
				out[i] = q
			}
		}
	}
	return out
}

func near(v uint32, want uint8) bool {
	d := int(v) - int(want)
	return d >= -8 && d <= 8
}

func TestRotationAndMirroring(t *testing.T) {
	e := newEnv(t)
	// Quadrant 0 is red (top left), 1 green (top right), 2 blue (bottom
	// left), 3 white (bottom right).
	for _, c := range []struct {
		rot  string
		w, h int
		want [4]int
	}{
		{"0", quadsW, quadsH, [4]int{0, 1, 2, 3}},
		{"90", quadsH, quadsW, [4]int{2, 0, 3, 1}},
		{"180", quadsW, quadsH, [4]int{3, 2, 1, 0}},
		{"270", quadsH, quadsW, [4]int{1, 3, 0, 2}},
		{"!0", quadsW, quadsH, [4]int{1, 0, 3, 2}},
		{"!90", quadsH, quadsW, [4]int{3, 1, 2, 0}},
		{"!180", quadsW, quadsH, [4]int{2, 3, 0, 1}},
		{"!270", quadsH, quadsW, [4]int{0, 2, 1, 3}},
	} {
		for _, v := range []string{"2", "3"} {
			path := "/iiif/" + v + "/" + e.quad + "/full/max/" + c.rot + "/default.png"
			img := e.decode(path)
			if b := img.Bounds(); b.Dx() != c.w || b.Dy() != c.h {
				t.Errorf("%s: %d×%d, want %d×%d", path, b.Dx(), b.Dy(), c.w, c.h)
			}
			if got := quadrants(img); got != c.want {
				t.Errorf("%s: quadrants %v, want %v", path, got, c.want)
			}
		}
	}
	// A region of the top-right quadrant only, mirrored, stays green.
	img := e.decode("/iiif/3/" + e.quad + "/60,0,60,40/30,20/!90/default.png")
	if got := quadrants(img); got != [4]int{1, 1, 1, 1} {
		t.Errorf("green region: %v", got)
	}
}

func TestGrayAndBitonal(t *testing.T) {
	e := newEnv(t)
	// ITU-R 601-2 luma of red, green, blue and white, and their
	// black-and-white split at 128.
	gray := [4]uint8{76, 150, 29, 255}
	bitonal := [4]uint8{0, 255, 0, 255}
	for _, c := range []struct {
		quality string
		want    [4]uint8
	}{{"gray", gray}, {"bitonal", bitonal}} {
		img := e.decode("/iiif/3/" + e.quad + "/full/max/0/" + c.quality + ".png")
		g, ok := img.(*image.Gray)
		if !ok {
			t.Fatalf("%s: %T, want one grey band", c.quality, img)
		}
		for i, p := range [4]image.Point{{30, 20}, {90, 20}, {30, 60}, {90, 60}} {
			if v := g.GrayAt(p.X, p.Y).Y; v != c.want[i] {
				t.Errorf("%s quadrant %d: %d, want %d", c.quality, i, v, c.want[i])
			}
		}
		if c.quality == "bitonal" {
			for _, v := range g.Pix {
				if v != 0 && v != 255 {
					t.Fatalf("bitonal pixel %d", v)
				}
			}
		}
	}
	// JPEG grey output is close to the luma too.
	img := e.decode("/iiif/3/" + e.quad + "/full/max/0/gray.jpg")
	y, _, _, _ := img.At(30, 20).RGBA()
	if !near(y>>8, 76) {
		t.Errorf("gray.jpg red quadrant %d, want about 76", y>>8)
	}
}

func TestStoredTilePassthroughAndCaching(t *testing.T) {
	e := newEnv(t)
	// Full-resolution tile (1, 2) of 240×240 is level 4 of large_image's
	// numbering; level 2 is scale factor 4, synthesised.
	for _, c := range []struct{ iiif, zxy string }{
		{"/iiif/3/" + e.cmu + "/240,480,240,240/240,240/0/default.jpg", "/api/v1/item/" + e.cmu + "/tiles/zxy/4/1/2"},
		{"/iiif/2/" + e.cmu + "/960,1920,960,960/240,/0/native.jpg", "/api/v1/item/" + e.cmu + "/tiles/zxy/2/1/2"},
		{"/iiif/3/" + e.cmu + "/0,0,240,240/max/0/color.jpg", "/api/v1/item/" + e.cmu + "/tiles/zxy/4/0/0"},
	} {
		// Twice: a stored tile is kept from its second request.
		e.get(c.zxy)
		z := e.get(c.zxy)
		if z.status != http.StatusOK {
			t.Fatalf("%s: %d", c.zxy, z.status)
		}
		r := e.get(c.iiif)
		if r.status != http.StatusOK || !bytes.Equal(r.body, z.body) {
			t.Errorf("%s: %d, %d bytes differ from %s's %d", c.iiif, r.status, len(r.body), c.zxy, len(z.body))
		}
		// The IIIF request found the zxy tile in the cache.
		if got := r.header.Get("X-Tile-Cache"); got != "hit-memory" {
			t.Errorf("%s: X-Tile-Cache %q, want hit-memory", c.iiif, got)
		}
		if r.header.Get("Content-Type") != "image/jpeg" || r.header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: headers %v", c.iiif, r.header)
		}
	}
	// The stored full-resolution tile is served as stored: no JFIF marker
	// from a re-encode (the Aperio tiles have none).
	r := e.get("/iiif/3/" + e.cmu + "/0,240,240,240/240,240/0/default.jpg")
	if bytes.Contains(r.body[:32], []byte("JFIF")) {
		t.Error("stored tile was re-encoded")
	}
	// Other requests take the region path and are cached under their own
	// key.
	path := "/iiif/3/" + e.cmu + "/100,100,300,300/150,/90/gray.jpg"
	if got := e.get(path).header.Get("X-Tile-Cache"); got != "miss" {
		t.Errorf("first region request: %q", got)
	}
	second := e.get(path)
	if got := second.header.Get("X-Tile-Cache"); got != "hit-memory" {
		t.Errorf("second region request: %q", got)
	}
	want := `<http://iiif.io/api/image/3/level2.json>;rel="profile", <` + e.url + "/iiif/3/" + e.cmu +
		`/100,100,300,300/150,150/90/gray.jpg>;rel="canonical"`
	if got := second.header.Get("Link"); got != want {
		t.Errorf("Link %q, want %q", got, want)
	}
	if got := second.header.Get("Cache-Control"); got != "public, max-age=600" {
		t.Errorf("Cache-Control %q", got)
	}
	if r := e.get(path, "If-None-Match", second.header.Get("ETag")); r.status != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", r.status)
	}
}

func TestFramesManifestAndCollection(t *testing.T) {
	e := newEnv(t)
	// Frames are separate identifiers with their own pixels.
	a := e.get("/iiif/3/" + e.ome + "~0/full/max/0/default.png")
	b := e.get("/iiif/3/" + e.ome + "~7/full/max/0/default.png")
	plain := e.get("/iiif/3/" + e.ome + "/full/max/0/default.png")
	if a.status != 200 || b.status != 200 || bytes.Equal(a.body, b.body) || !bytes.Equal(a.body, plain.body) {
		t.Errorf("frames: %d %d, frame 7 differs %v, bare id is frame 0 %v",
			a.status, b.status, !bytes.Equal(a.body, b.body), bytes.Equal(a.body, plain.body))
	}
	var info map[string]any
	if err := json.Unmarshal(e.get("/iiif/3/"+e.ome+"~7/info.json").body, &info); err != nil {
		t.Fatal(err)
	}
	if info["id"] != e.url+"/iiif/3/"+e.ome+"~7" || info["width"] != 439.0 || info["height"] != 167.0 {
		t.Errorf("frame info: %v", info)
	}

	var m map[string]any
	r := e.get("/iiif/3/" + e.ome + "/manifest")
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatal(err)
	}
	if m["@context"] != "http://iiif.io/api/presentation/3/context.json" || m["type"] != "Manifest" ||
		m["id"] != e.url+"/iiif/3/"+e.ome+"/manifest" || r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("manifest: %v", m)
	}
	canvases := m["items"].([]any)
	if len(canvases) != 15 {
		t.Fatalf("%d canvases, want 15", len(canvases))
	}
	c7 := canvases[7].(map[string]any)
	body := c7["items"].([]any)[0].(map[string]any)["items"].([]any)[0].(map[string]any)["body"].(map[string]any)
	svc := body["service"].([]any)[0].(map[string]any)
	wantSvc := map[string]any{"id": e.url + "/iiif/3/" + e.ome + "~7", "type": "ImageService3", "profile": "level2"}
	if !reflect.DeepEqual(svc, wantSvc) || c7["width"] != 439.0 || c7["height"] != 167.0 {
		t.Errorf("canvas 7: service %v, %v×%v", svc, c7["width"], c7["height"])
	}
	if lbl := c7["label"].(map[string]any)["none"].([]any)[0]; lbl != "Frame 7: c=1, z=2" {
		t.Errorf("canvas 7 label %q", lbl)
	}
	// Every thumbnail URL of the manifest answers with its stated size.
	thumb := c7["thumbnail"].([]any)[0].(map[string]any)
	timg := e.decode(strings.TrimPrefix(thumb["id"].(string), e.url))
	if timg.Bounds().Dx() != int(thumb["width"].(float64)) || timg.Bounds().Dy() != int(thumb["height"].(float64)) {
		t.Errorf("thumbnail %v is %v", thumb, timg.Bounds())
	}

	// A single-image item has one canvas whose service is the bare id.
	m = nil
	if err := json.Unmarshal(e.get("/iiif/3/"+e.cmu+"/manifest").body, &m); err != nil {
		t.Fatal(err)
	}
	if items := m["items"].([]any); len(items) != 1 {
		t.Errorf("CMU manifest has %d canvases", len(items))
	}
	if e.get("/iiif/3/"+e.ome+"~2/manifest").status != http.StatusNotFound {
		t.Error("a frame has a manifest")
	}

	// The folder "sub" is a collection of its two items.
	sub, ok := e.st.Folder(store.ID("folder", "sub"))
	if !ok {
		t.Fatal("no folder sub")
	}
	var col map[string]any
	if err := json.Unmarshal(e.get("/iiif/3/collection/"+sub.ID).body, &col); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, it := range col["items"].([]any) {
		ids = append(ids, it.(map[string]any)["type"].(string)+" "+it.(map[string]any)["id"].(string))
	}
	wantIDs := []string{
		"Manifest " + e.url + "/iiif/3/" + e.ome + "/manifest",
		"Manifest " + e.url + "/iiif/3/" + e.quad + "/manifest",
	}
	if col["type"] != "Collection" || !reflect.DeepEqual(ids, wantIDs) {
		t.Errorf("collection: %v, items %v", col, ids)
	}
	// The root lists the slide root's folder, whose collection lists sub.
	var root map[string]any
	if err := json.Unmarshal(e.get("/iiif/3/collection").body, &root); err != nil {
		t.Fatal(err)
	}
	top := root["items"].([]any)
	if len(top) != 1 {
		t.Fatalf("root collection: %v", root)
	}
	col = nil
	if err := json.Unmarshal(e.get(strings.TrimPrefix(top[0].(map[string]any)["id"].(string), e.url)).body, &col); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, it := range col["items"].([]any) {
		found = found || it.(map[string]any)["id"] == e.url+"/iiif/3/collection/"+sub.ID
	}
	if !found {
		t.Errorf("top folder does not list sub: %v", col)
	}
}
