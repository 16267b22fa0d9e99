package girder

import (
	"errors"
	"fmt"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/girder/store"
	"github.com/tileserver/tileserver/style"
	"github.com/tileserver/tileserver/tilecache"
	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/pipeline"
)

// Messages of the spec that handlers raise themselves.
const (
	msgNotIntegers     = "x, y, and z must be integers"
	msgNotPositive     = "x, y, and z must be positive integers"
	msgNoLargeImage    = "No large image file in this item."
	msgThumbSize       = "Value Error: Invalid width or height.  Minimum value is 2."
	msgRegionSize      = "Value Error: Invalid output width or height.  Minimum value is 0."
	msgDZITileSize     = "Invalid tilesize"
	msgDZIOverlap      = "Invalid overlap"
	msgDZIEncoding     = "Only JPEG and PNG encodings are supported"
	dziXMLHeaderFormat = `<?xml version="1.0" encoding="UTF-8"?><Image TileSize="%d" Overlap="%d" Format="%s" xmlns="http://schemas.microsoft.com/deepzoom/2008"><Size Width="%d" Height="%d"/></Image>`
)

// item validates the id and finds the item; both failures are Girder
// validation errors (400) on every route.
func (s *Server) item(c echo.Context) (store.Item, error) {
	return s.itemByID(c.Param("id"))
}

func (s *Server) itemByID(id string) (store.Item, error) {
	if err := checkObjectID(id); err != nil {
		return store.Item{}, err
	}
	it, ok := s.store.Item(id)
	if !ok {
		return store.Item{}, &tilesource.Error{Status: http.StatusBadRequest, Message: "No such item: " + id, Type: "validation", Field: "id"}
	}
	return it, nil
}

// largeImage is itemLocator for the item of the route.
func (s *Server) largeImage(c echo.Context, status int) (store.Item, pipeline.Locator, error) {
	return s.itemLocator(c.Param("id"), status)
}

// itemLocator finds the item and checks its file, returning the refreshed
// item (whose version reflects the file now) and the pipeline's locator.
// status is the route's status for source errors. Background work calls it
// too, so that it resolves items exactly as the image routes do.
func (s *Server) itemLocator(id string, status int) (store.Item, pipeline.Locator, error) {
	it, err := s.itemByID(id)
	if err != nil {
		return it, pipeline.Locator{}, err
	}
	if it.Remote == store.TestRemote && it.SourceName == "test" {
		// The same locator as /item/test/tiles with default parameters,
		// so both share cache entries.
		return it, pipeline.Locator{ID: "test", TestParams: map[string]string{}}, nil
	}
	if it.Remote != "" {
		return it, pipeline.Locator{ID: it.ID, Remote: it.Remote, Version: it.Version}, nil
	}
	if it.FileID == "" || it.SourceName == "" {
		return it, pipeline.Locator{}, tilesource.Errorf(status, msgNoLargeImage)
	}
	it, reals, err := s.store.RefreshAll(it)
	if err != nil {
		return it, pipeline.Locator{}, &tilesource.Error{Status: status, Message: msgNoLargeImage, Cause: err}
	}
	loc := pipeline.Locator{ID: it.ID, Path: reals[0], Version: it.Version}
	if len(it.Files) > 0 {
		loc.SeriesPaths = reals
	}
	return it, loc, nil
}

// routeError gives a public error the route's status, as large_image maps
// every tile-source error per route (404 on zxy/fzxy, 400 elsewhere).
// Server faults keep their 5xx status.
func routeError(err error, status int) error {
	var te *tilesource.Error
	if errors.As(err, &te) && te.Status < 500 && te.Status != status {
		c := *te
		c.Status = status
		return &c
	}
	return err
}

// checkEncoding rejects an encoding the codec does not know, with the
// codec's message, before the pipeline runs.
func checkEncoding(enc string) error {
	if enc == "" {
		return nil
	}
	if _, err := encode.MIME(enc); err != nil {
		return tilesource.BadRequest("%s", err.Error())
	}
	return nil
}

// sendResult writes encoded image bytes with the tile cache status.
func sendResult(c echo.Context, res *pipeline.Result) error {
	return writeResult(c.Response(), res)
}

