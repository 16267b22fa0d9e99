package girder

import (
	"encoding/binary"
	"encoding/hex"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
	"github.com/labstack/echo/v4"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/pipeline"
)

// params reads typed query parameters with Girder's coercion rules: a value
// that does not convert is a 400 naming the parameter.
type params struct {
	q   url.Values
	err error
}

func newParams(c echo.Context) *params { return &params{q: query(c)} }

// query is c.QueryParams(), but nil (an empty url.Values) for a request
// without a query, as a plain tile request is: echo would parse and
// allocate a map for it.
func query(c echo.Context) url.Values {
	if c.Request().URL.RawQuery == "" {
		return nil
	}
	return c.QueryParams()
}

func typeError(name string) *tilesource.Error {
	return tilesource.BadRequest("%q parameter is an incorrect type.", name)
}

func (p *params) has(name string) bool {
	_, ok := p.q[name]
	return ok
}

func (p *params) str(name string) string { return p.q.Get(name) }

// intPtr returns nil when absent.
func (p *params) intPtr(name string) *int {
	if !p.has(name) {
		return nil
	}
	v, err := parseInt(p.q.Get(name))
	if err != nil {
		p.fail(typeError(name))
		return nil
	}
	return &v
}

func (p *params) int(name string, def int) int {
	if v := p.intPtr(name); v != nil {
		return *v
	}
	return def
}

func (p *params) floatPtr(name string) *float64 {
	if !p.has(name) {
		return nil
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(p.q.Get(name)), 64)
	// NaN and the infinities parse but are no position or size.
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		p.fail(typeError(name))
		return nil
	}
	return &v
}

// bool is Girder's boolean coercion: true iff the value is true/on/yes/1.
func (p *params) bool(name string) bool {
	switch strings.ToLower(p.q.Get(name)) {
	case "true", "on", "yes", "1":
		return true
	}
	return false
}

// boolOrInt validates a boolOrInt parameter (resample) and returns it as
// given.
func (p *params) boolOrInt(name string) string {
	v := p.q.Get(name)
	if !p.has(name) {
		return ""
	}
	switch strings.ToLower(v) {
	case "true", "false", "on", "off", "yes", "no":
		return strings.ToLower(v)
	}
	if _, err := parseInt(v); err != nil {
		p.fail(typeError(name))
	}
	return v
}

// checkRepeatedParams answers 400 when a query parameter of an API route
// is given more than once, before any other check, as Girder's endpoint
// decorator does (girder/api/rest.py, _preventRepeatedParams). The first
// such name in query order is reported, as Girder walks its parameters in
// that order.
func checkRepeatedParams(c echo.Context) error {
	r := c.Request()
	if !strings.HasPrefix(r.URL.Path, "/api/v1/") || r.URL.RawQuery == "" {
		return nil
	}
	q := c.QueryParams()
	for _, pair := range strings.Split(r.URL.RawQuery, "&") {
		name, _, _ := strings.Cut(pair, "=")
		if name, err := url.QueryUnescape(name); err == nil && len(q[name]) > 1 {
			return tilesource.BadRequest("Parameter \"%s\" must not be specified multiple times.", name)
		}
	}
	return nil
}

func (p *params) fail(err error) {
	if p.err == nil {
		p.err = err
	}
}

// parseInt converts like Python's int(): surrounding space and a sign are
// allowed, fractions are not.
func parseInt(s string) (int, error) {
	return strconv.Atoi(strings.TrimSpace(s))
}

// encodeOptions reads the encoder parameters shared by image routes.
func (p *params) encodeOptions(r *http.Request, safariSwitch bool) pipeline.EncodeOptions {
	o := pipeline.EncodeOptions{
		Encoding:        p.str("encoding"),
		JPEGQuality:     p.int("jpegQuality", encode.DefaultJPEGQuality),
		JPEGSubsampling: p.int("jpegSubsampling", 0),
		TIFFCompression: p.str("tiffCompression"),
	}
	if o.Encoding == "TILED" && !p.has("jpegQuality") {
		// Tiled output has its own default quality (90), which only an
		// absent parameter gives.
		o.JPEGQuality = 0
	}
	if safariSwitch {
		o.Encoding = adjustEncoding(o.Encoding, r.UserAgent())
	}
	return o
}

// adjustEncoding is large_image's Safari/iOS JFIF switch (large_image's REST conventions in girder_large_image/rest/tiles.py): those
// browsers get JFIF instead of JPEG because they mis-handle Adobe-marked
// JPEGs.
func adjustEncoding(encoding, userAgent string) string {
	if encoding != "" && encoding != "JPEG" {
		return encoding
	}
	if isSafari(userAgent) {
		return "JFIF"
	}
	return encoding
}

