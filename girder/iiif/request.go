package iiif

// Parsing and resolving the image request path
// {region}/{size}/{rotation}/{quality}.{format} against an image's size, as
// the IIIF Image API 3.0 (https://iiif.io/api/image/3.0/#4-image-requests)
// and 2.1 (https://iiif.io/api/image/2.1/#image-request-parameters) define
// it. Everything here is pure arithmetic on the request and the image size,
// so it is tested without images.

import (
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/tileserver/tileserver/tilesource"
)

// limits are the server's output size limits (info.json's maxWidth,
// maxHeight and maxArea).
type limits struct {
	maxWidth, maxHeight int
	maxArea             int64
}

// imageRequest is a resolved image request.
type imageRequest struct {
	// x, y, w, h is the region in full-resolution pixels, inside the image
	// and not empty.
	x, y, w, h int
	// width, height is the output size before rotation.
	width, height int
	mirror        bool
	rotate        int    // 0, 90, 180 or 270
	quality       string // default, color, gray or bitonal
	format        string // jpg, png, webp or tif
}

// Formats the server encodes, by IIIF format name.
var formats = map[string]string{"jpg": "JPEG", "png": "PNG", "webp": "WEBP", "tif": "TIFF"}

// knownFormats are the other format names the specifications define; asking
// for one is a valid request the server does not implement (501).
var knownFormats = map[string]bool{"gif": true, "jp2": true, "pdf": true}

var (
	// reInt is a non-negative decimal integer as the specification writes
	// them: digits only, no sign, no spaces.
	reInt = regexp.MustCompile(`^[0-9]+$`)
	// reFloat is a non-negative decimal number (pct: values, rotation).
	reFloat = regexp.MustCompile(`^([0-9]+(\.[0-9]*)?|\.[0-9]+)$`)
)

func badRequest(format string, args ...any) error {
	return tilesource.BadRequest(format, args...)
}

func notImplemented(format string, args ...any) error {
	return tilesource.Errorf(http.StatusNotImplemented, format, args...)
}

// parseInts reads n comma-separated integers.
func parseInts(s string, n int) ([]int, bool) {
	parts := strings.Split(s, ",")
	if len(parts) != n {
		return nil, false
	}
	out := make([]int, n)
	for i, p := range parts {
		if !reInt.MatchString(p) {
			return nil, false
		}
		v, err := strconv.Atoi(p)
		if err != nil || v > math.MaxInt32 {
			return nil, false
		}
		out[i] = v
	}
	return out, true
}

