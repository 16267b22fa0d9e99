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

// setHeaders sets X-Content-Type-Options: nosniff on every response, so a
// browser never reinterprets an image or error body as HTML or script, and
// answers CORS for the configured origins. done reports that it answered a
// preflight itself.
func (s *Server) setHeaders(c echo.Context) (done bool, err error) {
	h := c.Response().Header()
	h["X-Content-Type-Options"] = nosniff // canonical key, shared value: this runs on every hit
	if len(s.cfg.CORSOrigins) > 0 && !s.corsAny {
		// The answer depends on the origin: shared caches must not
		// give one origin's response to another.
		h.Add("Vary", "Origin")
	}
	req := c.Request()
	origin := req.Header.Get("Origin")
	if origin == "" || !s.corsAllowed(origin) {
		return false, nil
	}
	if s.corsAny {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", origin)
	}
	h.Set("Access-Control-Expose-Headers", "ETag, Content-Disposition, X-Tile-Cache")
	if req.Method == http.MethodOptions && req.Header.Get("Access-Control-Request-Method") != "" {
		// A preflight: answered here, whatever the route.
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Girder-Token, Content-Type, If-None-Match, If-Match")
		h.Set("Access-Control-Max-Age", "600")
		return true, c.NoContent(http.StatusNoContent)
	}
	return false, nil
}

// nosniff is the X-Content-Type-Options value; net/http only reads it.
var nosniff = []string{"nosniff"}

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

// readBody reads a request body of at most MaxBodyBytes before the route
// sees it, answering 413 beyond; routes then decode from memory.
func (s *Server) readBody(c echo.Context) error {
	req := c.Request()
	if req.Body == nil || req.Body == http.NoBody {
		return nil
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
	return nil
}
