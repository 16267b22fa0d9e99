package girder

// Handlers of the pixel-analysis routes of large_image's rest/tiles.py:
// histogram, bands, pixel, tile_frames and tile_frames/quad_info (backed by
// TileSource.histogram, getBandInformation, getPixel and tileFrames).

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/pipeline"
)

// frameList reads a comma-separated list of frames, optionally in
// brackets; nil when absent or empty.
func (p *params) frameList(name string) []int {
	v := strings.TrimSpace(p.str(name))
	v = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(v, "["), "]"))
	if v == "" {
		return nil
	}
	var out []int
	for _, part := range strings.Split(v, ",") {
		n, err := parseInt(part)
		if err != nil {
			p.fail(typeError(name))
			return nil
		}
		out = append(out, n)
	}
	return out
}

// required fails with Girder's message when a parameter is absent.
func (p *params) required(name string) {
	if !p.has(name) {
		p.fail(tilesource.BadRequest("Parameter %q is required.", name))
	}
}

func (s *Server) histogram(c echo.Context) error {
	_, loc, done, err := s.cacheableImage(c, "histogram")
	if done {
		return err
	}
	p := newParams(c)
	req := pipeline.HistogramRequest{
		Region:     p.region(c),
		Bins:       p.int("bins", 256),
		RangeMin:   p.intPtr("rangeMin"),
		RangeMax:   p.intPtr("rangeMax"),
		RoundRange: p.bool("roundRange"),
		Density:    p.bool("density"),
	}
	if p.err != nil {
		return p.err
	}
	if req.Bins < 1 {
		return tilesource.BadRequest("Value Error: bins must be between 1 and 65536.")
	}
	if err := checkRegionSize(req.Region); err != nil {
		return err
	}
	hist, err := s.svc.Histogram(c.Request().Context(), loc, req)
	if err != nil {
		return routeError(err, http.StatusBadRequest)
	}
	return c.JSON(http.StatusOK, hist)
}

func (s *Server) bands(c echo.Context) error {
	_, loc, done, err := s.cacheableImage(c, "bands")
	if done {
		return err
	}
	p := newParams(c)
	frame := p.int("frame", 0)
	if p.err != nil {
		return p.err
	}
	bands, err := s.svc.Bands(c.Request().Context(), loc, frame)
	if err != nil {
		return routeError(err, http.StatusBadRequest)
	}
	return c.JSON(http.StatusOK, bands)
}

// pixel has no ETag (large_image's REST conventions in girder_large_image/rest/tiles.py).
func (s *Server) pixel(c echo.Context) error {
	_, loc, err := s.largeImage(c, http.StatusBadRequest)
	if err != nil {
		return err
	}
	p := newParams(c)
	p.required("left")
	p.required("top")
	left, top := p.floatPtr("left"), p.floatPtr("top")
	req := pipeline.PixelRequest{
		Units:     p.str("units"),
		Frame:     p.int("frame", 0),
		FrameList: p.frameList("frameList"),
		Style:     p.str("style"),
	}
	if p.err != nil {
		return p.err
	}
	req.Left, req.Top = *left, *top
	px, err := s.svc.Pixel(c.Request().Context(), loc, req)
	if err != nil {
		return routeError(err, http.StatusBadRequest)
	}
	return c.JSON(http.StatusOK, px)
}

func (s *Server) tileFrames(c echo.Context) error {
	it, loc, done, err := s.cacheableImage(c, "tile_frames")
	if done {
		return err
	}
	p := newParams(c)
	req := pipeline.TileFramesRequest{
		Region:       p.region(c),
		FrameList:    p.frameList("frameList"),
		FramesAcross: p.int("framesAcross", 0),
	}
	if p.err != nil {
		return p.err
	}
	if err := checkRegionSize(req.Region); err != nil {
		return err
	}
	res, err := s.svc.TileFrames(c.Request().Context(), loc, req)
	if err != nil {
		return routeError(err, http.StatusBadRequest)
	}
	s.contentDisposition(c, it.Name, "tileframes", res.MIME)
	return sendResult(c, res)
}

// queryMap reads a URL-query-string parameter (quad_info's format and
// query) into a map; the last value of a repeated key wins.
func (p *params) queryMap(name string) map[string]any {
	if !p.has(name) {
		return nil
	}
	q, err := url.ParseQuery(p.str(name))
	if err != nil {
		p.fail(typeError(name))
		return nil
	}
	m := make(map[string]any, len(q))
	for k, v := range q {
		m[k] = v[len(v)-1]
	}
	return m
}

// quadInfo has no ETag (large_image's REST conventions in girder_large_image/rest/tiles.py).
func (s *Server) quadInfo(c echo.Context) error {
	_, loc, err := s.largeImage(c, http.StatusBadRequest)
	if err != nil {
		return err
	}
	p := newParams(c)
	req := pipeline.QuadInfoRequest{
		Format:                p.queryMap("format"),
		Query:                 p.queryMap("query"),
		FrameBase:             p.str("frameBase"),
		FrameStride:           p.str("frameStride"),
		FrameGroup:            p.str("frameGroup"),
		FrameGroupStride:      p.str("frameGroupStride"),
		MaxTextureSize:        p.int("maxTextureSize", 0),
		MaxTextures:           p.int("maxTextures", 0),
		MaxTotalTexturePixels: p.int("maxTotalTexturePixels", 0),
		Alignment:             p.int("alignment", 0),
		MaxFrameSize:          p.int("maxFrameSize", 0),
	}
	if f := p.floatPtr("frameGroupFactor"); f != nil {
		req.FrameGroupFactor = *f
	}
	if p.err != nil {
		return p.err
	}
	info, err := s.svc.QuadInfo(c.Request().Context(), loc, req)
	if err != nil {
		return routeError(err, http.StatusBadRequest)
	}
	return c.JSON(http.StatusOK, info)
}
