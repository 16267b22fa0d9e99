package pipeline

// Regions, thumbnails and DeepZoom tiles: all are large_image's getRegion
// (TileSource.getRegion) assembled from unstyled tiles read through readRaw, so they
// share the raw-tile cache with the tile routes.

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilecache"
	"github.com/tileserver/tileserver/tilesource"
)

// Region returns an encoded region (the region route of girder_large_image/rest/tiles.py and TileSource.getRegion). A zero-area result is
// an empty body.
func (p *Pipeline) Region(ctx context.Context, loc Locator, req RegionRequest) (*Result, error) {
	enc, mime, err := valueEncoding(loc, req.Encode.Encoding)
	if err != nil {
		return nil, err
	}
	style, err := parseStyle(req.Style, http.StatusBadRequest)
	if err != nil {
		return nil, err
	}
	rr, err := newRegionParams(req)
	if err != nil {
		return nil, err
	}
	rr.style = style
	rr.pyramid = p.pyramidRegions
	var res *Result
	err = p.withSource(ctx, loc, func(src tilesource.Source) error {
		plan, err := planRegion(src.Info(), &rr, enc)
		if err != nil {
			return err
		}
		if enc == "TILED" && !plan.empty {
			// Base pixels per output pixel, from the level read and
			// the scaling.
			info := src.Info()
			req.Encode.setPixelSize(info, float64(plan.x1-plan.x0)*math.Ldexp(1, info.Levels-1-plan.level)/float64(plan.outW))
		}
		render := func(ctx context.Context) (*encode.Image, error) {
			if plan.empty {
				return nil, nil
			}
			return p.renderRegion(ctx, loc, src, rr, plan, outputMode(enc))
		}
		if plan.empty || plan.canvasW*plan.canvasH > maxCachedRegionPixels {
			img, err := render(ctx)
			if err != nil {
				return err
			}
			px := 0
			if img != nil {
				px = img.Width * img.Height
			}
			return p.step(ctx, px, func() error {
				res, err = encodeResult(img, enc, req.Encode, mime, "")
				return err
			})
		}
		// Regions are cached as thumbnails are, under what decides their
		// bytes, so the same area asked in other units is one entry.
		key := tilecache.Key(identity(loc), p.areaKind("region"), plan.key(), strconv.Itoa(rr.frame),
			rr.fill.key(), encodingKey(enc, req.Encode), style.key)
		res, err = p.cachedEncoded(ctx, key, enc, mime, req.Encode, render)
		return err
	})
	return res, err
}

// areaKind names a kind of cached image of an area (region, thumbnail,
// ...) so that the pixels of Config.RegionsFromPyramid are never served as
// large_image's, or the other way round, by a shared tier.
func (p *Pipeline) areaKind(kind string) string {
	if p.pyramidRegions {
		return kind + "@pyramid"
	}
	return kind
}

// maxCachedRegionPixels bounds the regions kept in the tile cache: those
// a viewer or a page asks for again; larger ones would push out many
// tiles each.
const maxCachedRegionPixels = 2048 * 2048

// regionImage assembles rr from the source of loc.
func (p *Pipeline) regionImage(ctx context.Context, loc Locator, rr regionParams, enc string) (*encode.Image, error) {
	var img *encode.Image
	err := p.withSource(ctx, loc, func(src tilesource.Source) error {
		var err error
		img, err = p.region(ctx, loc, src, rr, enc, outputMode(enc))
		return err
	})
	return img, err
}

// cachedEncoded returns the image render makes, encoded as enc, through
// the tile cache under key.
func (p *Pipeline) cachedEncoded(ctx context.Context, key, enc, mime string, o EncodeOptions, render func(context.Context) (*encode.Image, error)) (*Result, error) {
	data, status, err := p.cached(ctx, key, func(ctx context.Context) ([]byte, error) {
		img, err := render(ctx)
		if err != nil {
			return nil, err
		}
		var res *Result
		px := 0
		if img != nil {
			px = img.Width * img.Height
		}
		if err := p.step(ctx, px, func() error {
			res, err = encodeResult(img, enc, o, mime, "")
			return err
		}); err != nil {
			return nil, err
		}
		return res.Data, nil
	})
	if err != nil {
		return nil, publicError(err)
	}
	return &Result{Data: data, MIME: mime, CacheStatus: status}, nil
}

