package girder

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tileserver/tileserver/tilesource/limits"
)

// setLimits puts the command's default limits (as derived from small
// budgets) in force for one test.
func setLimits(t *testing.T) {
	t.Helper()
	limits.Set(limits.Limits{MaxOutputPixels: 1 << 26, MaxLoop: 1000, MaxStyleBands: 64})
	t.Cleanup(func() { limits.Set(limits.Limits{}) })
}

// Every reproduction of a request that used to crash, wedge, take
// gigabytes or answer 500 gets a clear 400 naming the limit.
func TestRequestLimits(t *testing.T) {
	setLimits(t)
	e := newEnv(t)
	cmu := itemPath("CMU-1-Small-Region.svs", "")
	style := func(n int) string {
		bands := make([]map[string]any, n)
		for i := range bands {
			bands[i] = map[string]any{"band": 1, "palette": "#f00"}
		}
		b, _ := json.Marshal(map[string]any{"bands": bands})
		return url.QueryEscape(string(b))
	}
	frames := strings.Repeat("0,", 50000) + "0"
	for _, c := range []struct {
		path, msg string
	}{
		{"/region?left=0&top=0&right=2220&bottom=2&width=100000&height=100000&fill=red",
			"Value Error: The requested image of 100000×100000 pixels is larger than the limit of 67108864 pixels."},
		{"/region?left=0&top=0&right=2220&bottom=2&width=16000&height=16000&fill=red",
			"Value Error: The requested image of 16000×16000 pixels is larger than the limit of 67108864 pixels."},
		{"/images/thumbnail?height=145247",
			"Value Error: The requested image of 108557×145247 pixels is larger than the limit of 67108864 pixels."},
		{"/images/label?width=30000",
			"Value Error: The requested image of 30000×35891 pixels is larger than the limit of 67108864 pixels."},
		{"/thumbnail?width=100000&height=100000&fill=red",
			"Value Error: The requested image of 100000×100000 pixels is larger than the limit of 67108864 pixels."},
		{"/tile_frames/quad_info?frameGroupStride=9223372036854775807",
			"Value Error: frameGroupStride (9223372036854775807) is over the limit of 1000."},
		{"/tile_frames/quad_info?frameStride=9223372036854775807",
			"Value Error: frameStride (9223372036854775807) is over the limit of 1000."},
		{"/tile_frames?top=Inf", `"top" parameter is an incorrect type.`},
		{"/tile_frames?magnification=NaN", `"magnification" parameter is an incorrect type.`},
		{"/region?left=-Inf", `"left" parameter is an incorrect type.`},
		{"/thumbnail?encoding=TIFF&tiffCompression=bogus", `Value Error: Invalid tiffCompression "bogus".`},
		{"/region?left=0&top=0&right=2220&bottom=10&width=65501",
			"Value Error: JPEG images cannot be larger than 65500 pixels a side."},
		{"/region?left=0&top=0&right=2220&bottom=10&width=16384&encoding=WEBP",
			"Value Error: WEBP images cannot be larger than 16383 pixels a side."},
		{"/pixel?left=1&top=1&frameList=" + frames,
			"Value Error: The number of frameList entries (50001) is over the limit of 1000."},
		{"/tile_frames?frameList=" + frames,
			"Value Error: The number of frameList entries (50001) is over the limit of 1000."},
		{"/region?width=64&style=" + style(65), "Value Error: The number of style bands (65) is over the limit of 64."},
		{"/dzi_files/12/0_0.jpg?tilesize=2097152", "Invalid tilesize"},
		{"/dzi_files/12/0_0.jpg?overlap=257", "Invalid overlap"},
		{"/dzi_files/12/9223372036854775807_0.jpg", "x is outside layer"},
	} {
		t.Run(c.path[:min(len(c.path), 60)], func(t *testing.T) {
			wantError(t, e.get(cmu+c.path), http.StatusBadRequest, "rest", c.msg)
		})
	}
	// A tile's style goes through the same check, with the tile route's
	// status for a bad style (large_image's 404).
	wantError(t, e.get(cmu+"/zxy/0/0/0?style="+style(100)), http.StatusNotFound, "rest",
		"Value Error: The number of style bands (100) is over the limit of 64.")
	wantError(t, e.get(cmu+"/zxy/0/0/0?encoding=TIFF&tiffCompression=bogus"), http.StatusNotFound, "rest",
		`Value Error: Invalid tiffCompression "bogus".`)
	// Within the limits the same routes still answer.
	img, _ := decode(t, e.get(cmu+"/region?left=0&top=0&right=2220&bottom=2&width=1000&height=1000&fill=red&encoding=PNG"))
	wantSize(t, img, 1000, 1000)
	img, _ = decode(t, e.get(cmu+"/images/label?width=300"))
	wantSize(t, img, 300, 358)
}

