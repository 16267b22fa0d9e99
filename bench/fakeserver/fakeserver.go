// Package fakeserver is a small HTTP server that mimics the tile server's
// routes for the harness's tests, so they do not depend on the server
// packages: tile metadata, zxy tiles with X-Tile-Cache (miss the first
// time, hit-memory afterwards), the synthetic test item, DeepZoom tiles and
// cache statistics.
package fakeserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"

	"github.com/tileserver/tileserver/bench/trace"
)

// Server is a running fake tile server.
type Server struct {
	*httptest.Server
	slides map[string]trace.Slide

	mu     sync.Mutex
	counts map[string]int // requests per path (with query)
	seen   map[string]int // requests per tile, whatever the URL form
	hits   int
	misses int
}

// New starts a server that knows the given slides.
func New(slides ...trace.Slide) *Server {
	s := &Server{slides: map[string]trace.Slide{}, counts: map[string]int{}, seen: map[string]int{}}
	for _, sl := range slides {
		s.slides[sl.ID] = sl
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Count returns how many times path was requested.
func (s *Server) Count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[path]
}

// Total returns the number of tile requests served.
func (s *Server) Total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits + s.misses
}

// Paths returns a copy of the per-path counts.
func (s *Server) Paths() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.counts))
	for k, v := range s.counts {
		out[k] = v
	}
	return out
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/api/v1/large_image/cache":
		s.mu.Lock()
		doc := map[string]any{"tileCache": map[string]any{"hits": s.hits, "misses": s.misses, "items": s.misses}}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, doc)
		return
	case strings.HasPrefix(p, "/api/v1/item/"):
		parts := strings.Split(strings.TrimPrefix(p, "/api/v1/item/"), "/")
		sl, ok := s.slide(parts[0], r)
		if !ok {
			writeJSON(w, http.StatusBadRequest, map[string]string{"message": "Invalid ObjectId: " + parts[0], "type": "validation"})
			return
		}
		switch {
		case len(parts) == 2 && parts[1] == "tiles":
			writeJSON(w, http.StatusOK, map[string]any{"levels": sl.Levels, "sizeX": sl.SizeX, "sizeY": sl.SizeY,
				"tileWidth": sl.TileWidth, "tileHeight": sl.TileHeight})
			return
		case len(parts) == 6 && parts[1] == "tiles" && parts[2] == "zxy":
			s.tile(w, r, sl, parts[3], parts[4], parts[5])
			return
		}
	case strings.Contains(p, "_files/"):
		// OpenSlide deepzoom_server form: /{id}_files/{level}/{x}_{y}.jpeg
		id, rest, _ := strings.Cut(strings.TrimPrefix(p, "/"), "_files/")
		sl, ok := s.slides[id]
		lv, xy, ok2 := strings.Cut(rest, "/")
		xy = strings.TrimSuffix(xy, ".jpeg")
		x, y, ok3 := strings.Cut(xy, "_")
		level, err := strconv.Atoi(lv)
		if ok && ok2 && ok3 && err == nil {
			z := level - (sl.DeepZoomMaxLevel() - (sl.Levels - 1))
			s.tile(w, r, sl, strconv.Itoa(z), x, y)
			return
		}
	}
	http.NotFound(w, r)
}

func (s *Server) slide(id string, r *http.Request) (trace.Slide, bool) {
	if id != "test" {
		sl, ok := s.slides[id]
		return sl, ok
	}
	// The synthetic test item: sizes from the query, levels as in the
	// spec's formula.
	q := r.URL.Query()
	sl := trace.Slide{ID: "test", SizeX: 256 << 9, SizeY: 256 << 9, TileWidth: 256, TileHeight: 256}
	if v, err := strconv.Atoi(q.Get("sizeX")); err == nil && v > 0 {
		sl.SizeX = v
	}
	if v, err := strconv.Atoi(q.Get("sizeY")); err == nil && v > 0 {
		sl.SizeY = v
	}
	sl.Levels = 1
	for sl.TileWidth<<(sl.Levels-1) < sl.SizeX || sl.TileHeight<<(sl.Levels-1) < sl.SizeY {
		sl.Levels++
	}
	return sl, true
}

func (s *Server) tile(w http.ResponseWriter, r *http.Request, sl trace.Slide, zs, xs, ys string) {
	z, ez := strconv.Atoi(zs)
	x, ex := strconv.Atoi(xs)
	y, ey := strconv.Atoi(ys)
	if ez != nil || ex != nil || ey != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "x, y, and z must be integers", "type": "rest"})
		return
	}
	cols, rows := 0, 0
	if z >= 0 && z < sl.Levels {
		cols, rows = sl.Grid(z)
	}
	switch {
	case z < 0 || x < 0 || y < 0:
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "x, y, and z must be positive integers", "type": "rest"})
		return
	case z >= sl.Levels:
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "z layer does not exist", "type": "rest"})
		return
	case x >= cols:
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "x is outside layer", "type": "rest"})
		return
	case y >= rows:
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "y is outside layer", "type": "rest"})
		return
	}
	tileKey := fmt.Sprintf("%s/%d/%d/%d", sl.ID, z, x, y)
	s.mu.Lock()
	s.counts[r.URL.RequestURI()]++
	s.seen[tileKey]++
	status := "miss"
	if s.seen[tileKey] > 1 {
		status = "hit-memory"
		s.hits++
	} else {
		s.misses++
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("X-Tile-Cache", status)
	// A body whose size depends on the tile, so byte counts are checkable.
	fmt.Fprint(w, tileKey)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