// Thumbnail returns the whole image scaled into a box (TileSource.getThumbnail),
// cached in the tile cache.
func (p *Pipeline) Thumbnail(ctx context.Context, loc Locator, req ThumbnailRequest) (*Result, error) {
	enc, mime, err := valueEncoding(loc, req.Encode.Encoding)
	if err != nil {
		return nil, err
	}
	style, err := parseStyle(req.Style, http.StatusBadRequest)
	if err != nil {
		return nil, err
	}
	if (req.Width != 0 && req.Width < 2) || (req.Height != 0 && req.Height < 2) {
		return nil, tilesource.BadRequest("Value Error: Invalid width or height.  Minimum value is 2.")
	}
	w, h := req.Width, req.Height
	if w == 0 && h == 0 {
		w, h = 256, 256
	}
	rr := regionParams{frame: req.Frame, style: style, pyramid: p.pyramidRegions}
	if w != 0 {
		rr.maxW = &w
	}
	if h != 0 {
		rr.maxH = &h
	}
	if rr.fill, err = parseFill(req.Fill); err != nil {
		return nil, err
	}
	key := tilecache.Key(identity(loc), p.areaKind("thumbnail"), strconv.Itoa(w), strconv.Itoa(h),
		strconv.Itoa(req.Frame), rr.fill.key(), encodingKey(enc, req.Encode), style.key)
	o := req.Encode
	if enc == "TILED" {
		// The pixel size a tiled thumbnail records: the whole image in
		// the box, before any fill.
		if err := p.withSource(ctx, loc, func(src tilesource.Source) error {
			info := src.Info()
			if tw, _ := calculateWidthHeight(rr.maxW, rr.maxH, info.SizeX, info.SizeY); tw > 0 {
				o.setPixelSize(info, float64(info.SizeX)/float64(tw))
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return p.cachedEncoded(ctx, key, enc, mime, o, func(ctx context.Context) (*encode.Image, error) {
		return p.regionImage(ctx, loc, rr, enc)
	})
}

// DZITile returns a DeepZoom tile (the DeepZoom routes of girder_large_image/rest/tiles.py).
func (p *Pipeline) DZITile(ctx context.Context, loc Locator, req DZIRequest) (*Result, error) {
	ts, ov := req.TileSize, req.Overlap
	if ts == 0 {
		ts = 256
	}
	if ts < 1 || ts&(ts-1) != 0 {
		return nil, tilesource.BadRequest("Invalid tilesize")
	}
	if ov < 0 {
		return nil, tilesource.BadRequest("Invalid overlap")
	}
	// Bound the tile before the coordinate arithmetic below, which must not
	// overflow.
	if ts > 1<<20 {
		return nil, tilesource.BadRequest("Invalid tilesize")
	}
	if ov > ts {
		return nil, tilesource.BadRequest("Invalid overlap")
	}
	if err := checkOutput(ts+2*ov, ts+2*ov); err != nil {
		return nil, err
	}
	enc := req.Encode.Encoding
	if enc == "" {
		enc = "JPEG"
	}
	if enc != "JPEG" && enc != "PNG" {
		return nil, tilesource.BadRequest("Only JPEG and PNG encodings are supported")
	}
	mime, _ := encode.MIME(enc)
	style, err := parseStyle(req.Style, http.StatusBadRequest)
	if err != nil {
		return nil, err
	}
	sizeX, sizeY, err := p.DZIInfo(ctx, loc)
	if err != nil {
		return nil, err
	}
	maxLevel := int(math.Ceil(math.Log2(float64(max(sizeX, sizeY)))))
	if req.Level < 1 || req.Level > maxLevel {
		return nil, tilesource.BadRequest("level must be between 1 and the image scale")
	}
	// Far outside the image at any level; also keeps the products below
	// within int.
	if req.X > sizeX || req.X < -sizeX {
		return nil, tilesource.BadRequest("x is outside layer")
	}
	if req.Y > sizeY || req.Y < -sizeY {
		return nil, tilesource.BadRequest("y is outside layer")
	}
	f := 1 << (maxLevel - req.Level)
	left, top := (req.X*ts-ov)*f, (req.Y*ts-ov)*f
	right, bottom := ((req.X+1)*ts+ov)*f, ((req.Y+1)*ts+ov)*f
	w, h := ts+2*ov, ts+2*ov
	if left < 0 {
		w += left / f // truncates toward zero, as Python's int()
		left = 0
	}
	if top < 0 {
		h += top / f
		top = 0
	}
	if left >= sizeX {
		return nil, tilesource.BadRequest("x is outside layer")
	}
	if top >= sizeY {
		return nil, tilesource.BadRequest("y is outside layer")
	}
	if right > sizeX {
		right = sizeX
		w = (right - left + f - 1) / f
	}
	if bottom > sizeY {
		bottom = sizeY
		h = (bottom - top + f - 1) / f
	}
	fl, ft, fr, fb := float64(left), float64(top), float64(right), float64(bottom)
	rr := regionParams{left: &fl, top: &ft, right: &fr, bottom: &fb, maxW: &w, maxH: &h, frame: req.Frame, style: style,
		pyramid: p.pyramidRegions}
	key := tilecache.Key(identity(loc), p.areaKind("dzi"), strconv.Itoa(req.Level), strconv.Itoa(req.X),
		strconv.Itoa(req.Y), strconv.Itoa(ts), strconv.Itoa(ov), strconv.Itoa(req.Frame),
		encodingKey(enc, req.Encode), style.key)
	return p.cachedEncoded(ctx, key, enc, mime, req.Encode, func(ctx context.Context) (*encode.Image, error) {
		return p.regionImage(ctx, loc, rr, enc)
	})
}

// valueEncoding is encodingFor with the "Value Error: " prefix that the
// region-like routes use.
func valueEncoding(loc Locator, enc string) (string, string, error) {
	e, mime, err := encodingFor(loc, enc)
	if err != nil {
		return "", "", tilesource.BadRequest("Value Error: %s", err.(*tilesource.Error).Message)
	}
	return e, mime, nil
}

// setPixelSize records the millimetres per output pixel of TILED output:
// the image's pixel size times base pixels per output pixel, one scale for
// both axes, as large_image's _encodeTiledImage. Nothing when the pixel
// size is unknown.
func (o *EncodeOptions) setPixelSize(info *tilesource.Info, basePerOutput float64) {
	if info.MMX != nil && info.MMY != nil {
		o.mmX, o.mmY = *info.MMX*basePerOutput, *info.MMY*basePerOutput
	}
}

// encodeResult encodes img; nil (an empty region) becomes an empty body.
func encodeResult(img *encode.Image, enc string, o EncodeOptions, mime, status string) (*Result, error) {
	if img == nil || img.Width == 0 || img.Height == 0 {
		return &Result{Data: []byte{}, MIME: mime, CacheStatus: status}, nil
	}
	if err := checkEncodable(enc, o, img.Width, img.Height); err != nil {
		return nil, err
	}
	if enc == "TILED" {
		data, err := encode.EncodeTiled(img, encode.Tiled{Compression: o.TIFFCompression, Quality: o.JPEGQuality,
			MMX: o.mmX, MMY: o.mmY})
		if err != nil {
			return nil, publicError(err)
		}
		return &Result{Data: data, MIME: mime, CacheStatus: status}, nil
	}
	data, err := encode.Encode(img, encodeOptions(enc, o))
	if err != nil {
		return nil, publicError(err)
	}
	return &Result{Data: data, MIME: mime, CacheStatus: status}, nil
}

// regionParams is a validated region request in the units the algorithm
// uses.
type regionParams struct {
	left, top, right, bottom *float64
	regionW, regionH         *float64
	units, unitsWH           string
	unitsWHGiven             bool
	maxW, maxH               *int
	fill                     fillSpec
	magnification, mmX, mmY  *float64
	exact                    bool
	frame                    int
	style                    styleSpec
	// noScale returns the assembled level pixels without the final
	// scaling, letterbox and mode change (large_image's resample=False
	// iteration used by statistics).
	noScale bool
	// geom, when set, receives where the assembled pixels lie in their
	// level.
	geom *regionGeom
	// pyramid reads the region from the level the output needs, stored or
	// not (Config.RegionsFromPyramid), instead of large_image's preferred
	// level.
	pyramid bool
}

// regionGeom places an assembled region in its level: its top-left level
// pixel, the level's tile size, and the level pixels per output pixel.
type regionGeom struct {
	x0, y0       int
	tileW, tileH int
	scale        float64
}

func intToFloat(v *int) *float64 {
	if v == nil {
		return nil
	}
	f := float64(*v)
	return &f
}

func newRegionParams(req RegionRequest) (regionParams, error) {
	rr := regionParams{
		left: req.Left, top: req.Top, right: req.Right, bottom: req.Bottom,
		regionW: req.RegionWidth, regionH: req.RegionHeight,
		maxW: req.Width, maxH: req.Height,
		magnification: req.Magnification, mmX: req.MMX, mmY: req.MMY,
		exact: req.Exact, frame: req.Frame,
	}
	if (rr.maxW != nil && *rr.maxW < 0) || (rr.maxH != nil && *rr.maxH < 0) {
		return rr, tilesource.BadRequest("Value Error: Invalid output width or height.  Minimum value is 0.")
	}
	var err error
	if rr.units, err = canonicalUnits(req.Units); err != nil {
		return rr, err
	}
	rr.unitsWH = rr.units
	if req.UnitsWH != "" {
		rr.unitsWHGiven = true
		if rr.unitsWH, err = canonicalUnits(req.UnitsWH); err != nil {
			return rr, err
		}
	}
	if req.Fill != "" && rr.maxW != nil && rr.maxH != nil {
		if rr.fill, err = parseFill(req.Fill); err != nil {
			return rr, err
		}
	} else if req.Fill != "" {
		if _, err = parseFill(req.Fill); err != nil {
			return rr, err
		}
	}
	// Girder's boolOrInt: a boolean word or an integer. large_image's
	// getRegion scales the same way whatever the value (only an absent
	// value, None, would mean NEAREST, and HTTP cannot send one); the
	// histogram reads it (histogramFilter).
	switch strings.ToLower(req.Resample) {
	case "", "true", "false", "on", "off", "yes", "no":
	default:
		if _, err := strconv.Atoi(strings.TrimSpace(req.Resample)); err != nil {
			return rr, tilesource.BadRequest(`"resample" parameter is an incorrect type.`)
		}
	}
	return rr, nil
}

// canonicalUnits maps unit aliases to large_image's names (TileSource._getRegionBounds).
func canonicalUnits(u string) (string, error) {
	switch strings.ToLower(u) {
	case "", "base", "base_pixel", "base_pixels":
		return "base_pixels", nil
	case "pixel", "pixels", "mag_pixel", "mag_pixels", "magnification_pixel", "magnification_pixels":
		return "mag_pixels", nil
	case "fraction":
		return "fraction", nil
	case "nm", "nanometer", "nanometers":
		return "nm", nil
	case "um", "μm", "micrometer", "micrometers", "micron", "microns":
		return "um", nil
	case "mm", "millimeter", "millimeters":
		return "mm", nil
	case "m", "meter", "meters":
		return "m", nil
	case "km", "kilometer", "kilometers":
		return "km", nil
	}
	return "", tilesource.BadRequest("Value Error: Invalid units '%s'", u)
}

// unitsPerMM converts a length unit to millimetres.
var unitsPerMM = map[string]float64{"nm": 1e6, "um": 1e3, "mm": 1, "m": 1e-3, "km": 1e-6}

// unitScale returns the factor from units to base pixels along one axis.
func unitScale(info *tilesource.Info, units string, xAxis bool, magScale *float64) (float64, error) {
	switch units {
	case "", "base_pixels":
		return 1, nil
	case "fraction":
		if xAxis {
			return float64(info.SizeX), nil
		}
		return float64(info.SizeY), nil
	case "mag_pixels":
		if magScale == nil {
			return 0, tilesource.BadRequest("Value Error: No magnification to use for units")
		}
		return *magScale, nil
	}
	mm := info.MMX
	if !xAxis {
		mm = info.MMY
	}
	if mm == nil || *mm <= 0 {
		return 0, tilesource.BadRequest("Value Error: No mm_x or mm_y to use for units")
	}
	return 1 / unitsPerMM[units] / *mm, nil
}

// levelForMagnification is getLevelForMagnification with rounding None:
// a fractional level, or ok=false when exact is asked and not met.
func levelForMagnification(info *tilesource.Info, mag, mmX, mmY *float64, exact bool) (float64, bool) {
	maxLevel := float64(info.Levels - 1)
	var ratios []float64
	round4 := func(v float64) float64 { return math.RoundToEven(v*1e4) / 1e4 }
	if mag != nil && info.Magnification != nil && *mag > 0 && *info.Magnification > 0 {
		ratios = append(ratios, round4(math.Log2(*mag / *info.Magnification)))
	}
	if mmX != nil && info.MMX != nil && *mmX > 0 {
		ratios = append(ratios, round4(math.Log2(*info.MMX / *mmX)))
	}
	if mmY != nil && info.MMY != nil && *mmY > 0 {
		ratios = append(ratios, round4(math.Log2(*info.MMY / *mmY)))
	}
	if len(ratios) == 0 {
		return maxLevel, true
	}
	if exact {
		for _, r := range ratios {
			if r != math.Trunc(r) || r != ratios[0] {
				return 0, false
			}
		}
	}
	sum := 0.0
	for _, r := range ratios {
		sum += r
	}
	level := maxLevel + round4(sum/float64(len(ratios)))
	if exact && (level < 0 || level > maxLevel) {
		return 0, false
	}
	return level, true
}

// calculateWidthHeight is large_image's _calculateWidthHeight (TileSource.getRegion
// step 4): the output size that fits rW×rH into the max box, aspect kept.
func calculateWidthHeight(maxW, maxH *int, rW, rH int) (int, int) {
	w, h, _ := calcWH(intToFloat(maxW), intToFloat(maxH), float64(rW), float64(rH))
	return w, h
}

// calcWH also returns the scale, region pixels per output pixel along the
// axis that decided the size.
func calcWH(maxW, maxH *float64, rW, rH float64) (int, int, float64) {
	if rW <= 0 || rH <= 0 || (maxW == nil && maxH == nil) {
		return 0, 0, 1
	}
	var mw, mh float64
	switch {
	case maxW == nil:
		mh = *maxH
		mw = 16 * mh
	case maxH == nil:
		mw = *maxW
		mh = 16 * mw
	default:
		mw, mh = *maxW, *maxH
	}
	sw := max(1, clampInt(rW*mh/rH))
	sh := max(1, clampInt(rH*mw/rW))
	if float64(sw) == mw || (mw*rH > mh*rW && float64(sh) != mh) {
		return sw, clampInt(mh), rH / mh
	}
	return clampInt(mw), sh, rW / mw
}

// preferredLevel is getPreferredLevel: the nearest populated level at or
// above level, then at most two levels of synthesis below it.
func preferredLevel(info *tilesource.Info, level int) int {
	level = min(max(level, 0), info.Levels-1)
	if info.AllLevelsPopulated {
		return level
	}
	requested := level
	for level < info.Levels-1 && !info.Stored[level] {
		level++
	}
	for level-requested >= maxSkippedLevels {
		level -= maxSkippedLevels
	}
	return level
}

// region runs large_image's TileSource.getRegion and returns the pixels, or
// nil for an empty result.
func (p *Pipeline) region(ctx context.Context, loc Locator, src tilesource.Source, rr regionParams, enc string, mode regionMode) (*encode.Image, error) {
	plan, err := planRegion(src.Info(), &rr, enc)
	if err != nil || plan.empty {
		return nil, err
	}
	return p.renderRegion(ctx, loc, src, rr, plan, mode)
}

// regionMode is what large_image's getRegion converts a region to before
// scaling or letterboxing it: the Pillow mode of its tile iterator, "RGBA"
// for PNG and TIFF output and "RGB" for any other encoding, or, for a
// region asked as a numpy array (the analysis routes, each frame of
// tile_frames), the region's own bands in 8 bits.
type regionMode int

const (
	modeOwnBands regionMode = iota
	modeRGB
	modeRGBA
	// modeTiled keeps the region's bands and sample format and scales
	// with libvips, as large_image's TILED output does.
	modeTiled
)

// outputMode is the mode of a region encoded as enc ("" for none).
func outputMode(enc string) regionMode {
	switch enc {
	case "":
		return modeOwnBands
	case "TILED":
		return modeTiled
	case "PNG", "TIFF":
		return modeRGBA
	}
	return modeRGB
}

// regionPlan is where a region's pixels come from and what size it is
// made: everything that decides its bytes besides the frame, fill, style
// and encoding, so it is the region's cache key too.
type regionPlan struct {
	empty                 bool
	level, x0, y0, x1, y1 int
	outW, outH            int
	// canvasW×canvasH is the final size, the fill's box included.
	canvasW, canvasH int
	// boxed scales box (left, top, right, bottom in the assembled
	// pixels, fractions allowed) to the output rather than the whole
	// assembly (see planRegion).
	boxed bool
	box   [4]float64
	// edgeCol and edgeRow: the last column (row) assembled is the
	// level's partial last one, replaced by the one before it before a
	// boxed scaling.
	edgeCol, edgeRow bool
}

// key is the canonical form of the plan for cache keys.
func (pl regionPlan) key() string {
	k := fmt.Sprintf("%d:%d,%d,%d,%d:%dx%d:%dx%d", pl.level, pl.x0, pl.y0, pl.x1, pl.y1,
		pl.outW, pl.outH, pl.canvasW, pl.canvasH)
	if pl.boxed {
		k += fmt.Sprintf(":%g,%g,%g,%g", pl.box[0], pl.box[1], pl.box[2], pl.box[3])
	}
	return k
}

// planRegion resolves rr against the image (steps 1 to 5 of
// TileSource.getRegion): the level to read, the area of that level and
// the output size. It sets rr.frame to the frame the style reads.
func planRegion(info *tilesource.Info, rr *regionParams, enc string) (regionPlan, error) {
	empty := regionPlan{empty: true}
	rr.frame = rr.style.st.EffectiveFrame(rr.frame)
	if rr.frame < 0 || rr.frame >= info.FrameCount() {
		return empty, tilesource.BadRequest("Frame does not exist")
	}
	full := info.Levels - 1

	// 1. Output scale from a magnification when no size is given.
	var magScale *float64
	var magLevel float64
	byMag := rr.maxW == nil && rr.maxH == nil &&
		(rr.magnification != nil || rr.mmX != nil || rr.mmY != nil)
	if byMag {
		l, ok := levelForMagnification(info, rr.magnification, rr.mmX, rr.mmY, rr.exact)
		if !ok {
			return empty, nil
		}
		magLevel = l
		s := math.Exp2(float64(full) - l)
		magScale = &s
	}

	// 2. Region bounds in base pixels.
	conv := func(v *float64, units string, xAxis bool) (*float64, error) {
		if v == nil {
			return nil, nil
		}
		s, err := unitScale(info, units, xAxis, magScale)
		if err != nil {
			return nil, err
		}
		r := *v * s
		return &r, nil
	}
	var vals [6]*float64
	var err error
	for i, c := range []struct {
		v     *float64
		units string
		x     bool
	}{{rr.left, rr.units, true}, {rr.top, rr.units, false}, {rr.right, rr.units, true},
		{rr.bottom, rr.units, false}, {rr.regionW, rr.unitsWH, true}, {rr.regionH, rr.unitsWH, false}} {
		if vals[i], err = conv(c.v, c.units, c.x); err != nil {
			return empty, err
		}
	}
	left, top, right, bottom, width, height := vals[0], vals[1], vals[2], vals[3], vals[4], vals[5]
	for i, size := range []int{info.SizeX, info.SizeY, info.SizeX, info.SizeY} {
		if vals[i] != nil && *vals[i] < 0 {
			*vals[i] += float64(size)
		}
	}
	if rr.unitsWHGiven {
		if width != nil && left != nil {
			right = nil
		}
		if height != nil && top != nil {
			bottom = nil
		}
	}
	x0, x1 := bounds(left, right, width, info.SizeX)
	y0, y1 := bounds(top, bottom, height, info.SizeY)
	rW, rH := x1-x0, y1-y0

	// 3 and 4. Output size, and the scale large_image's tile iterator
	// calls requestedScale.
	var outW, outH int
	scale := 1.0
	switch {
	case rr.maxW != nil || rr.maxH != nil:
		mw, mh := intToFloat(rr.maxW), intToFloat(rr.maxH)
		outW, outH, scale = calcWH(mw, mh, float64(rW), float64(rH))
	case magScale != nil && *magScale != 1:
		mw, mh := float64(rW) / *magScale, float64(rH) / *magScale
		outW, outH, _ = calcWH(&mw, &mh, float64(rW), float64(rH))
		scale = *magScale
	default:
		outW, outH = rW, rH
	}
	if outW <= 0 || outH <= 0 || rW <= 0 || rH <= 0 {
		return empty, nil
	}
	// The fill canvas is at least the requested box: check what will be
	// allocated, not only the scaled image.
	canvasW, canvasH := outW, outH
	if rr.fill.set && rr.maxW != nil && rr.maxH != nil {
		canvasW, canvasH = max(outW, *rr.maxW), max(outH, *rr.maxH)
	}
	if err := checkOutput(canvasW, canvasH); err != nil {
		return empty, err
	}
	// An image the encoder cannot write is refused before it is made
	// (analysis routes pass no encoding: they encode nothing).
	if enc != "" {
		if err := checkEncodable(enc, EncodeOptions{}, canvasW, canvasH); err != nil {
			return empty, err
		}
	}

	// 5. Level: the lowest with at least the needed resolution; liLevel
	// is large_image's (they differ only for RegionsFromPyramid).
	level, liLevel := full, full
	if outW != rW || outH != rH {
		ratio := math.Min(float64(outW)/float64(rW), float64(outH)/float64(rH))
		l := full + int(math.Ceil(math.RoundToEven(math.Log2(ratio)*1e4)/1e4))
		level = preferredLevel(info, max(0, l))
		liLevel = level
		if rr.pyramid {
			level = min(max(0, l), full)
		}
		if byMag && rr.exact && float64(level) != magLevel {
			return empty, nil
		}
	} else if byMag && rr.exact && float64(level) != magLevel {
		return empty, nil
	}
	var box [4]float64
	boxed, edgeCol, edgeRow, cutGrid := false, false, false, false
	if level < full {
		f := float64(int(1) << (full - level))
		// The span of this level large_image's area covers (large_image
		// cuts it on its own level's grid).
		fl := float64(int(1) << (full - liLevel))
		lx0, ly0 := int(float64(x0)/fl), int(float64(y0)/fl)
		lx1, ly1 := max(int(float64(x1)/fl), lx0+1), max(int(float64(y1)/fl), ly0+1)
		r := f / fl
		fx0, fy0, fx1, fy1 := float64(lx0)/r, float64(ly0)/r, float64(lx1)/r, float64(ly1)/r
		switch {
		case level == liLevel || info.Format != encode.Uint8 || info.Bands > 4 || enc == "TILED":
			// large_image cuts the area on the level's grid (below).
			cutGrid = true
		case math.Abs(fx1-fx0-float64(outW)) < 1 && math.Abs(fy1-fy0-float64(outH)) < 1:
			// The level read stands in for large_image's finer one and
			// the area is within a pixel of the output's size on it: the
			// output's size is cut from the level's grid where the area
			// starts (moved and stretched by less than an output pixel,
			// as large_image cuts a level the file stores). It is then the
			// zxy tiles as they stand, and no resampling is paid for a
			// shift no one sees (two passes made a region at 5× from
			// cached tiles take 32 ms instead of 12).
			x0, y0 = int(fx0), int(fy0)
			x1, y1 = x0+outW, y0+outH
		default:
			// Scaled anyway: scale exactly that span (its edges may fall
			// inside pixels), so the picture is where large_image puts
			// it, at no extra cost.
			x0, y0 = int(fx0), int(fy0)
			x1, y1 = int(math.Ceil(fx1)), int(math.Ceil(fy1))
			box = [4]float64{fx0 - float64(x0), fy0 - float64(y0), fx1 - float64(x0), fy1 - float64(y0)}
			boxed = box != [4]float64{0, 0, float64(x1 - x0), float64(y1 - y0)}
			// The level's last column and row lie partly beyond the image
			// (their pixels average in the file's padding); large_image's
			// kernel stops at the image's edge. Read into, they are
			// replaced by their whole neighbours.
			edgeCol = float64(x1) > float64(info.SizeX)/f && x1-x0 >= 2
			edgeRow = float64(y1) > float64(info.SizeY)/f && y1-y0 >= 2
		}
		if cutGrid {
			// large_image cuts the area on the level's grid.
			x0 = int(float64(x0) / f)
			x1 = max(int(float64(x1)/f), x0+1)
			y0 = int(float64(y0) / f)
			y1 = max(int(float64(y1)/f), y0+1)
		}
		scale /= f
	}
	if rr.geom != nil {
		*rr.geom = regionGeom{x0: x0, y0: y0, scale: scale, tileW: info.TileWidth, tileH: info.TileHeight}
	}
	if err := checkOutput(x1-x0, y1-y0); err != nil {
		return empty, err
	}
	return regionPlan{level: level, x0: x0, y0: y0, x1: x1, y1: y1, outW: outW, outH: outH,
		canvasW: canvasW, canvasH: canvasH, boxed: boxed, box: box,
		edgeCol: boxed && edgeCol, edgeRow: boxed && edgeRow}, nil
}

// renderRegion makes the pixels of a planned region (steps 6 to 9 of
// TileSource.getRegion).
func (p *Pipeline) renderRegion(ctx context.Context, loc Locator, src tilesource.Source, rr regionParams, plan regionPlan, mode regionMode) (*encode.Image, error) {
	info := src.Info()
	level, x0, y0, x1, y1, outW, outH := plan.level, plan.x0, plan.y0, plan.x1, plan.y1, plan.outW, plan.outH

	// 6. Assembly from unstyled tiles of the level.
	zxy := rr.pyramid && zxyPixelsApply(loc, info, level)
	img, err := p.assemble(ctx, loc, src, rr.frame, level, x0, y0, x1, y1, zxy)
	if err != nil {
		return nil, err
	}
	// Style or colour-manage at the level, as large_image does per tile,
	// before any scaling. Every route reads pixels this way, the analysis
	// ones (pixel, histogram, bands, auto ranges) included: large_image's
	// tile iterator gets its tiles from getTile, which applies the ICC
	// correction unless the style turns it off.
	if rr.style.pixels() {
		if img, err = p.styleRegion(ctx, loc, src, rr.style.st, rr.frame, level, x0, y0, x1, y1, zxy, img); err != nil {
			return nil, err
		}
	} else if profile, intent := rr.style.profile(info); profile != nil {
		img = iccTransform(img, profile, intent)
	}
	if rr.noScale {
		return img, nil
	}

	// 7. Final scaling, in the output's mode.
	if img.Width != outW || img.Height != outH || plan.boxed {
		if err := p.step(ctx, img.Width*img.Height+outW*outH, func() error {
			var err error
			if plan.boxed {
				img = replicateEdges(img, plan.edgeCol, plan.edgeRow)
				img, err = scaleBox(img, plan.box, outW, outH, mode)
			} else {
				img, err = scaleRegion(img, outW, outH, mode)
			}
			return err
		}); err != nil {
			return nil, err
		}
	}

	// 8. Letterbox, in the output's mode.
	if rr.fill.set && rr.maxW != nil && rr.maxH != nil {
		img = letterbox(img, *rr.maxW, *rr.maxH, rr.fill, mode)
	}
	return img, nil
}

// bounds resolves one axis of the region: defaults, rounding (Python's
// round half to even) and clamping to [0, size].
func bounds(lo, hi, length *float64, size int) (int, int) {
	var l, r float64
	switch {
	case lo != nil:
		l = *lo
	case hi != nil && length != nil:
		l = *hi - *length
	}
	switch {
	case hi != nil:
		r = *hi
	case length != nil:
		r = l + *length
	default:
		r = float64(size)
	}
	il := min(max(clampInt(math.RoundToEven(l)), 0), size)
	ir := min(max(clampInt(math.RoundToEven(r)), il), size)
	return il, ir
}

// assemble pastes the tiles of level z covering [x0, x1)×[y0, y1) (level
// pixels) into one image: unstyled raw tiles, or with zxy the zxy route's
// JPEG tiles decoded (zxyPixels).
func (p *Pipeline) assemble(ctx context.Context, loc Locator, src tilesource.Source, frame, z, x0, y0, x1, y1 int, zxy bool) (*encode.Image, error) {
	read := p.readRaw
	if zxy {
		read = p.zxyPixels
	}
	info := src.Info()
	tw, th := info.TileWidth, info.TileHeight
	out := encode.NewImage(x1-x0, y1-y0, info.Bands, info.Format)
	cols, rows := info.TileCount(z)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for ty := y0 / th; ty <= (y1-1)/th && ty < rows; ty++ {
		for tx := x0 / tw; tx <= (x1-1)/tw && tx < cols; tx++ {
			g.Go(func() error {
				t, err := read(gctx, loc, src, frame, z, tx, ty)
				if err != nil {
					return err
				}
				paste(out, t, tx*tw-x0, ty*th-y0)
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// scaleRegion scales the assembled region to the output size as
// large_image's getRegion does: single-band 16-bit pixels by nearest
// neighbour (keeping their band and 16 bits, in any mode: numpy does it),
// everything else through Pillow, converted to mode first (so an alpha
// band dropped for JPEG weighs nothing in the scaling). A 16-bit region
// asked in its own bands comes back 16-bit, its 8-bit samples ×257.
func scaleRegion(img *encode.Image, w, h int, mode regionMode) (*encode.Image, error) {
	if mode == modeTiled {
		// vimg.resize in _encodeTiledImage: libvips' LANCZOS3, any format.
		return encode.Resize(img, w, h, encode.Lanczos3)
	}
	if img.Format == encode.Uint16 && img.Bands == 1 {
		return nearestResize(img, w, h), nil
	}
	wide := img.Format == encode.Uint16 && mode == modeOwnBands
	out, err := resizeImage(toMode(img, mode), w, h)
	if err != nil || !wide {
		return out, err
	}
	return widen(out), nil
}

// replicateEdges returns img with its last column and/or row replaced by
// the one before it (a copy; img may be shared).
func replicateEdges(img *encode.Image, col, row bool) *encode.Image {
	if !col && !row {
		return img
	}
	out := &encode.Image{Width: img.Width, Height: img.Height, Bands: img.Bands, Format: img.Format,
		Pix: append([]byte(nil), img.Pix...)}
	ps, stride := out.PixelSize(), out.Stride()
	if col {
		for y := range out.Height {
			r := out.Pix[y*stride : (y+1)*stride]
			copy(r[(out.Width-1)*ps:], r[(out.Width-2)*ps:(out.Width-1)*ps])
		}
	}
	if row {
		copy(out.Pix[(out.Height-1)*stride:], out.Pix[(out.Height-2)*stride:(out.Height-1)*stride])
	}
	return out
}

// scaleBox scales the area box of an 8-bit image to w×h in mode with
// Pillow's LANCZOS, as large_image's getRegion shrinks the full-resolution
// pixels the image stands in for (planRegion's boxed plans).
func scaleBox(img *encode.Image, box [4]float64, w, h int, mode regionMode) (*encode.Image, error) {
	out, ok := pilResizeBox(toMode(img, mode), box, w, h, pilLanczos)
	if !ok {
		return nil, tilesource.Errorf(http.StatusInternalServerError, "Internal I/O failure: cannot scale the region")
	}
	return out, nil
}

// widen returns an 8-bit image as 16-bit samples v×257 (numpy's
// astype(uint16) * 257 in large_image's getRegion).
func widen(img *encode.Image) *encode.Image {
	out := encode.NewImage(img.Width, img.Height, img.Bands, encode.Uint16)
	for i, v := range img.Pix {
		binary.NativeEndian.PutUint16(out.Pix[2*i:], uint16(v)*257)
	}
	return out
}

// resizeImage scales as large_image's getRegion and getAssociatedImage
// do: Pillow's LANCZOS, or BICUBIC when the width grows. 8-bit images of up
// to 4 bands (everything large_image hands to Pillow) go through
// pilResize; others through libvips.
func resizeImage(img *encode.Image, w, h int) (*encode.Image, error) {
	k, f := encode.Lanczos3, pilLanczos
	if w > img.Width {
		k, f = encode.Cubic, pilBicubic
	}
	if out, ok := pilResize(img, w, h, f); ok {
		return out, nil
	}
	return encode.Resize(img, w, h, k)
}

// nearestResize samples col int(i·W/w), row int(j·H/h).
func nearestResize(img *encode.Image, w, h int) *encode.Image {
	out := encode.NewImage(w, h, img.Bands, img.Format)
	ps := img.PixelSize()
	for j := range h {
		sy := int(int64(j) * int64(img.Height) / int64(h))
		for i := range w {
			sx := int(int64(i) * int64(img.Width) / int64(w))
			so := sy*img.Stride() + sx*ps
			copy(out.Pix[(j*w+i)*ps:], img.Pix[so:so+ps])
		}
	}
	return out
}

// fillSpec is a parsed fill parameter.
type fillSpec struct {
	set    bool
	corner bool
	color  rgba
}

func (f fillSpec) key() string {
	if !f.set {
		return ""
	}
	return fmt.Sprintf("%t:%02x%02x%02x%02x", f.corner, f.color.r, f.color.g, f.color.b, f.color.a)
}

// parseFill reads fill: a colour, "corner:<colour>", or "none", as
// large_image's _letterboxImage does (the prefix in any case, the colour
// with its exact-case R/G/B overrides).
func parseFill(s string) (fillSpec, error) {
	if s == "" || strings.EqualFold(s, "none") {
		return fillSpec{}, nil
	}
	f := fillSpec{set: true}
	if len(s) >= len("corner:") && strings.EqualFold(s[:len("corner:")], "corner:") {
		f.corner = true
		s = s[len("corner:"):]
	}
	c, err := parseColour(s, true)
	if err != nil {
		return fillSpec{}, err
	}
	f.color = c
	return f, nil
}

// letterbox converts img to mode and pads it to at least w×h with the fill
// colour (in that mode, as Pillow's ImageColor.getcolor gives it), centred
// or at the top left for corner fills (large_image's _letterboxImage).
func letterbox(img *encode.Image, w, h int, f fillSpec, mode regionMode) *encode.Image {
	colour := f.color.bands(min(img.Bands, 4))
	if mode == modeTiled {
		// Tiled output keeps the format: a 16-bit fill is the colour ×257.
		if img.Format == encode.Uint16 {
			for i := range colour {
				colour[i] *= 257
			}
		}
	} else {
		img = toMode(img, mode)
		colour = f.color.bands(img.Bands)
	}
	cw, ch := max(w, img.Width), max(h, img.Height)
	out := encode.Pad(encode.NewImage(0, 0, img.Bands, img.Format), cw, ch, colour)
	x, y := 0, 0
	if !f.corner {
		x, y = (cw-img.Width)/2, (ch-img.Height)/2
	}
	paste(out, img, x, y)
	return out
}

// toMode converts to 8-bit samples in mode: RGBA, RGB, or the image's own
// bands (large_image's _imageToPIL with and without a mode).
func toMode(img *encode.Image, mode regionMode) *encode.Image {
	if mode == modeTiled {
		return img
	}
	img = encode.To8Bit(img)
	want := 3
	switch mode {
	case modeOwnBands:
		return img
	case modeRGBA:
		want = 4
	}
	if img.Bands == want {
		return img
	}
	out := encode.NewImage(img.Width, img.Height, want, encode.Uint8)
	n := img.Width * img.Height
	for i := range n {
		s := img.Pix[i*img.Bands : (i+1)*img.Bands]
		d := out.Pix[i*want : (i+1)*want]
		switch len(s) {
		case 1, 2:
			d[0], d[1], d[2] = s[0], s[0], s[0]
		default:
			d[0], d[1], d[2] = s[0], s[1], s[2]
		}
		if want == 4 {
			d[3] = 255
			if len(s) == 2 {
				d[3] = s[1]
			} else if len(s) >= 4 {
				d[3] = s[3]
			}
		}
	}
	return out
}