// writeResult writes res as a 200 with its type, length and cache status.
func writeResult(w http.ResponseWriter, res *pipeline.Result) error {
	h := w.Header()
	if res.CacheStatus != "" {
		// A handful of values, each made once.
		v, ok := cacheStatusValues[res.CacheStatus]
		if !ok {
			v = []string{res.CacheStatus}
		}
		h["X-Tile-Cache"] = v
	}
	mime := res.MIME
	if mime == "" {
		mime = echo.MIMEOctetStream
	}
	// An explicit length spares clients chunked decoding of every tile.
	h["Content-Length"] = []string{strconv.Itoa(len(res.Data))}
	ct, ok := mimeValues[mime]
	if !ok {
		ct = []string{mime}
	}
	h["Content-Type"] = ct
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(res.Data)
	return err
}

// mimeValues holds the Content-Type values of the tile encodings, made
// once like cacheStatusValues.
var mimeValues = func() map[string][]string {
	m := map[string][]string{}
	for _, enc := range []string{"JPEG", "PNG", "TIFF", "WEBP"} {
		if mime, err := encode.MIME(enc); err == nil {
			m[mime] = []string{mime}
		}
	}
	return m
}()

// cacheStatusValues holds the X-Tile-Cache header values; net/http only
// reads them, so one slice serves every response.
var cacheStatusValues = map[string][]string{
	tilecache.StatusHitMemory:    {tilecache.StatusHitMemory},
	tilecache.StatusHitMemcached: {tilecache.StatusHitMemcached},
	tilecache.StatusHitDisk:      {tilecache.StatusHitDisk},
	tilecache.StatusMiss:         {tilecache.StatusMiss},
	tilecache.StatusCoalesced:    {tilecache.StatusCoalesced},
}

// conditional computes the ETag of a cacheable route and answers 304/412
// when it decides the response; done reports that the handler must stop.
func (s *Server) conditional(c echo.Context, route string, it store.Item, pathArgs ...string) (bool, error) {
	return s.checkETag(c, etag(route, it.ID, it.Version, pathArgs, query(c)))
}

// cacheableImage is largeImage (with status 400) followed by conditional,
// the start of every cacheable image route but the tile ones; done reports
// that the handler must stop and return err.
func (s *Server) cacheableImage(c echo.Context, route string, pathArgs ...string) (it store.Item, loc pipeline.Locator, done bool, err error) {
	it, loc, err = s.largeImage(c, http.StatusBadRequest)
	if err != nil {
		return it, loc, true, err
	}
	done, err = s.conditional(c, route, it, pathArgs...)
	return it, loc, done, err
}

// checkRegionSize refuses a negative output size of a region-like route.
func checkRegionSize(req pipeline.RegionRequest) error {
	if (req.Width != nil && *req.Width < 0) || (req.Height != nil && *req.Height < 0) {
		return tilesource.BadRequest(msgRegionSize)
	}
	return nil
}

// checkStyleParam refuses a style that is not a JSON object on the routes
// that only open the source with it (metadata, internal_metadata,
// dzi.dzi), as large_image's TileSource._setStyle does when the source is
// opened; what the style says is only checked where it is applied.
func checkStyleParam(c echo.Context) error {
	q := c.QueryParams()
	if raw, ok := q["style"]; ok && strings.TrimSpace(raw[0]) != "" {
		if _, err := style.DecodeObject(raw[0]); err != nil {
			return tilesource.BadRequest("%s", style.ErrNotJSONObject)
		}
	}
	return nil
}

func (s *Server) metadata(c echo.Context) error {
	_, loc, err := s.largeImage(c, http.StatusBadRequest)
	if err != nil {
		return err
	}
	if err := checkStyleParam(c); err != nil {
		return err
	}
	md, err := s.svc.Metadata(c.Request().Context(), loc)
	if err != nil {
		return routeError(err, http.StatusBadRequest)
	}
	return c.JSON(http.StatusOK, md)
}

func (s *Server) internalMetadata(c echo.Context) error {
	_, loc, err := s.largeImage(c, http.StatusBadRequest)
	if err != nil {
		return err
	}
	if err := checkStyleParam(c); err != nil {
		return err
	}
	md, err := s.svc.InternalMetadata(c.Request().Context(), loc)
	if err != nil {
		return routeError(err, http.StatusBadRequest)
	}
	return c.JSON(http.StatusOK, md)
}

