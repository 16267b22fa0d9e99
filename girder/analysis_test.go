package girder

import (
	"bytes"
	"image/color"
	"image/png"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tileserver/tileserver/girder/store"
)

func TestAnalysisRoutes(t *testing.T) {
	e := newEnv(t)
	// A multi-frame file for the frame routes.
	copyFile(t, filepath.Join(testdata, "libvips/multi-channel-z-series.ome.tif"), filepath.Join(e.slides, "ome/z.ome.tif"))
	if _, err := e.srv.Import(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	cmu := "/api/v1/item/" + cmuID() + "/tiles"

	// histogram: ETag, one entry per band, 304 on a repeat.
	r := e.get(cmu + "/histogram?width=256&height=256&bins=16")
	if r.status != http.StatusOK || r.header.Get("ETag") == "" || r.header.Get("Cache-Control") == "" {
		t.Fatalf("histogram: %d %v %s", r.status, r.header, r.body)
	}
	var hist []map[string]any
	r.json(t, &hist)
	if len(hist) != 3 || len(hist[0]["hist"].([]any)) != 16 || len(hist[0]["bin_edges"].([]any)) != 17 ||
		hist[0]["samples"].(float64) <= 0 || hist[0]["density"] != false {
		t.Errorf("histogram body %s", r.body)
	}
	if r2 := e.get(cmu+"/histogram?width=256&height=256&bins=16", "If-None-Match", r.header.Get("ETag")); r2.status != http.StatusNotModified {
		t.Errorf("histogram repeat: %d", r2.status)
	}
	wantError(t, e.get(cmu+"/histogram?rangeMin=10&rangeMax=5"), 400, "rest", "Value Error: rangeMin must not be greater than rangeMax.")
	wantError(t, e.get(cmu+"/histogram?bins=abc"), 400, "rest", `"bins" parameter is an incorrect type.`)
	wantError(t, e.get(cmu+"/histogram?bins=0"), 400, "rest", "Value Error: bins must be between 1 and 65536.")
	wantError(t, e.get(cmu+"/histogram?rangeMin=1.5"), 400, "rest", `"rangeMin" parameter is an incorrect type.`)
	wantError(t, e.get(cmu+`/histogram?style=[1]`), 400, "rest", "Style is not a valid json object.")

	// bands: ETag, keyed by band number.
	r = e.get(cmu + "/bands")
	if r.status != http.StatusOK || r.header.Get("ETag") == "" {
		t.Fatalf("bands: %d %s", r.status, r.body)
	}
	var bands map[string]map[string]any
	r.json(t, &bands)
	if len(bands) != 3 || bands["1"]["interpretation"] != "red" || bands["3"]["interpretation"] != "blue" {
		t.Errorf("bands body %s", r.body)
	}
	ome := itemPath("ome/z.ome.tif", "")
	a, b := e.get(ome+"/bands?frame=0"), e.get(ome+"/bands?frame=7")
	if a.status != 200 || b.status != 200 || string(a.body) == string(b.body) {
		t.Errorf("per-frame bands: %d %s / %d %s", a.status, a.body, b.status, b.body)
	}
	wantError(t, e.get(ome+"/bands?frame=15"), 400, "rest", "Frame does not exist")

	// pixel: no ETag.
	r = e.get(cmu + "/pixel?left=10&top=20")
	if r.status != http.StatusOK || r.header.Get("ETag") != "" {
		t.Fatalf("pixel: %d %v %s", r.status, r.header, r.body)
	}
	var px map[string]any
	r.json(t, &px)
	if v, _ := px["value"].([]any); len(v) != 3 || px["r"] != v[0] || px["g"] != v[1] || px["b"] != v[2] {
		t.Errorf("pixel body %s", r.body)
	}
	if r := e.get(cmu + "/pixel?left=5000&top=20"); strings.TrimSpace(string(r.body)) != "{}" {
		t.Errorf("outside pixel: %s", r.body)
	}
	r = e.get(ome + "/pixel?left=10&top=20&frameList=[0,7]")
	var list []map[string]any
	r.json(t, &list)
	if len(list) != 2 || list[1]["frame"] != 7.0 || list[1]["l"] == nil {
		t.Errorf("frame list pixel: %s", r.body)
	}
	wantError(t, e.get(cmu+"/pixel?top=20"), 400, "rest", `Parameter "left" is required.`)
	wantError(t, e.get(cmu+"/pixel?left=1&top=2&units=parsec"), 400, "rest", "Value Error: Invalid units 'parsec'")
	wantError(t, e.get(ome+"/pixel?left=1&top=2&frameList=1,x"), 400, "rest", `"frameList" parameter is an incorrect type.`)

	// tile_frames: ETag and a montage image.
	r = e.get(ome + "/tile_frames?width=64&height=64&encoding=PNG&frameList=0,1,2,3&contentDisposition=inline")
	if r.header.Get("ETag") == "" || r.header.Get("Content-Disposition") == "" {
		t.Errorf("tile_frames headers %v", r.header)
	}
	img, format := decode(t, r)
	if format != "png" {
		t.Errorf("tile_frames format %s", format)
	}
	// 439×167 fits 64×24 per cell, 2 across.
	wantSize(t, img, 128, 48)

	// quad_info: no ETag.
	r = e.get(ome + "/tile_frames/quad_info?maxTextureSize=1024")
	if r.status != http.StatusOK || r.header.Get("ETag") != "" {
		t.Fatalf("quad_info: %d %s", r.status, r.body)
	}
	var qi map[string]any
	r.json(t, &qi)
	if fr, _ := qi["frames"].([]any); len(fr) != 15 || len(qi["quads"].([]any)) != 15 {
		t.Errorf("quad_info body %s", r.body)
	}

	// Styles on image routes: tiles answer 404, others 400.
	wantError(t, e.get(cmu+"/zxy/4/0/0?style={"), 404, "rest", "Style is not a valid json object.")
	wantError(t, e.get(cmu+"/thumbnail?style={"), 400, "rest", "Style is not a valid json object.")
	r = e.get(cmu + `/zxy/4/0/0?encoding=PNG&style={"band":1,"palette":"%23f00","min":0,"max":255}`)
	if _, format := decode(t, r); format != "png" {
		t.Errorf("styled tile format %s", format)
	}
}

// TestGreyAlphaJPEGTIFF serves large_image's small_la.tiff: a 2×1 TIFF
// whose JPEG tile holds two components, grey and alpha. The expected
// values are the real large_image's answers for the same file (its tile
// route fails on it with a 500; ours serves the tile).
func TestGreyAlphaJPEGTIFF(t *testing.T) {
	e := newEnvWith(t, map[string]string{"la.tiff": "large_image/small_la.tiff"}, nil)
	la := "/api/v1/item/" + store.ID("item", "la.tiff") + "/tiles"
	for _, c := range []struct{ path, want string }{
		{"/pixel?left=0&top=0", `{"a":0,"l":0,"value":[0,0]}`},
		{"/pixel?left=1&top=0", `{"a":255,"l":255,"value":[255,255]}`},
		// Girder writes the numpy uint8 min and max with str().
		{"/bands", `{"1":{"interpretation":"gray","min":"0","max":"255","mean":127.5,"stdev":127.5},` +
			`"2":{"interpretation":"alpha","min":"0","max":"255","mean":127.5,"stdev":127.5}}`},
	} {
		if r := e.get(la + c.path); r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != c.want {
			t.Errorf("%s: %d %s, want %s", c.path, r.status, r.body, c.want)
		}
	}
	type px struct{ x, y, grey, alpha int }
	for _, c := range []struct {
		path string
		w, h int
		px   []px
	}{
		{"/region?encoding=PNG", 2, 1, []px{{0, 0, 0, 0}, {1, 0, 255, 255}}},
		// Upsampled with LANCZOS, alpha ramping across the middle.
		{"/thumbnail?encoding=PNG", 256, 128, []px{{0, 0, 0, 0}, {64, 64, 255, 1}, {127, 0, 255, 126},
			{128, 0, 255, 129}, {255, 127, 255, 255}}},
		{"/zxy/0/0/0?encoding=PNG", 256, 256, []px{{0, 0, 0, 0}, {1, 0, 255, 255}}},
	} {
		r := e.get(la + c.path)
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "image/png" {
			t.Fatalf("%s: %d %s", c.path, r.status, r.body)
		}
		img, err := png.Decode(bytes.NewReader(r.body))
		if err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		if b := img.Bounds(); b.Dx() != c.w || b.Dy() != c.h {
			t.Fatalf("%s: %v, want %d×%d", c.path, b, c.w, c.h)
		}
		for _, p := range c.px {
			got := color.NRGBAModel.Convert(img.At(p.x, p.y)).(color.NRGBA)
			if int(got.R) != p.grey || got.G != got.R || got.B != got.R || int(got.A) != p.alpha {
				t.Errorf("%s (%d,%d): %v, want grey %d alpha %d", c.path, p.x, p.y, got, p.grey, p.alpha)
			}
		}
	}
	// The JPEG tile is grey (JPEG keeps no alpha).
	if r := e.get(la + "/zxy/0/0/0"); r.status != http.StatusOK || r.header.Get("Content-Type") != "image/jpeg" {
		t.Errorf("JPEG tile: %d %s", r.status, r.body)
	}
}