// isSafari matches large_image's test: ipad/ipod/iphone anywhere, or
// "safari" with no "chrome" or "android" before it.
func isSafari(ua string) bool {
	ua = strings.ToLower(ua)
	if strings.Contains(ua, "ipad") || strings.Contains(ua, "ipod") || strings.Contains(ua, "iphone") {
		return true
	}
	i := strings.Index(ua, "safari")
	if i < 0 {
		return false
	}
	before := ua[:i]
	return !strings.Contains(before, "chrome") && !strings.Contains(before, "android")
}

// checkObjectID validates a Girder id: 24 hex digits. It runs on every
// tile request, so it is a plain loop rather than a regexp.
func checkObjectID(id string) error {
	ok := len(id) == 24
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		ok = '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
	}
	if !ok {
		return &tilesource.Error{Status: http.StatusBadRequest, Message: "Invalid ObjectId: " + shorten(id), Type: "validation", Field: "id"}
	}
	return nil
}

// shorten cuts a client-given value quoted in a message, so an error
// never echoes a large request back.
func shorten(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// etag is the 64-bit xxHash over route, item, version, path arguments and
// the sorted query parameters (the token is not part of the resource), in
// hex. Each part is followed by a NUL. large_image uses an MD5 of the same
// inputs; the value is opaque to clients, which compare it only with what
// the same URL gave before, so 64 bits are plenty, and xxHash costs a
// fraction of MD5 (the MD5 was a seventh of a warm hit's handler time). It
// runs on every request, hits included, so the usual case (a short input,
// at most one query parameter) allocates only the result, which is quoted
// as the ETag header carries it.
func etag(route, itemID, version string, pathArgs []string, q url.Values) string {
	var stack [256]byte
	b := stack[:0]
	w := func(s string) {
		b = append(b, s...)
		b = append(b, 0)
	}
	w(route)
	w(itemID)
	w(version)
	for _, a := range pathArgs {
		w(a)
	}
	var one [1]string
	keys := one[:0]
	for k := range q {
		if k != "token" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		w(k)
		for _, v := range q[k] {
			w(v)
		}
	}
	var sum [8]byte
	binary.BigEndian.PutUint64(sum[:], xxhash.Sum64(b))
	var out [2*len(sum) + 2]byte
	out[0], out[len(out)-1] = '"', '"'
	hex.Encode(out[1:], sum[:])
	return string(out[:])
}

// checkETag applies large_image's conditional-request rules before any image
// work: it sets ETag and Cache-Control, answers 412 for a failed If-Match and
// reports whether the response is a 304.
func (s *Server) checkETag(c echo.Context, quoted string) (done bool, err error) {
	h := c.Response().Header()
	tag := quoted[1 : len(quoted)-1]
	// Keys in canonical form, set directly: this runs on every hit.
	tags := []string{quoted}
	h["Etag"] = tags
	req := c.Request()
	if im := req.Header.Get("If-Match"); im != "" && strings.TrimSpace(im) != "*" && !strings.Contains(im, tag) {
		return true, &tilesource.Error{Status: http.StatusPreconditionFailed,
			Message: "If-Match failed: " + im + " does not match " + quoted}
	}
	if inm := req.Header.Get("If-None-Match"); inm != "" && (strings.TrimSpace(inm) == "*" || strings.Contains(inm, tag)) {
		return true, c.NoContent(http.StatusNotModified)
	}
	s.setCacheHeaders(h, tags)
	return false, nil
}

// setCacheHeaders sets the ETag (tags: the quoted tag) and Cache-Control
// of a response that passed its conditions.
func (s *Server) setCacheHeaders(h http.Header, tags []string) {
	h["Etag"] = tags
	h["Cache-Control"] = s.cacheControl
}

// region reads the region parameters shared by region-like routes.
func (p *params) region(c echo.Context) pipeline.RegionRequest {
	return pipeline.RegionRequest{
		Left: p.floatPtr("left"), Top: p.floatPtr("top"),
		Right: p.floatPtr("right"), Bottom: p.floatPtr("bottom"),
		RegionWidth: p.floatPtr("regionWidth"), RegionHeight: p.floatPtr("regionHeight"),
		Units: p.str("units"), UnitsWH: p.str("unitsWH"),
		Width: p.intPtr("width"), Height: p.intPtr("height"),
		Fill:          p.str("fill"),
		Magnification: p.floatPtr("magnification"),
		MMX:           p.floatPtr("mm_x"), MMY: p.floatPtr("mm_y"),
		Exact:    p.bool("exact"),
		Frame:    p.int("frame", 0),
		Encode:   p.encodeOptions(c.Request(), true),
		Style:    p.str("style"),
		Resample: p.boolOrInt("resample"),
	}
}
