package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/labstack/echo/v4"
)

func serve(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	e := echo.New()
	Register(e, cfg)
	s := httptest.NewServer(e)
	t.Cleanup(s.Close)
	return s
}

func get(t *testing.T, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

var fakeLib = fstest.MapFS{
	LibScript:                         {Data: []byte("window.OpenSeadragon = function () {};")},
	"openseadragon/images/home.png":   {Data: []byte("\x89PNG\r\n\x1a\nfake")},
	"openseadragon/.hidden":           {Data: []byte("no")},
	".gitignore":                      {Data: []byte("*")},
	"openseadragon/LICENSE.txt":       {Data: []byte("BSD")},
	"openseadragon/images/zoomin.png": {Data: []byte("\x89PNG\r\n\x1a\nfake2")},
}

func TestIndexWithLibrary(t *testing.T) {
	s := serve(t, Config{Title: "Slides <lab>", Lib: fakeLib})
	res, body := get(t, s.URL+"/")
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET / = %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		`<title>Slides &lt;lab&gt;</title>`,
		`data-viewer-lib="/web/lib/openseadragon/openseadragon.min.js"`,
		`<script type="module" src="/web/app.js"></script>`,
		`data-admin="on"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(body, "{{") {
		t.Errorf("unfilled placeholder in the page")
	}
	res, body = get(t, s.URL+"/web/lib/"+LibScript)
	if res.StatusCode != http.StatusOK || body != "window.OpenSeadragon = function () {};" {
		t.Errorf("library: %d %q", res.StatusCode, body)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("library content type %q", ct)
	}
	if res, _ := get(t, s.URL+"/web/lib/openseadragon/images/home.png"); res.Header.Get("Content-Type") != "image/png" {
		t.Errorf("image content type %q", res.Header.Get("Content-Type"))
	}
}

func TestIndexWithoutLibrary(t *testing.T) {
	s := serve(t, Config{Lib: fstest.MapFS{".gitignore": {Data: []byte("*")}}})
	res, body := get(t, s.URL+"/")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET / = %d", res.StatusCode)
	}
	if !strings.Contains(body, `data-viewer-lib=""`) || !strings.Contains(body, "<title>Tile server</title>") {
		t.Errorf("page without the library:\n%s", body)
	}
	// The message the page shows then is in the script.
	_, js := get(t, s.URL+"/web/app.js")
	if !strings.Contains(js, "The viewer library (OpenSeadragon) is missing from this build: run `make web`") {
		t.Errorf("app.js lacks the missing-library message")
	}
}

// Without an admin token the page is told admin routes are off, so its
// cache panel says so instead of asking for a token.
func TestIndexAdminDisabled(t *testing.T) {
	s := serve(t, Config{Lib: fakeLib, AdminDisabled: true})
	if _, body := get(t, s.URL+"/"); !strings.Contains(body, `data-admin="off"`) {
		t.Errorf("page with admin routes disabled lacks data-admin=\"off\"")
	}
}

func TestAssets(t *testing.T) {
	s := serve(t, Config{Lib: fakeLib})
	for path, ctype := range map[string]string{
		"/web/app.js":      "text/javascript",
		"/web/tiles.js":    "text/javascript",
		"/web/measure.js":  "text/javascript",
		"/web/channels.js": "text/javascript",
		"/web/dom.js":      "text/javascript",
		"/web/cache.js":    "text/javascript",
		"/web/style.css":   "text/css",
	} {
		res, body := get(t, s.URL+path)
		want, err := os.ReadFile("static/" + strings.TrimPrefix(path, "/web/"))
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusOK || body != string(want) || !strings.HasPrefix(res.Header.Get("Content-Type"), ctype) {
			t.Errorf("%s: %d %q, body matches file: %v", path, res.StatusCode, res.Header.Get("Content-Type"), body == string(want))
		}
		if res.Header.Get("Cache-Control") != "no-cache" || res.Header.Get("ETag") == "" {
			t.Errorf("%s: Cache-Control %q ETag %q", path, res.Header.Get("Cache-Control"), res.Header.Get("ETag"))
		}
	}
	// Dotfiles, the raw index and unknown paths are not served.
	for _, path := range []string{"/web/lib/.gitignore", "/web/lib/openseadragon/.hidden", "/web/index.html", "/web/nope.js", "/web/"} {
		if res, _ := get(t, s.URL+path); res.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, res.StatusCode)
		}
	}
}

func TestConditionalGet(t *testing.T) {
	s := serve(t, Config{Lib: fakeLib})
	res, _ := get(t, s.URL+"/web/style.css")
	etag := res.Header.Get("ETag")
	if res, body := get(t, s.URL+"/web/style.css", "If-None-Match", etag); res.StatusCode != http.StatusNotModified || body != "" {
		t.Errorf("matching If-None-Match: %d with %d bytes", res.StatusCode, len(body))
	}
	if res, _ := get(t, s.URL+"/web/style.css", "If-None-Match", `"other", W/`+etag); res.StatusCode != http.StatusNotModified {
		t.Errorf("weak match in a list: %d", res.StatusCode)
	}
	if res, _ := get(t, s.URL+"/web/style.css", "If-None-Match", `"other"`); res.StatusCode != http.StatusOK {
		t.Errorf("other ETag: %d", res.StatusCode)
	}
	res2, _ := get(t, s.URL+"/web/app.js")
	if res2.Header.Get("ETag") == etag {
		t.Errorf("two files share the ETag %s", etag)
	}
}

// The embedded tree always contains the committed placeholder, so the
// package builds before `make web`; the placeholder is never served.
func TestEmbeddedDist(t *testing.T) {
	if _, err := distFiles.ReadFile("dist/.gitignore"); err != nil {
		t.Fatalf("placeholder not embedded: %v", err)
	}
	s := serve(t, Config{})
	if res, _ := get(t, s.URL+"/web/lib/.gitignore"); res.StatusCode != http.StatusNotFound {
		t.Errorf("placeholder served: %d", res.StatusCode)
	}
	_, body := get(t, s.URL+"/")
	_, err := distFiles.ReadFile("dist/" + LibScript)
	if built := err == nil; built != strings.Contains(body, `data-viewer-lib="/web/lib/`+LibScript+`"`) {
		t.Errorf("library built: %v, but the page says otherwise", built)
	}
}