// parseZXY applies large_image's checks on tile coordinates.
func parseZXY(zs, xs, ys string) (z, x, y int, err error) {
	var e1, e2, e3 error
	z, e1 = parseInt(zs)
	x, e2 = parseInt(xs)
	y, e3 = parseInt(ys)
	if e1 != nil || e2 != nil || e3 != nil {
		return 0, 0, 0, tilesource.BadRequest(msgNotIntegers)
	}
	if z < 0 || x < 0 || y < 0 {
		return 0, 0, 0, tilesource.BadRequest(msgNotPositive)
	}
	return z, x, y, nil
}

// tileRequest reads the query parameters of a tile route.
func tileRequest(c echo.Context, z, x, y int) (pipeline.TileRequest, error) {
	p := newParams(c)
	req := pipeline.TileRequest{
		Z: z, X: x, Y: y,
		Frame:  p.int("frame", 0),
		Encode: p.encodeOptions(c.Request(), true),
		Edge:   p.str("edge"),
		Style:  p.str("style"),
	}
	if p.err != nil {
		return req, p.err
	}
	if err := checkEncoding(p.str("encoding")); err != nil {
		return req, err
	}
	return req, nil
}

func (s *Server) tileZXY(c echo.Context) error {
	return s.tile(c, "zxy", "")
}

func (s *Server) tileFZXY(c echo.Context) error {
	return s.tile(c, "fzxy", c.Param("frame"))
}

func (s *Server) tile(c echo.Context, route, frame string) error {
	it, loc, err := s.largeImage(c, http.StatusNotFound)
	if err != nil {
		return err
	}
	args := []string{c.Param("z"), c.Param("x"), c.Param("y")}
	if route == "fzxy" {
		args = append(args, frame)
	}
	if done, err := s.conditional(c, route, it, args...); done {
		return err
	}
	z, x, y, err := parseZXY(args[0], args[1], args[2])
	if err != nil {
		return err
	}
	req, err := tileRequest(c, z, x, y)
	if err != nil {
		return err
	}
	if route == "fzxy" {
		f, err := parseInt(frame)
		if err != nil {
			return typeError("frame")
		}
		req.Frame = f
	}
	if s.bg != nil && s.bg.prefetch != nil {
		c.Set(ctxTileCall, tileCall{loc, req}) // for prefetch (warm.go)
	}
	res, err := s.svc.Tile(c.Request().Context(), loc, req)
	if err != nil {
		return routeError(err, http.StatusNotFound)
	}
	return sendResult(c, res)
}

// testIntParams are the typed parameters of the test source (the large_image_source_test source).
var testIntParams = []string{"minLevel", "maxLevel", "tileWidth", "tileHeight", "sizeX", "sizeY", "frame"}

// testLocator validates the test source's parameters and builds its locator.
func testLocator(c echo.Context) (pipeline.Locator, error) {
	p := newParams(c)
	for _, name := range testIntParams {
		p.intPtr(name)
	}
	if p.err != nil {
		return pipeline.Locator{}, p.err
	}
	tp := map[string]string{}
	for k, v := range c.QueryParams() {
		if k != "token" && len(v) > 0 {
			tp[k] = v[0]
		}
	}
	return pipeline.Locator{ID: "test", TestParams: tp}, nil
}

func (s *Server) testMetadata(c echo.Context) error {
	loc, err := testLocator(c)
	if err != nil {
		return err
	}
	md, err := s.svc.Metadata(c.Request().Context(), loc)
	if err != nil {
		return routeError(err, http.StatusBadRequest)
	}
	return c.JSON(http.StatusOK, md)
}

func (s *Server) testTile(c echo.Context) error {
	loc, err := testLocator(c)
	if err != nil {
		return err
	}
	z, x, y, err := parseZXY(c.Param("z"), c.Param("x"), c.Param("y"))
	if err != nil {
		return err
	}
	req, err := tileRequest(c, z, x, y)
	if err != nil {
		return err
	}
	res, err := s.svc.Tile(c.Request().Context(), loc, req)
	if err != nil {
		return routeError(err, http.StatusNotFound)
	}
	return sendResult(c, res)
}

