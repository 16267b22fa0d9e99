// Package girder is the Girder-compatible HTTP API (large_image's Girder
// plugin, girder_large_image/rest/tiles.py): the large_image tile routes,
// the folder/item/file resources a viewer needs to find images, ETag and
// cache headers, error mapping and the admin routes.
// Handlers parse parameters, call the pipeline.Service and translate errors;
// they do no image work themselves.
package girder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tileserver/tileserver/girder/iiif"
	"github.com/tileserver/tileserver/girder/store"
	"github.com/tileserver/tileserver/girder/web"
	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/pipeline"
	"github.com/tileserver/tileserver/tilesource/work"
)

// Config configures the HTTP API.
type Config struct {
	// MaxAge is the max-age of Cache-Control on cacheable image routes, in
	// seconds; 0 means large_image's 3600.
	MaxAge int `yaml:"max-age"`
	// AdminToken is the token admin routes require (Girder-Token header or
	// ?token=). Empty disables admin routes.
	AdminToken string `yaml:"admin-token"`
	// CORSOrigins are the origins whose pages may read responses
	// (Access-Control-Allow-Origin); "*" allows any. Empty turns CORS off.
	CORSOrigins []string `yaml:"cors-origins"`
	// MaxBodyBytes bounds request bodies (413 beyond); 0 means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64 `yaml:"max-body-bytes"`
	// Logger receives error and import logs; nil means slog.Default().
	Logger *slog.Logger `yaml:"-"`
	// RequestTimeout is the deadline of each API request (admin routes
	// excepted); 0 means none.
	RequestTimeout time.Duration `yaml:"-"`
}

// CacheAdmin is what the cache routes call; the command wires the tile and
// source caches to it. Nil disables those routes.
type CacheAdmin interface {
	// Info returns large_image's cache info object (girder_large_image/rest/large_image_resource.py).
	Info(ctx context.Context) map[string]any
	// Clear empties the in-process caches, and the shared memcached tier
	// too when includeMemcached is set.
	Clear(ctx context.Context, includeMemcached bool) error
}

// SourceLister is optionally implemented by the Service to describe the
// readers for GET large_image/sources.
type SourceLister interface {
	Sources() map[string]any
}

// Server is the HTTP API.
type Server struct {
	cfg   Config
	svc   pipeline.Service
	store *store.Store
	log   *slog.Logger
	echo  *echo.Echo
	cache CacheAdmin
	extra []func(e *echo.Echo)
	bg    *background // warm-up, precache and prefetch (warm.go)
	work  *work.Budget
	http  *httpMetrics // request, error and latency series (metrics.go)
	date  dateCache    // the Date header of tiles answered from memory
	// archives lists the configured DICOMweb archives (dicomweb.go).
	archives *archiveSync
	// corsAny is set when CORSOrigins holds "*".
	corsAny bool
	// cacheControl is the Cache-Control value of cacheable responses,
	// made once (net/http only reads header values).
	cacheControl []string
}

// Option adds optional parts to the server.
type Option func(*Server)

// WithCacheAdmin enables GET large_image/cache and PUT large_image/cache/clear.
func WithCacheAdmin(c CacheAdmin) Option { return func(s *Server) { s.cache = c } }

// WithHandler mounts an extra handler (such as Prometheus' /metrics) at an
// exact path.
func WithHandler(path string, h http.Handler) Option {
	return func(s *Server) {
		s.extra = append(s.extra, func(e *echo.Echo) { e.GET(path, echo.WrapHandler(h)) })
	}
}

// WithRoutes lets another package mount its own routes (such as the viewer
// page of girder/web) on the server's router.
func WithRoutes(register func(e *echo.Echo)) Option {
	return func(s *Server) { s.extra = append(s.extra, register) }
}

