package girder

import (
	"net/http"
	"strings"
	"time"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilecache"
	"github.com/tileserver/tileserver/tilesource/pipeline"
)

// serveHTTP answers the plain tile requests of viewers itself and hands
// everything else to echo's router.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.plainTile(w, r) {
		s.echo.ServeHTTP(w, r)
	}
}

// zxyPrefix and zxyInfix frame the item id of a zxy tile path.
const (
	zxyPrefix = "/api/v1/item/"
	zxyInfix  = "/tiles/zxy/"
)

// plainTile serves GET /api/v1/item/{id}/tiles/zxy/{z}/{x}/{y} when it is
// the plain request a viewer sends (no query, no conditions, no body, no
// CORS to answer) for an item that exists: the request viewers send most,
// where, on a cache hit, echo's router and context and the general
// parameter and middleware steps took about a quarter of the handler's
// time (BenchmarkTileHitRoute against BenchmarkTileHit). It reports
// whether it answered; when it did not, it has written nothing and echo's
// route (tileZXY) takes the request. Both give the same response: this
// does what that route and the middleware do for such a request, through
// the same functions (the item lookup and freshness check, the ETag, the
// pipeline call, the headers, the error body, the metrics, the tracking
// for background work and prefetch).
func (s *Server) plainTile(w http.ResponseWriter, r *http.Request) (answered bool) {
	if r.Method != http.MethodGet || r.URL.RawQuery != "" || r.URL.RawPath != "" || r.ContentLength != 0 ||
		!strings.HasPrefix(r.URL.Path, zxyPrefix) {
		return false
	}
	h := r.Header
	if len(h["If-Match"]) > 0 || len(h["If-None-Match"]) > 0 ||
		(len(s.cfg.CORSOrigins) > 0 && (!s.corsAny || len(h["Origin"]) > 0)) {
		return false
	}
	id, zxy, ok := strings.Cut(r.URL.Path[len(zxyPrefix):], zxyInfix)
	if !ok {
		return false
	}
	zs, rest, ok1 := strings.Cut(zxy, "/")
	xs, ys, ok2 := strings.Cut(rest, "/")
	if !ok1 || !ok2 {
		return false
	}
	z, x, y, err := parseZXY(zs, xs, ys)
	if err != nil {
		return false // the route answers the error
	}
	start := time.Now()
	it, loc, err := s.itemLocator(id, http.StatusNotFound)
	if err != nil {
		return false
	}
	started := false
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			err := s.panicked(r, p)
			if !started {
				status := s.writeError(w, r, err)
				s.http.observe(familyTile, status, err, time.Since(start))
			}
			answered = true
		}
	}()
	// end is when the response was written, read once for the metrics
	// and the count of requests in flight (zero if the handler panicked).
	var end time.Time
	if s.tracking() {
		s.beginImageRequest(id, start)
		defer func() { s.bg.act.EndAt(end) }()
	}
	hdr := w.Header()
	hdr["X-Content-Type-Options"] = nosniff
	s.setCacheHeaders(hdr, []string{etag("zxy", it.ID, it.Version, []string{zs, xs, ys}, nil)})
	// tileRequest's request for an empty query.
	req := pipeline.TileRequest{Z: z, X: x, Y: y, Encode: pipeline.EncodeOptions{
		Encoding: adjustEncoding("", r.UserAgent()), JPEGQuality: encode.DefaultJPEGQuality}}
	res, err := s.svc.Tile(r.Context(), loc, req)
	status := http.StatusOK
	started = true
	if err != nil {
		err = routeError(err, http.StatusNotFound)
		status = s.writeError(w, r, err)
	} else {
		if res.CacheStatus == tilecache.StatusHitMemory {
			// Answered microseconds after start: its second is the
			// response's (net/http would read the clock again).
			hdr["Date"] = s.date.header(start)
		}
		_ = writeResult(w, res) // a client gone mid-write is not an error here, nor on the route
		s.servedTile(r, loc, req)
	}
	end = time.Now()
	s.http.observe(familyTile, status, err, end.Sub(start))
	return true
}