// A raised limit lets the same canvas through: the check follows the
// configuration, not a constant.
func TestOutputLimitFollowsConfiguration(t *testing.T) {
	setLimits(t)
	e := newEnv(t)
	path := itemPath("CMU-1-Small-Region.svs", "/region?left=0&top=0&right=2220&bottom=2&width=600&height=600&fill=red&encoding=PNG")
	limits.Set(limits.Limits{MaxOutputPixels: 599 * 600})
	wantError(t, e.get(path), http.StatusBadRequest, "rest",
		"Value Error: The requested image of 600×600 pixels is larger than the limit of 359400 pixels.")
	limits.Set(limits.Limits{MaxOutputPixels: 600 * 600})
	img, _ := decode(t, e.get(path))
	wantSize(t, img, 600, 600)
}

func TestSecurityHeadersAndCORS(t *testing.T) {
	e := newEnv(t)
	cmu := itemPath("CMU-1-Small-Region.svs", "")
	for _, p := range []string{cmu, cmu + "/zxy/0/0/0", cmu + "/thumbnail", "/api/v1/item", cmu + "/zxy/99/0/0", "/nope"} {
		r := e.get(p, "Origin", "https://viewer.example")
		if got := r.header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q", p, got)
		}
		if got := r.header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("%s: CORS is off by default but Access-Control-Allow-Origin is %q", p, got)
		}
	}

	for _, c := range []struct {
		origins      []string
		origin, want string
	}{{[]string{"*"}, "https://viewer.example", "*"},
		{[]string{"https://viewer.example"}, "https://viewer.example", "https://viewer.example"},
		{[]string{"https://viewer.example"}, "https://evil.example", ""}} {
		srv := New(Config{CORSOrigins: c.origins}, e.srv.svc, e.store)
		h := srv.Handler()
		req, _ := http.NewRequest(http.MethodGet, cmu+"/zxy/0/0/0", nil)
		req.Header.Set("Origin", c.origin)
		rec := newRecorder()
		h.ServeHTTP(rec, req)
		if rec.code != http.StatusOK || rec.h.Get("Access-Control-Allow-Origin") != c.want {
			t.Errorf("%v from %s: status %d, Allow-Origin %q, want %q", c.origins, c.origin, rec.code,
				rec.h.Get("Access-Control-Allow-Origin"), c.want)
		}
		pre, _ := http.NewRequest(http.MethodOptions, cmu+"/zxy/0/0/0", nil)
		pre.Header.Set("Origin", c.origin)
		pre.Header.Set("Access-Control-Request-Method", "GET")
		pre.Header.Set("Access-Control-Request-Headers", "Girder-Token")
		rec = newRecorder()
		h.ServeHTTP(rec, pre)
		if c.want != "" && (rec.code != http.StatusNoContent || rec.h.Get("Access-Control-Allow-Methods") == "" ||
			!strings.Contains(rec.h.Get("Access-Control-Allow-Headers"), "Girder-Token")) {
			t.Errorf("preflight from %s: status %d, headers %v", c.origin, rec.code, rec.h)
		}
		if vary := rec.h.Get("Vary"); (c.origins[0] != "*") != (vary == "Origin") {
			t.Errorf("%v: Vary %q", c.origins, vary)
		}
		if c.want == "" && rec.h.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight from a foreign origin allowed: %v", rec.h)
		}
	}
}

// recorder is a minimal ResponseWriter (httptest's would do, but this
// keeps the code and headers separate from the body, which is not needed).
type recorder struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func newRecorder() *recorder { return &recorder{h: http.Header{}} }

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}

// Admin bodies are bounded and never echoed, whether their length is
// declared or chunked.
func TestBodyLimit(t *testing.T) {
	e := newEnv(t)
	big := `{"path": "` + strings.Repeat("A", 2<<20) + `"}`
	hdr := map[string]string{"Girder-Token": testAdminToken, "Content-Type": "application/json"}
	for _, chunked := range []bool{false, true} {
		var body interface{ Read([]byte) (int, error) } = strings.NewReader(big)
		if chunked {
			// A reader of unknown length makes the client send chunks.
			body = struct{ *strings.Reader }{strings.NewReader(big)}
		}
		r := e.do(http.MethodPost, "/api/v1/large_image/import", hdr, body)
		wantError(t, r, http.StatusRequestEntityTooLarge, "rest", "Request body too large.")
	}
	// A body within the limit still reaches the route.
	r := e.do(http.MethodPost, "/api/v1/large_image/import", hdr, strings.NewReader(`{"path": "../x"}`))
	wantError(t, r, http.StatusBadRequest, "validation", "Invalid import path.")
	// A client-given id is quoted only in part.
	r = e.get("/api/v1/item/" + strings.Repeat("A", 100<<10) + "/tiles")
	wantError(t, r, http.StatusBadRequest, "validation", "Invalid ObjectId: "+strings.Repeat("A", 64)+"…")
}