func (s *Server) thumbnail(c echo.Context) error {
	it, loc, done, err := s.cacheableImage(c, "thumbnail")
	if done {
		return err
	}
	p := newParams(c)
	w, h := p.intPtr("width"), p.intPtr("height")
	req := pipeline.ThumbnailRequest{
		Fill:   p.str("fill"),
		Frame:  p.int("frame", 0),
		Encode: p.encodeOptions(c.Request(), true),
		Style:  p.str("style"),
	}
	if p.err != nil {
		return p.err
	}
	// The pipeline reads 0 as "not given", so an explicit 0 is refused here.
	if (w != nil && *w < 2) || (h != nil && *h < 2) {
		return tilesource.BadRequest(msgThumbSize)
	}
	if w != nil {
		req.Width = *w
	}
	if h != nil {
		req.Height = *h
	}
	res, err := s.svc.Thumbnail(c.Request().Context(), loc, req)
	if err != nil {
		return routeError(err, http.StatusBadRequest)
	}
	s.contentDisposition(c, it.Name, "thumbnail", res.MIME)
	return sendResult(c, res)
}

func (s *Server) region(c echo.Context) error {
	it, loc, done, err := s.cacheableImage(c, "region")
	if done {
		return err
	}
	p := newParams(c)
	req := p.region(c)
	if p.err != nil {
		return p.err
	}
	if err := checkRegionSize(req); err != nil {
		return err
	}
	res, err := s.svc.Region(c.Request().Context(), loc, req)
	if err != nil {
		return routeError(err, http.StatusBadRequest)
	}
	s.contentDisposition(c, it.Name, "region", res.MIME)
	return sendResult(c, res)
}

// dziParams reads and checks tilesize, overlap and encoding (the DeepZoom routes of girder_large_image/rest/tiles.py).
func dziParams(c echo.Context) (tileSize, overlap int, enc string, err error) {
	p := newParams(c)
	tileSize = p.int("tilesize", 256)
	overlap = p.int("overlap", 0)
	if p.err != nil {
		return 0, 0, "", p.err
	}
	if tileSize < 1 || tileSize&(tileSize-1) != 0 {
		return 0, 0, "", tilesource.BadRequest(msgDZITileSize)
	}
	if overlap < 0 {
		return 0, 0, "", tilesource.BadRequest(msgDZIOverlap)
	}
	enc = p.str("encoding")
	if !p.has("encoding") {
		enc = "JPEG"
	}
	if enc != "JPEG" && enc != "PNG" {
		return 0, 0, "", tilesource.BadRequest(msgDZIEncoding)
	}
	return tileSize, overlap, enc, nil
}

func (s *Server) dziInfo(c echo.Context) error {
	_, loc, err := s.largeImage(c, http.StatusBadRequest)
	if err != nil {
		return err
	}
	ts, ov, enc, err := dziParams(c)
	if err != nil {
		return err
	}
	if err := checkStyleParam(c); err != nil {
		return err
	}
	w, h, err := s.svc.DZIInfo(c.Request().Context(), loc)
	if err != nil {
		return routeError(err, http.StatusBadRequest)
	}
	format := "jpg"
	if enc == "PNG" {
		format = "png"
	}
	// Girder sets text/xml; CherryPy, encoding the text, adds the charset.
	c.Response().Header().Set(echo.HeaderContentType, "text/xml;charset=utf-8")
	c.Response().WriteHeader(http.StatusOK)
	_, err = fmt.Fprintf(c.Response(), dziXMLHeaderFormat, ts, ov, format, w, h)
	return err
}

func (s *Server) dziTile(c echo.Context) error {
	_, loc, done, err := s.cacheableImage(c, "dzi_files", c.Param("level"), c.Param("name"))
	if done {
		return err
	}
	ts, ov, enc, err := dziParams(c)
	if err != nil {
		return err
	}
	level, err := parseInt(c.Param("level"))
	if err != nil {
		return typeError("level")
	}
	// The extension is ignored: the encoding parameter decides.
	xy, _, _ := strings.Cut(c.Param("name"), ".")
	xs, ys, ok := strings.Cut(xy, "_")
	x, errX := parseInt(xs)
	y, errY := parseInt(ys)
	if !ok || errX != nil || errY != nil {
		return tilesource.BadRequest("x and y must be integers")
	}
	p := newParams(c)
	req := pipeline.DZIRequest{
		Level: level, X: x, Y: y, TileSize: ts, Overlap: ov,
		Encode: p.encodeOptions(c.Request(), true),
		Style:  p.str("style"),
		Frame:  p.int("frame", 0),
	}
	if p.err != nil {
		return p.err
	}
	req.Encode.Encoding = adjustEncoding(enc, c.Request().UserAgent())
	res, err := s.svc.DZITile(c.Request().Context(), loc, req)
	if err != nil {
		return routeError(err, http.StatusBadRequest)
	}
	return sendResult(c, res)
}