// parseFloat reads a non-negative decimal number.
func parseFloat(s string) (float64, bool) {
	if !reFloat.MatchString(s) {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil && !math.IsInf(v, 0)
}

// parseRegion resolves the region parameter against a width×height image:
// full, square, x,y,w,h or pct:x,y,w,h. A region reaching past the image
// is cropped at its edge; a region of zero width or height, or one entirely
// outside the image, is a 400.
func parseRegion(s string, width, height int) (x, y, w, h int, err error) {
	switch {
	case s == "full":
		return 0, 0, width, height, nil
	case s == "square":
		side := min(width, height)
		return (width - side) / 2, (height - side) / 2, side, side, nil
	case strings.HasPrefix(s, "pct:"):
		parts := strings.Split(s[4:], ",")
		if len(parts) != 4 {
			return 0, 0, 0, 0, badRequest("Invalid region %q", s)
		}
		var v [4]float64
		for i, p := range parts {
			f, ok := parseFloat(p)
			if !ok {
				return 0, 0, 0, 0, badRequest("Invalid region %q", s)
			}
			v[i] = f
		}
		if v[2] == 0 || v[3] == 0 {
			return 0, 0, 0, 0, badRequest("Invalid region %q: the width and height must be above zero", s)
		}
		// Edges are rounded separately, so adjacent percentages tile the
		// image without gaps or overlaps.
		x0 := roundPx(v[0] * float64(width) / 100)
		y0 := roundPx(v[1] * float64(height) / 100)
		x1 := roundPx((v[0] + v[2]) * float64(width) / 100)
		y1 := roundPx((v[1] + v[3]) * float64(height) / 100)
		return clipRegion(s, x0, y0, x1-x0, y1-y0, width, height)
	}
	v, ok := parseInts(s, 4)
	if !ok {
		return 0, 0, 0, 0, badRequest("Invalid region %q", s)
	}
	if v[2] == 0 || v[3] == 0 {
		return 0, 0, 0, 0, badRequest("Invalid region %q: the width and height must be above zero", s)
	}
	return clipRegion(s, v[0], v[1], v[2], v[3], width, height)
}

func roundPx(v float64) int { return int(math.Min(math.Round(v), math.MaxInt32)) }

// clipRegion crops a region to the image, refusing one outside it.
func clipRegion(s string, x, y, w, h, width, height int) (int, int, int, int, error) {
	if x >= width || y >= height {
		return 0, 0, 0, 0, badRequest("Invalid region %q: it lies outside the image", s)
	}
	w, h = min(w, width-x), min(h, height-y)
	if w <= 0 || h <= 0 {
		return 0, 0, 0, 0, badRequest("Invalid region %q: it is empty", s)
	}
	return x, y, w, h, nil
}

// parseSize resolves the size parameter for a rw×rh region. Version 3
// forms are max, w,, ,h, pct:n, w,h and !w,h, each optionally prefixed by ^
// to allow upscaling; without ^ a size larger than the region is a 400.
// Version 2 also has full, has no ^, and always allows upscaling
// (sizeAboveFull). Sizes beyond the server's limits are a 400, except max,
// which the limits constrain.
func parseSize(s string, version, rw, rh int, lim limits) (w, h int, err error) {
	up := version == 2
	spec := s
	if strings.HasPrefix(spec, "^") {
		if version == 2 {
			return 0, 0, badRequest("Invalid size %q", s)
		}
		up, spec = true, spec[1:]
	}
	fw, fh := float64(rw), float64(rh)
	switch {
	case spec == "max" || (version == 2 && spec == "full"):
		scale := 1.0
		if up && version == 3 {
			// ^max: as large as the limits allow.
			scale = math.Inf(1)
		}
		if version == 2 && spec == "full" {
			// 2.1's full is the region's own size, limits or not; a
			// region beyond them is refused below.
			w, h = rw, rh
			break
		}
		scale = math.Min(scale, float64(lim.maxWidth)/fw)
		scale = math.Min(scale, float64(lim.maxHeight)/fh)
		scale = math.Min(scale, math.Sqrt(float64(lim.maxArea)/(fw*fh)))
		w, h = int(math.Floor(fw*scale+1e-9)), int(math.Floor(fh*scale+1e-9))
		if scale == 1 {
			w, h = rw, rh
		}
	case strings.HasPrefix(spec, "pct:"):
		n, ok := parseFloat(spec[4:])
		if !ok {
			return 0, 0, badRequest("Invalid size %q", s)
		}
		if n > 100 && !up {
			return 0, 0, badRequest("Invalid size %q: above 100 percent needs ^", s)
		}
		w, h = roundPx(fw*n/100), roundPx(fh*n/100)
	case strings.HasPrefix(spec, "!"):
		v, ok := parseInts(spec[1:], 2)
		if !ok {
			return 0, 0, badRequest("Invalid size %q", s)
		}
		scale := math.Min(float64(v[0])/fw, float64(v[1])/fh)
		if !up {
			scale = math.Min(scale, 1)
		}
		w, h = min(roundPx(fw*scale), v[0]), min(roundPx(fh*scale), v[1])
		if !up {
			w, h = min(w, rw), min(h, rh)
		}
	case strings.HasPrefix(spec, ","):
		v, ok := parseInts(spec[1:], 1)
		if !ok {
			return 0, 0, badRequest("Invalid size %q", s)
		}
		h = v[0]
		w = roundPx(fw * float64(h) / fh)
	case strings.HasSuffix(spec, ","):
		v, ok := parseInts(strings.TrimSuffix(spec, ","), 1)
		if !ok {
			return 0, 0, badRequest("Invalid size %q", s)
		}
		w = v[0]
		h = roundPx(fh * float64(w) / fw)
	default:
		v, ok := parseInts(spec, 2)
		if !ok {
			return 0, 0, badRequest("Invalid size %q", s)
		}
		w, h = v[0], v[1]
	}
	if w <= 0 || h <= 0 {
		return 0, 0, badRequest("Invalid size %q: the resulting image would be empty", s)
	}
	if !up && (w > rw || h > rh) {
		return 0, 0, badRequest("Invalid size %q: larger than the region needs ^", s)
	}
	if w > lim.maxWidth || h > lim.maxHeight || int64(w)*int64(h) > lim.maxArea {
		return 0, 0, badRequest("Invalid size %q: %d×%d is beyond the server's limits (maxWidth %d, maxHeight %d, maxArea %d)",
			s, w, h, lim.maxWidth, lim.maxHeight, lim.maxArea)
	}
	return w, h, nil
}

// parseRotation reads [!]n with 0 ≤ n ≤ 360. Multiples of 90 are served;
// other angles are valid but not implemented (501).
func parseRotation(s string) (mirror bool, deg int, err error) {
	spec := s
	if strings.HasPrefix(spec, "!") {
		mirror, spec = true, spec[1:]
	}
	n, ok := parseFloat(spec)
	if !ok || n > 360 {
		return false, 0, badRequest("Invalid rotation %q", s)
	}
	if math.Mod(n, 90) != 0 {
		return false, 0, notImplemented("Rotation by %s degrees is not supported: only multiples of 90", spec)
	}
	return mirror, int(n) % 360, nil
}

// parseQualityFormat reads quality.format. Version 2 also accepts native,
// version 1.1's name for default, which older clients still send.
func parseQualityFormat(s string, version int) (quality, format string, err error) {
	i := strings.LastIndexByte(s, '.')
	if i < 0 {
		return "", "", badRequest("Invalid quality and format %q", s)
	}
	quality, format = s[:i], s[i+1:]
	switch quality {
	case "default", "color", "gray", "bitonal":
	case "native":
		if version != 2 {
			return "", "", badRequest("Invalid quality %q", quality)
		}
		quality = "default"
	default:
		return "", "", badRequest("Invalid quality %q", quality)
	}
	if _, ok := formats[format]; !ok {
		if knownFormats[format] {
			return "", "", notImplemented("Format %q is not supported", format)
		}
		return "", "", badRequest("Invalid format %q", format)
	}
	return quality, format, nil
}

// parseRequest resolves the four image request parameters against a
// width×height image.
func parseRequest(version int, region, size, rotation, qf string, width, height int, lim limits) (imageRequest, error) {
	var r imageRequest
	var err error
	if r.x, r.y, r.w, r.h, err = parseRegion(region, width, height); err != nil {
		return r, err
	}
	if r.width, r.height, err = parseSize(size, version, r.w, r.h, lim); err != nil {
		return r, err
	}
	if r.mirror, r.rotate, err = parseRotation(rotation); err != nil {
		return r, err
	}
	if r.quality, r.format, err = parseQualityFormat(qf, version); err != nil {
		return r, err
	}
	return r, nil
}

// canonical is the canonical path of a resolved request
// ({region}/{size}/{rotation}/{quality}.{format}) for the Link
// rel="canonical" header: full or x,y,w,h; for version 3 max, w,h or ^w,h;
// for version 2 full, w, (aspect kept) or w,h.
func (r imageRequest) canonical(version, width, height int, lim limits) string {
	region := "full"
	if r.x != 0 || r.y != 0 || r.w != width || r.h != height {
		region = fmt.Sprintf("%d,%d,%d,%d", r.x, r.y, r.w, r.h)
	}
	var size string
	if version == 3 {
		mw, mh, err := parseSize("max", 3, r.w, r.h, lim)
		switch {
		case err == nil && mw == r.width && mh == r.height:
			size = "max"
		case r.width > r.w || r.height > r.h:
			size = fmt.Sprintf("^%d,%d", r.width, r.height)
		default:
			size = fmt.Sprintf("%d,%d", r.width, r.height)
		}
	} else {
		switch {
		case r.width == r.w && r.height == r.h:
			size = "full"
		case roundPx(float64(r.h)*float64(r.width)/float64(r.w)) == r.height:
			size = fmt.Sprintf("%d,", r.width)
		default:
			size = fmt.Sprintf("%d,%d", r.width, r.height)
		}
	}
	rot := strconv.Itoa(r.rotate)
	if r.mirror {
		rot = "!" + rot
	}
	return region + "/" + size + "/" + rot + "/" + r.quality + "." + r.format
}
