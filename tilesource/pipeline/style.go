package pipeline

// Styles and ICC colour management on top of unstyled pixels. A styled
// tile or region is computed from unstyled pixels read through the raw-tile
// cache (other frames too), so every style shares the unstyled source's
// handles and cached tiles. Frame statistics for automatic ranges are
// computed once per source version and frame and kept in a small map.

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sync/singleflight"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/style"
	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/limits"
)

// iccDefault is large_image's icc_correction default: decoded output of a
// source with an ICC profile is converted to sRGB unless the style says
// {"icc": false}.
const iccDefault = true

// statsSide is the largest side of the frame view auto ranges are computed
// on (TileSource._getMinMax).
const statsSide = 1024

// maxStatsEntries bounds the frame statistics kept in memory.
const maxStatsEntries = 512

// stripRows is the height of the pieces statistics are computed in, so a
// large view is never held as float64 samples at once.
const stripRows = 64

// styleSpec is a validated style with its cache-key form.
type styleSpec struct {
	st  *style.Style
	key string
}

// parseStyle validates a style. Invalid styles give invalidStatus (404 on
// tile routes, 400 elsewhere) with the style package's message.
func parseStyle(s string, invalidStatus int) (styleSpec, error) {
	if strings.TrimSpace(s) == "" {
		return styleSpec{}, nil
	}
	st, err := style.Parse(s)
	if err != nil {
		var se *style.Error
		if errors.As(err, &se) {
			return styleSpec{}, tilesource.Errorf(invalidStatus, "%s", se.Message)
		}
		return styleSpec{}, &tilesource.Error{Status: invalidStatus, Message: style.ErrNotJSONObject, Cause: err}
	}
	// Each band is a pass over every pixel: bound their number before
	// any image work.
	if err := checkCount("The number of style bands", len(st.Bands()), limits.Get().MaxStyleBands); err != nil {
		return styleSpec{}, err
	}
	spec := styleSpec{st: st, key: st.Canonical()}
	// {"icc": true} renders exactly like no style: share its entries.
	if on, set := st.ICC(); !st.NeedsPixels() && (!set || on && st.ICCIntent() == encode.IntentPerceptual) {
		spec.key = ""
	}
	return spec, nil
}

// pixels reports whether the style does band processing.
func (s styleSpec) pixels() bool { return s.st.NeedsPixels() }

// profile returns the ICC profile to convert decoded output from, or nil
// when the source has none or the style turns correction off.
func (s styleSpec) profile(info *tilesource.Info) ([]byte, string) {
	if len(info.ICCProfile) == 0 {
		return nil, ""
	}
	on, set := s.st.ICC()
	if !set {
		on = iccDefault
	}
	if !on {
		return nil, ""
	}
	return info.ICCProfile, s.st.ICCIntent()
}

// iccTransform converts decoded pixels to sRGB. Pixels the transform cannot
// handle (floats, a profile that does not fit the bands, a broken profile)
// are served as stored rather than failing every tile of the file.
func iccTransform(img *encode.Image, profile []byte, intent string) *encode.Image {
	if profile == nil {
		return img
	}
	out, err := encode.ICCToSRGB(img, profile, intent)
	if err != nil {
		return img
	}
	return out
}

// frameGetter returns the unstyled pixels of a frame at the geometry being
// styled (a tile position, or a region of a level).
type frameGetter func(frame int) (*encode.Image, error)

// applyStyle runs the style on the pixels of frame and returns an 8-bit
// image (RGBA, or L for grey output) of the same size.
func (p *Pipeline) applyStyle(ctx context.Context, loc Locator, src tilesource.Source, st *style.Style,
	frame int, get frameGetter) (*encode.Image, error) {
	info := src.Info()
	env := &styleEnv{info: info, get: func(f int) (*encode.Image, error) {
		if f < 0 || f >= info.FrameCount() {
			return nil, tilesource.ErrFrameRange
		}
		return get(f)
	}, stats: func(f int) (*style.FrameStats, error) {
		return p.frameStats(ctx, loc, src, f)
	}}
	r, err := st.Apply(frame, env)
	if err != nil {
		var se *style.Error
		if errors.As(err, &se) {
			return nil, tilesource.BadRequest("%s", se.Message)
		}
		return nil, err
	}
	return rasterTo8Bit(r), nil
}

// styleEnv adapts the pipeline to style.Env.
type styleEnv struct {
	info  *tilesource.Info
	get   func(frame int) (*encode.Image, error)
	stats func(frame int) (*style.FrameStats, error)
}

func (e *styleEnv) Tile(frame int) (*style.Raster, error) {
	img, err := e.get(frame)
	if err != nil {
		return nil, err
	}
	return toRaster(img, 0, img.Height), nil
}

func (e *styleEnv) Stats(frame int) (*style.FrameStats, error) { return e.stats(frame) }

// BandNames maps channel names to bands when the source names its bands
// (one frame whose channels are the bands).
func (e *styleEnv) BandNames() map[string]int {
	if e.info.FrameCount() != 1 || len(e.info.Channels) != e.info.Bands {
		return nil
	}
	m := make(map[string]int, len(e.info.Channels))
	for i, name := range e.info.Channels {
		m[name] = i
	}
	return m
}