func (s *Server) associatedList(c echo.Context) error {
	_, loc, err := s.largeImage(c, http.StatusBadRequest)
	if err != nil {
		return err
	}
	names, err := s.svc.AssociatedNames(c.Request().Context(), loc)
	if err != nil {
		return routeError(err, http.StatusBadRequest)
	}
	if names == nil {
		names = []string{}
	}
	return c.JSON(http.StatusOK, names)
}

func (s *Server) associatedImage(c echo.Context) error {
	key := c.Param("key")
	it, loc, done, err := s.cacheableImage(c, "images", key)
	if done {
		return err
	}
	p := newParams(c)
	req := pipeline.AssociatedRequest{
		Key:    key,
		Width:  p.int("width", 0),
		Height: p.int("height", 0),
		Encode: p.encodeOptions(c.Request(), true),
	}
	if p.err != nil {
		return p.err
	}
	res, err := s.svc.Associated(c.Request().Context(), loc, req)
	if err != nil {
		return routeError(err, http.StatusBadRequest)
	}
	if res == nil {
		// large_image answers an unknown key with an empty 200.
		return c.Blob(http.StatusOK, echo.MIMEOctetStream, nil)
	}
	s.contentDisposition(c, it.Name, key, res.MIME)
	return sendResult(c, res)
}

func (s *Server) associatedMetadata(c echo.Context) error {
	key := c.Param("key")
	_, loc, done, err := s.cacheableImage(c, "images/metadata", key)
	if done {
		return err
	}
	md, err := s.svc.AssociatedMetadata(c.Request().Context(), loc, key)
	if err != nil {
		return routeError(err, http.StatusBadRequest)
	}
	if md == nil {
		md = map[string]any{}
	}
	return c.JSON(http.StatusOK, md)
}

// contentDisposition sets Content-Disposition as large_image's Girder
// plugin does when the client asked for inline or attachment.
func (s *Server) contentDisposition(c echo.Context, itemName, sub, mime string) {
	disp := c.QueryParam("contentDisposition")
	if disp != "inline" && disp != "attachment" {
		return
	}
	if !strings.HasPrefix(mime, "image/") {
		return
	}
	name := c.QueryParam("contentDispositionFilename")
	if name == "" {
		name = stripExt(itemName) + "-" + sub + "." + mimeExt(mime)
	}
	c.Response().Header().Set("Content-Disposition", dispositionHeader(disp, name))
}

// dispositionHeader formats a Content-Disposition value with an ASCII
// fallback name and the RFC 5987 UTF-8 name.
func dispositionHeader(disp, name string) string {
	var safe strings.Builder
	for _, r := range name {
		if r >= 0x20 && r < 0x7f && r != '"' && r != '\\' {
			safe.WriteRune(r)
		}
	}
	return fmt.Sprintf(`%s; filename="%s"; filename*=UTF-8''%s`, disp, safe.String(), urlQuote(name))
}

// urlQuote percent-encodes everything but RFC 3986 unreserved characters.
func urlQuote(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || strings.IndexByte("-._~", ch) >= 0 {
			b.WriteByte(ch)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[ch>>4])
		b.WriteByte(hexDigits[ch&15])
	}
	return b.String()
}

// stripExt drops the extension like Python's os.path.splitext.
func stripExt(name string) string {
	if !strings.Contains(strings.TrimLeft(name, "."), ".") {
		return name
	}
	return strings.TrimSuffix(name, path.Ext(name))
}

// mimeExt is the file extension large_image derives from a mime type.
func mimeExt(mime string) string {
	switch mime {
	case "image/jpeg":
		return "jpg"
	case "image/png":
		return "png"
	case "image/tiff":
		return "tiff"
	}
	return strings.TrimPrefix(mime, "image/")
}
