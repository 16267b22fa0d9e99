package girder

// Response headers every answer carries and the request-body bound: the
// HTTP-level guards that need no knowledge of the route.

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/tileserver/tileserver/tilesource"
)

// DefaultMaxBodyBytes bounds request bodies when Config.MaxBodyBytes is 0:
// the admin routes take a few ids or a path, never megabytes.
const DefaultMaxBodyBytes = 1 << 20

// msgBodyTooLarge never quotes the body.
const msgBodyTooLarge = "Request body too large."

// headers sets X-Content-Type-Options: nosniff on every response, so a
// browser never reinterprets an image or error body as HTML or script, and
// answers CORS for the configured origins.
func (s *Server) headers(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		if len(s.cfg.CORSOrigins) > 0 && !s.corsAny {
			// The answer depends on the origin: shared caches must not
			// give one origin's response to another.
			h.Add("Vary", "Origin")
		}
		origin := c.Request().Header.Get("Origin")
		if origin == "" || !s.corsAllowed(origin) {
			return next(c)
		}
		if s.corsAny {
			h.Set("Access-Control-Allow-Origin", "*")
		} else {
			h.Set("Access-Control-Allow-Origin", origin)
		}
		h.Set("Access-Control-Expose-Headers", "ETag, Content-Disposition, X-Tile-Cache")
		req := c.Request()
		if req.Method == http.MethodOptions && req.Header.Get("Access-Control-Request-Method") != "" {
			// A preflight: answered here, whatever the route.
			h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Girder-Token, Content-Type, If-None-Match, If-Match")
			h.Set("Access-Control-Max-Age", "600")
			return c.NoContent(http.StatusNoContent)
		}
		return next(c)
	}
}

// corsAllowed reports whether origin may read responses.
func (s *Server) corsAllowed(origin string) bool {
	if s.corsAny {
		return true
	}
	for _, o := range s.cfg.CORSOrigins {
		if strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// limitBody reads a request body of at most MaxBodyBytes before the route
// sees it, answering 413 beyond; routes then decode from memory.
func (s *Server) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if req.Body == nil || req.Body == http.NoBody {
			return next(c)
		}
		limit := s.cfg.MaxBodyBytes
		if req.ContentLength > limit {
			return tilesource.Errorf(http.StatusRequestEntityTooLarge, msgBodyTooLarge)
		}
		b, err := io.ReadAll(http.MaxBytesReader(c.Response(), req.Body, limit))
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return tilesource.Errorf(http.StatusRequestEntityTooLarge, msgBodyTooLarge)
		}
		if err != nil {
			return tilesource.BadRequest("The request body could not be read.")
		}
		req.Body = io.NopCloser(bytes.NewReader(b))
		return next(c)
	}
}
