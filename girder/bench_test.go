package girder

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tileserver/tileserver/girder/store"
	"github.com/tileserver/tileserver/tilecache"
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
// handler (item lookup, ETag, cache lookup, headers, metrics) of a plain
// zxy tile already in the in-process tier, without the HTTP connection.
// Compare allocs/op and ns/op before and after a change to the hit path.
func BenchmarkTileHit(b *testing.B) {
	benchTileHit(b, func(s *Server) http.Handler { return s.Handler() })
}

// BenchmarkTileHitRoute is BenchmarkTileHit through echo's router,
// middleware and tile route, the path of every tile request with a query:
// the difference is what the plain-tile path saves.
func BenchmarkTileHitRoute(b *testing.B) {
	benchTileHit(b, func(s *Server) http.Handler { return s.echo })
}

func benchTileHit(b *testing.B, handler func(*Server) http.Handler) {
	e := newEnvWith(b, map[string]string{"s.svs": "libvips/CMU-1-Small-Region.svs"}, nil)
	h := handler(e.srv)
	id := store.ID("item", "s.svs")
	// 4×4 full-resolution tiles, each requested twice before timing: a
	// stored tile is kept from its second request (the doorkeeper).
	const n = 16
	reqs := make([]*http.Request, n)
	for i := range reqs {
		reqs[i] = httptest.NewRequest(http.MethodGet, fmt.Sprintf("/api/v1/item/%s/tiles/zxy/4/%d/%d", id, i%4, i/4), nil)
		for range 2 {
			w := &discardWriter{h: http.Header{}}
			h.ServeHTTP(w, reqs[i])
			if w.status != http.StatusOK {
				b.Fatalf("%s: status %d", reqs[i].URL, w.status)
			}
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

// BenchmarkTileMiss is the server's own share of a cold stored tile: the
// plain zxy path of a tile that is in no tier, read from the file, checked
// and answered (130 full-resolution tiles in turn; the tier and its
// doorkeeper are emptied after each pass, outside the timing): on its first
// request, which the doorkeeper does not keep, and on its second, which
// keeps it in the in-process tier. The bare read of the same bytes is
// BenchmarkReadTilePassthrough in tilesource/tiff.
func BenchmarkTileMiss(b *testing.B) {
	e := newEnvWith(b, map[string]string{"s.svs": "libvips/CMU-1-Small-Region.svs"}, nil)
	h := e.srv.Handler()
	id := store.ID("item", "s.svs")
	var reqs []*http.Request
	for y := range 13 {
		for x := range 10 {
			reqs = append(reqs, httptest.NewRequest(http.MethodGet, fmt.Sprintf("/api/v1/item/%s/tiles/zxy/4/%d/%d", id, x, y), nil))
		}
	}
	ctx := context.Background()
	serve := func(b *testing.B, r *http.Request) {
		w := &discardWriter{h: http.Header{}}
		h.ServeHTTP(w, r)
		if w.status != http.StatusOK || w.h.Get("X-Tile-Cache") != tilecache.StatusMiss {
			b.Fatalf("status %d, X-Tile-Cache %q", w.status, w.h.Get("X-Tile-Cache"))
		}
	}
	for _, second := range []bool{false, true} {
		b.Run(map[bool]string{false: "first", true: "second"}[second], func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if i%len(reqs) == 0 {
					b.StopTimer()
					if err := e.tiles.Clear(ctx, false); err != nil {
						b.Fatal(err)
					}
					if second {
						for _, r := range reqs {
							serve(b, r)
						}
					}
					b.StartTimer()
				}
				serve(b, reqs[i%len(reqs)])
			}
			if st := e.tiles.Stats().Memory; second == (st.Items == 0) {
				b.Fatalf("second %v: %d tiles kept", second, st.Items)
			}
		})
	}
}