// toRaster converts rows [y0, y1) of img to a style raster.
func toRaster(img *encode.Image, y0, y1 int) *style.Raster {
	r := style.NewRaster(img.Width, y1-y0, img.Bands, img.Format.DType())
	n := len(r.Pix)
	off := y0 * img.Width * img.Bands
	ne := binary.NativeEndian
	src := img.Pix
	switch img.Format {
	case encode.Uint8:
		for i := range n {
			r.Pix[i] = float64(src[off+i])
		}
	case encode.Int8:
		for i := range n {
			r.Pix[i] = float64(int8(src[off+i]))
		}
	case encode.Uint16:
		for i := range n {
			r.Pix[i] = float64(ne.Uint16(src[2*(off+i):]))
		}
	case encode.Int16:
		for i := range n {
			r.Pix[i] = float64(int16(ne.Uint16(src[2*(off+i):])))
		}
	case encode.Uint32:
		for i := range n {
			r.Pix[i] = float64(ne.Uint32(src[4*(off+i):]))
		}
	case encode.Int32:
		for i := range n {
			r.Pix[i] = float64(int32(ne.Uint32(src[4*(off+i):])))
		}
	case encode.Float32:
		for i := range n {
			r.Pix[i] = float64(math.Float32frombits(ne.Uint32(src[4*(off+i):])))
		}
	case encode.Float64:
		for i := range n {
			r.Pix[i] = math.Float64frombits(ne.Uint64(src[8*(off+i):]))
		}
	}
	return r
}

// rasterTo8Bit converts styled output to an 8-bit image by large_image's
// rules (large_image's _imageToPIL), keeping its band layout.
func rasterTo8Bit(r *style.Raster) *encode.Image {
	r8 := style.To8BitRaster(r)
	out := encode.NewImage(r8.Width, r8.Height, r8.Bands, encode.Uint8)
	for i, v := range r8.Pix {
		out.Pix[i] = uint8(v)
	}
	return out
}

// statsCache keeps frame statistics per source version and frame.
type statsCache struct {
	mu    sync.Mutex
	m     map[string]*style.FrameStats
	group singleflight.Group
}

// frameStats returns the statistics of a whole frame for auto ranges:
// computed on the unstyled frame at the level that covers statsSide pixels
// per side (existing levels, no resampling, TileSource._getMinMax) and cached.
func (p *Pipeline) frameStats(ctx context.Context, loc Locator, src tilesource.Source, frame int) (*style.FrameStats, error) {
	info := src.Info()
	if frame < 0 || frame >= info.FrameCount() {
		return nil, tilesource.ErrFrameRange
	}
	key := identity(loc) + "\x00" + strconv.Itoa(frame)
	c := &p.stats
	c.mu.Lock()
	st, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return st, nil
	}
	// The statistics are shared by every caller of the frame, so they are
	// computed detached from the cancellation of the first one (whose
	// source stays acquired while it waits here): a request that went
	// away must not fail the others.
	ctx = context.WithoutCancel(ctx)
	v, err, _ := c.group.Do(key, func() (any, error) {
		img, err := p.frameView(ctx, loc, src, frame, statsSide)
		if err != nil || img == nil {
			return (*style.FrameStats)(nil), err
		}
		h := style.NewHistogrammer(256, math.NaN(), math.NaN(), false, false)
		forStrips(img, h.AddMinMax)
		forStrips(img, h.AddHist)
		st := &style.FrameStats{Bands: h.Result()}
		c.mu.Lock()
		if c.m == nil {
			c.m = map[string]*style.FrameStats{}
		}
		if len(c.m) >= maxStatsEntries {
			for k := range c.m {
				delete(c.m, k)
				break
			}
		}
		c.m[key] = st
		c.mu.Unlock()
		return st, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*style.FrameStats), nil
}

// frameView returns the unstyled pixels of a whole frame at the level that
// covers side pixels per side, without resampling: large_image's
// histogram(resample=False) of its unstyled source, ICC-corrected as every
// unstyled read is.
func (p *Pipeline) frameView(ctx context.Context, loc Locator, src tilesource.Source, frame, side int) (*encode.Image, error) {
	info := src.Info()
	w, h := min(info.SizeX, side), min(info.SizeY, side)
	rr := regionParams{maxW: &w, maxH: &h, frame: frame, units: "base_pixels", unitsWH: "base_pixels",
		noScale: true}
	return p.region(ctx, loc, src, rr, "", modeOwnBands)
}

// forStrips calls fn on img as style rasters of at most stripRows rows.
func forStrips(img *encode.Image, fn func(*style.Raster)) {
	for y := 0; y < img.Height; y += stripRows {
		fn(toRaster(img, y, min(img.Height, y+stripRows)))
	}
}

// styleRegion styles an assembled region (level pixels [x0, x1)×[y0, y1) of
// level z), reading other frames' pixels of the same area.
func (p *Pipeline) styleRegion(ctx context.Context, loc Locator, src tilesource.Source, st *style.Style,
	frame, z, x0, y0, x1, y1 int, zxy bool, main *encode.Image) (*encode.Image, error) {
	return p.applyStyle(ctx, loc, src, st, frame, func(f int) (*encode.Image, error) {
		if f == frame {
			return main, nil
		}
		return p.assemble(ctx, loc, src, f, z, x0, y0, x1, y1, zxy)
	})
}