// New builds the server over a pipeline and an item store.
func New(cfg Config, svc pipeline.Service, st *store.Store, opts ...Option) *Server {
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 3600
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	s := &Server{cfg: cfg, svc: svc, store: st, log: log, http: newHTTPMetrics(),
		cacheControl: []string{"public, max-age=" + strconv.Itoa(cfg.MaxAge)}}
	for _, o := range cfg.CORSOrigins {
		s.corsAny = s.corsAny || o == "*"
	}
	for _, o := range opts {
		o(s)
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = clientIP
	e.Use(s.middleware)
	s.routes(e)
	web.Register(e, web.Config{}) // viewer page at / and /web/ (wired by the web viewer task)
	if core, ok := svc.(iiif.Core); ok {
		iiif.Register(e, iiif.Config{Core: core, Store: st, MaxAge: cfg.MaxAge, Logger: log,
			Locate: func(id string) (store.Item, pipeline.Locator, error) {
				return s.itemLocator(id, http.StatusNotFound)
			}})
	}
	for _, f := range s.extra {
		f(e)
	}
	s.echo = e
	return s
}

// Handler returns the HTTP handler: the warm-tile path (fasttile.go) in
// front of echo's router.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Import re-scans the slide root (or sub, a directory below it) into the
// item store, checking each file with the Service.
func (s *Server) Import(ctx context.Context, sub string) (store.ImportStats, error) {
	st, err := s.store.Import(ctx, store.ImportOptions{Sub: sub, CanOpen: s.svc.CanOpen, Logger: s.log})
	if err == nil {
		s.imported(ctx, sub)
	}
	return st, err
}

func (s *Server) routes(e *echo.Echo) {
	e.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	g := e.Group("/api/v1")

	g.GET("/collection", s.listCollections)
	g.GET("/collection/:id", s.getCollection)
	g.GET("/folder", s.listFolders)
	g.GET("/folder/:id", s.getFolder)
	g.GET("/item", s.listItems)
	g.GET("/item/:id", s.getItem)
	g.GET("/item/:id/files", s.itemFiles)
	g.GET("/file/:id", s.getFile)
	g.GET("/file/:id/download", s.downloadFile)
	g.HEAD("/file/:id/download", s.downloadFile)

	g.GET("/item/test/tiles", s.testMetadata)
	g.GET("/item/test/tiles/zxy/:z/:x/:y", s.testTile)

	g.GET("/item/:id/tiles", s.metadata)
	g.GET("/item/:id/tiles/zxy/:z/:x/:y", s.tileZXY)
	g.GET("/item/:id/tiles/fzxy/:frame/:z/:x/:y", s.tileFZXY)
	g.GET("/item/:id/tiles/thumbnail", s.thumbnail)
	g.GET("/item/:id/tiles/region", s.region)
	g.GET("/item/:id/tiles/dzi.dzi", s.dziInfo)
	g.GET("/item/:id/tiles/dzi_files/:level/:name", s.dziTile)
	g.GET("/item/:id/tiles/internal_metadata", s.internalMetadata)
	g.GET("/item/:id/tiles/images", s.associatedList)
	g.GET("/item/:id/tiles/images/:key", s.associatedImage)
	g.GET("/item/:id/tiles/images/:key/metadata", s.associatedMetadata)
	g.GET("/item/:id/tiles/histogram", s.histogram)
	g.GET("/item/:id/tiles/bands", s.bands)
	g.GET("/item/:id/tiles/pixel", s.pixel)
	g.GET("/item/:id/tiles/tile_frames", s.tileFrames)
	g.GET("/item/:id/tiles/tile_frames/quad_info", s.quadInfo)

	g.GET("/large_image/sources", s.sources)
	g.PUT("/large_image/import", s.importRoute, s.requireAdmin)
	g.POST("/large_image/import", s.importRoute, s.requireAdmin)
	g.POST("/large_image/dicomweb", s.dicomwebRoute, s.requireAdmin)
	if s.cache != nil {
		g.GET("/large_image/cache", s.cacheInfo, s.requireAdmin)
		g.PUT("/large_image/cache/clear", s.cacheClear, s.requireAdmin)
	}
	s.backgroundRoutes(e, g)
}

// apiError is Girder's JSON error body.
type apiError struct {
	Message string `json:"message"`
	Type    string `json:"type"`
	Field   string `json:"field,omitempty"`
}

// handleError renders every error as Girder's JSON body. Only
// *tilesource.Error and echo's routing errors carry public messages; any
// other error is logged and answered with a generic 500.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	s.writeError(c.Response(), c.Request(), err)
}

// writeError answers r with err as Girder's JSON body (none for HEAD) and
// returns the status.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) int {
	status, body := s.errorBody(err, r)
	h := w.Header()
	if status != http.StatusNotModified {
		// Headers set before the failure describe a response that was
		// never produced; an error must not be cached as the image.
		delete(h, "Etag")
		delete(h, "Cache-Control")
		delete(h, "Content-Disposition")
	}
	if status == http.StatusServiceUnavailable {
		// Busy or past its deadline: the request may succeed later.
		h.Set("Retry-After", retryAfter)
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return status
	}
	h.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	if _, pretty := r.URL.Query()["pretty"]; pretty {
		enc.SetIndent("", "  ") // echo's ?pretty
	}
	if err := enc.Encode(body); err != nil {
		s.log.Debug("writing error response", "err", err)
	}
	return status
}

func (s *Server) errorBody(err error, r *http.Request) (int, apiError) {
	var te *tilesource.Error
	if errors.As(err, &te) {
		typ := te.Type
		if typ == "" {
			typ = "rest"
		}
		status := te.Status
		if status == 0 {
			status = http.StatusBadRequest
		}
		switch {
		case te.Cause == nil || status == 499:
		case status >= 500 && status != http.StatusServiceUnavailable:
			s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
		default:
			// A public 4xx with an internal cause (a tile that could not
			// be read answers 404, as in large_image): the cause is what
			// an operator needs.
			s.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
		}
		return status, apiError{Message: te.Message, Type: typ, Field: te.Field}
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		msg := http.StatusText(he.Code)
		switch he.Code {
		case http.StatusNotFound:
			msg = fmt.Sprintf("No matching route for \"%s %s\"", r.Method, r.URL.Path)
		case http.StatusMethodNotAllowed:
			msg = fmt.Sprintf("No matching route for \"%s %s\"", r.Method, r.URL.Path)
		}
		if he.Code >= 500 {
			s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			msg = "Internal server error"
			return he.Code, apiError{Message: msg, Type: "internal"}
		}
		return he.Code, apiError{Message: msg, Type: "rest"}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return http.StatusServiceUnavailable, apiError{Message: "Request timed out, try again later", Type: "rest"}
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// The client went away; nobody reads the answer.
		return 499, apiError{Message: "Request canceled", Type: "rest"}
	}
	s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	return http.StatusInternalServerError, apiError{Message: "Internal server error", Type: "internal"}
}

// panicked logs a handler's panic p with its stack and returns the error
// it is answered with (a 500 whose body says nothing of it).
func (s *Server) panicked(r *http.Request, p any) error {
	s.log.Error("panic in handler", "method", r.Method, "path", r.URL.Path,
		"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	return errors.New("panic")
}

// guarded runs the route under the request checks, turning a panic into
// a logged 500 with a JSON body, so no stack trace reaches the client and
// the server keeps serving.
func (s *Server) guarded(c echo.Context, next echo.HandlerFunc) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			err = s.panicked(c.Request(), r)
		}
	}()
	if err := s.readBody(c); err != nil {
		return err
	}
	if err := checkRepeatedParams(c); err != nil {
		return err
	}
	return s.trackImageRequests(c, next)
}
