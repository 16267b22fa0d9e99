package girder

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tileserver/tileserver/girder/store"
	"github.com/tileserver/tileserver/tilecache"
	"github.com/tileserver/tileserver/tilesource/limits"
	"github.com/tileserver/tileserver/tilesource/pipeline"
)

// fuzzSlides are the real files the handler fuzz target serves: a JPEG
// SVS with associated images, a multi-frame OME-TIFF, a strip TIFF.
var fuzzSlides = map[string]string{
	"cmu.svs":     "libvips/CMU-1-Small-Region.svs",
	"z.ome.tif":   "libvips/multi-channel-z-series.ome.tif",
	"orient1.tif": "large_image/test_orient1.tif",
}

// FuzzHandler sends arbitrary paths and query strings to the whole HTTP
// handler over real slides: every answer is a client error or success
// (503 allowed, for a server under load), no panic, and no request grows
// the heap beyond a bound.
func FuzzHandler(f *testing.F) {
	limits.Set(limits.Limits{MaxOutputPixels: 1 << 20, MaxLoop: 100, MaxStyleBands: 8})
	f.Cleanup(func() { limits.Set(limits.Limits{}) })
	base := f.TempDir()
	data, slides := filepath.Join(base, "data"), filepath.Join(base, "slides")
	for dst, src := range fuzzSlides {
		b, err := os.ReadFile(filepath.Join(testdata, src))
		if err != nil {
			f.Fatal(err)
		}
		if err := os.MkdirAll(slides, 0o755); err != nil {
			f.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(slides, dst), b, 0o644); err != nil {
			f.Fatal(err)
		}
	}
	if err := os.MkdirAll(data, 0o755); err != nil {
		f.Fatal(err)
	}
	st, err := store.Open(data, slides)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	if _, err := st.PutTestItem(); err != nil {
		f.Fatal(err)
	}
	tiles, err := tilecache.New(tilecache.Config{Mode: tilecache.ModeMemory, MemoryBytes: 16 << 20})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(tiles.Close)
	sources := tilecache.NewSources(tilecache.SourcesConfig{MemoryBytes: 64 << 20})
	f.Cleanup(sources.Close)
	pl, err := pipeline.New(pipeline.Config{Tiles: tiles, Sources: sources})
	if err != nil {
		f.Fatal(err)
	}
	srv := New(Config{AdminToken: testAdminToken}, pl, st)
	f.Cleanup(srv.Close)
	if _, err := srv.Import(context.Background(), ""); err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	ids := []string{store.ID("item", "cmu.svs"), store.ID("item", "z.ome.tif"), store.ID("item", "orient1.tif"), "test"}

	f.Fuzz(func(t *testing.T, item uint8, path string) {
		// Relative paths go under an item; absolute ones are taken as
		// they are, so the fuzzer reaches every route.
		target := path
		if !strings.HasPrefix(path, "/") {
			target = "/api/v1/item/" + ids[int(item)%len(ids)] + "/" + path
		}
		req, err := http.NewRequest(http.MethodGet, "http://fuzz"+target, nil)
		if err != nil || req.URL.Opaque != "" {
			return // not a request a client could send
		}
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("GET %s: %d %s", target, rec.Code, rec.Body.String())
		}
		runtime.ReadMemStats(&after)
		if after.HeapAlloc > before.HeapAlloc+256<<20 {
			t.Fatalf("GET %s grew the heap by %d MB", target, (after.HeapAlloc-before.HeapAlloc)>>20)
		}
	})
}
