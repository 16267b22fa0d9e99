package girder

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tileserver/tileserver/girder/store"
	"github.com/tileserver/tileserver/tilecache"
	"github.com/tileserver/tileserver/tilesource/pipeline"
)

// discardWriter is a ResponseWriter that keeps only the status, so the
// benchmark measures the handler and not a recorder's buffer.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }

// BenchmarkTileHit is the server's own share of a warm tile: the whole
// handler (middleware, item lookup, ETag, cache lookup, headers) of a
// zxy tile already in the in-process tier, without the HTTP connection.
// Compare allocs/op and ns/op before and after a change to the hit path.
func BenchmarkTileHit(b *testing.B) {
	base := b.TempDir()
	slides := filepath.Join(base, "slides")
	src, err := os.ReadFile(filepath.Join(testdata, "libvips/CMU-1-Small-Region.svs"))
	if err != nil {
		b.Fatal(err)
	}
	for _, d := range []string{slides, filepath.Join(base, "data")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(slides, "s.svs"), src, 0o644); err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(filepath.Join(base, "data"), slides)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	tiles, err := tilecache.New(tilecache.Config{Mode: tilecache.ModeMemory, MemoryBytes: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer tiles.Close()
	sources := tilecache.NewSources(tilecache.SourcesConfig{MemoryBytes: 256 << 20})
	defer sources.Close()
	pl, err := pipeline.New(pipeline.Config{Tiles: tiles, Sources: sources})
	if err != nil {
		b.Fatal(err)
	}
	srv := New(Config{MaxAge: 3600, RequestTimeout: time.Minute}, pl, st)
	defer srv.Close()
	if _, err := srv.Import(context.Background(), ""); err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()
	id := store.ID("item", "s.svs")
	const n = 16 // 4×4 full-resolution tiles, each requested once before timing
	reqs := make([]*http.Request, n)
	for i := range reqs {
		reqs[i] = httptest.NewRequest(http.MethodGet, fmt.Sprintf("/api/v1/item/%s/tiles/zxy/4/%d/%d", id, i%4, i/4), nil)
		w := &discardWriter{h: http.Header{}}
		h.ServeHTTP(w, reqs[i])
		if w.status != http.StatusOK {
			b.Fatalf("%s: status %d", reqs[i].URL, w.status)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w := &discardWriter{h: http.Header{}}
		h.ServeHTTP(w, reqs[i%n])
		if w.status != http.StatusOK || w.h.Get("X-Tile-Cache") != tilecache.StatusHitMemory {
			b.Fatalf("status %d, X-Tile-Cache %q", w.status, w.h.Get("X-Tile-Cache"))
		}
	}
}
