package pipeline

// The pixel-analysis routes: histogram, bands, pixel and the frame montage
// (tile_frames). All read unstyled pixels through the region machinery, so
// they share the raw-tile cache with the image routes.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/style"
	"github.com/tileserver/tileserver/tilecache"
	"github.com/tileserver/tileserver/tilesource"
)

// maxHistogramBins caps bins so a request cannot allocate huge histograms.
const maxHistogramBins = 65536

// bandsSide is the largest side of the view band statistics use (TileSource.getBandInformation).
const bandsSide = 2048

// Histogram returns one histogram entry per band of a region (TileSource.histogram), computed in strips so the region is never held as float samples.
func (p *Pipeline) Histogram(ctx context.Context, loc Locator, req HistogramRequest) ([]style.BandHist, error) {
	bins := req.Bins
	if bins == 0 {
		bins = 256
	}
	if bins < 1 || bins > maxHistogramBins {
		return nil, tilesource.BadRequest("Value Error: bins must be between 1 and %d.", maxHistogramBins)
	}
	lo, hi := math.NaN(), math.NaN()
	if req.RangeMin != nil || req.RangeMax != nil {
		lo, hi = 0, 256
		if req.RangeMin != nil {
			lo = float64(*req.RangeMin)
		}
		if req.RangeMax != nil {
			hi = float64(*req.RangeMax)
		}
		if lo > hi {
			return nil, tilesource.BadRequest("Value Error: rangeMin must not be greater than rangeMax.")
		}
	}
	img, err := p.analysisRegion(ctx, loc, req.Region, !resampleRequested(req.Region.Resample))
	if err != nil {
		return nil, err
	}
	if img == nil || img.Width == 0 || img.Height == 0 {
		return []style.BandHist{}, nil
	}
	h := style.NewHistogrammer(bins, lo, hi, req.RoundRange, req.Density)
	forStrips(img, h.AddMinMax)
	forStrips(img, h.AddHist)
	return h.Result(), nil
}

// resampleRequested reports whether the histogram's resample parameter asks
// for scaling to the output size; absent or false reads the level as is.
func resampleRequested(v string) bool {
	switch strings.ToLower(v) {
	case "", "false", "off", "no":
		return false
	}
	return true
}

// analysisRegion validates a region request and returns its pixels: the
// stored values unless a style with band processing is given; noScale
// returns the level pixels without the final scaling.
func (p *Pipeline) analysisRegion(ctx context.Context, loc Locator, req RegionRequest, noScale bool) (*encode.Image, error) {
	style, err := parseStyle(req.Style, http.StatusBadRequest)
	if err != nil {
		return nil, err
	}
	rr, err := newRegionParams(req)
	if err != nil {
		return nil, err
	}
	rr.style, rr.raw, rr.noScale = style, true, noScale
	var img *encode.Image
	err = p.withSource(ctx, loc, func(src tilesource.Source) error {
		img, err = p.region(ctx, loc, src, rr, "")
		return err
	})
	return img, err
}

// Bands returns min, max, mean and stdev per band of a frame, keyed by
// 1-based band number (TileSource.getBandInformation), over the level covering 2048 pixels per
// side.
func (p *Pipeline) Bands(ctx context.Context, loc Locator, frame int) (map[string]style.BandInfo, error) {
	var img *encode.Image
	err := p.withSource(ctx, loc, func(src tilesource.Source) error {
		if frame < 0 || frame >= src.Info().FrameCount() {
			return tilesource.BadRequest("Frame does not exist")
		}
		var err error
		img, err = p.frameView(ctx, loc, src, frame, bandsSide)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := map[string]style.BandInfo{}
	if img == nil {
		return out, nil
	}
	h := style.NewHistogrammer(1, math.NaN(), math.NaN(), false, false)
	forStrips(img, h.AddMinMax)
	names := style.Interpretations(img.Bands)
	for i, m := range h.MinMax() {
		out[strconv.Itoa(i+1)] = style.BandInfo{Interpretation: names[i], Min: m.Min, Max: m.Max,
			Mean: m.Mean, Stdev: m.Stdev}
	}
	return out, nil
}

// Pixel returns {"value": [...], <mode letters>: 8-bit values} for the
// base pixel at (left, top), {} outside the image, or one such object per
// frame (with "frame") when FrameList is given (TileSource.getPixel).
func (p *Pipeline) Pixel(ctx context.Context, loc Locator, req PixelRequest) (any, error) {
	one := func(frame int) (map[string]any, error) {
		left, top, w, h := req.Left, req.Top, 1.0, 1.0
		img, err := p.analysisRegion(ctx, loc, RegionRequest{Left: &left, Top: &top, RegionWidth: &w,
			RegionHeight: &h, Units: req.Units, UnitsWH: "base_pixels", Frame: frame, Style: req.Style}, true)
		if err != nil {
			return nil, err
		}
		return pixelObject(img), nil
	}
	if req.FrameList == nil {
		return one(req.Frame)
	}
	if err := checkLoop("The number of frameList entries", len(req.FrameList)); err != nil {
		return nil, err
	}
	list := make([]map[string]any, 0, len(req.FrameList))
	for _, f := range req.FrameList {
		m, err := one(f)
		if err != nil {
			return nil, err
		}
		m["frame"] = f
		list = append(list, m)
	}
	return list, nil
}

// pixelObject describes the top-left pixel of img.
func pixelObject(img *encode.Image) map[string]any {
	m := map[string]any{}
	if img == nil || img.Width == 0 || img.Height == 0 {
		return m
	}
	px := encode.Crop(img, 0, 0, 1, 1)
	values := make([]any, px.Bands)
	ne := binary.NativeEndian
	for b := range px.Bands {
		o := b * px.Format.Size()
		switch px.Format {
		case encode.Uint8:
			values[b] = int64(px.Pix[o])
		case encode.Int8:
			values[b] = int64(int8(px.Pix[o]))
		case encode.Uint16:
			values[b] = int64(ne.Uint16(px.Pix[o:]))
		case encode.Int16:
			values[b] = int64(int16(ne.Uint16(px.Pix[o:])))
		case encode.Uint32:
			values[b] = int64(ne.Uint32(px.Pix[o:]))
		case encode.Int32:
			values[b] = int64(int32(ne.Uint32(px.Pix[o:])))
		case encode.Float32:
			values[b] = jsonFloat(float64(math.Float32frombits(ne.Uint32(px.Pix[o:]))))
		case encode.Float64:
			values[b] = jsonFloat(math.Float64frombits(ne.Uint64(px.Pix[o:])))
		}
	}
	m["value"] = values
	p8 := encode.To8Bit(px)
	letters := [...]string{1: "l", 2: "la", 3: "rgb", 4: "rgba"}[p8.Bands]
	for i, ch := range letters {
		m[string(ch)] = int(p8.Pix[i])
	}
	return m
}

// jsonFloat keeps NaN and infinities encodable (as null).
func jsonFloat(v float64) any {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return v
}

// TileFrames returns a montage of frames (TileSource.tileFrames and the quad_info route): frame k of the list
// at column k % framesAcross, row k / framesAcross, each cell the
// per-frame region output (exactly width×height with a fill). The result
// is cached in the tile cache.
func (p *Pipeline) TileFrames(ctx context.Context, loc Locator, req TileFramesRequest) (*Result, error) {
	enc, mime, err := valueEncoding(loc, req.Region.Encode.Encoding)
	if err != nil {
		return nil, err
	}
	style, err := parseStyle(req.Region.Style, http.StatusBadRequest)
	if err != nil {
		return nil, err
	}
	rr, err := newRegionParams(req.Region)
	if err != nil {
		return nil, err
	}
	rr.style = style
	if req.FramesAcross < 0 {
		return nil, tilesource.BadRequest("Value Error: framesAcross must be positive.")
	}
	if err := checkLoop("The number of frameList entries", len(req.FrameList)); err != nil {
		return nil, err
	}
	canon := req
	canon.Region.Style = ""
	canon.Region.Encode.Encoding = encodingKey(enc, req.Region.Encode)
	kb, err := json.Marshal(canon)
	if err != nil {
		return nil, publicError(err)
	}
	key := tilecache.Key(identity(loc), "tile_frames", string(kb), style.key)
	return p.cachedEncoded(ctx, key, enc, mime, req.Region.Encode, func() (*encode.Image, error) {
		var img *encode.Image
		err := p.withSource(ctx, loc, func(src tilesource.Source) error {
			var err error
			img, err = p.montage(ctx, loc, src, rr, req, enc)
			return err
		})
		return img, err
	})
}

// montage renders each frame's region and places it in the grid.
func (p *Pipeline) montage(ctx context.Context, loc Locator, src tilesource.Source, rr regionParams,
	req TileFramesRequest, enc string) (*encode.Image, error) {
	n := src.Info().FrameCount()
	var frames []int
	for _, f := range req.FrameList {
		if f >= 0 && f < n {
			frames = append(frames, f)
		}
	}
	if len(frames) == 0 {
		for f := range n {
			frames = append(frames, f)
		}
	}
	// Each frame is a region of its own: bound them, listed or all.
	if err := checkLoop("The number of frames", len(frames)); err != nil {
		return nil, err
	}
	if len(frames) == 1 {
		rr.frame = frames[0]
		return p.region(ctx, loc, src, rr, enc)
	}
	across := req.FramesAcross
	if across == 0 {
		across = int(math.Ceil(math.Sqrt(float64(len(frames)))))
	}
	across = min(across, len(frames))
	rows := (len(frames) + across - 1) / across
	var out *encode.Image
	var cellW, cellH int
	for k, f := range frames {
		fr := rr
		fr.frame = f
		img, err := p.region(ctx, loc, src, fr, enc)
		if err != nil {
			return nil, err
		}
		if img == nil {
			return nil, nil
		}
		if out == nil {
			cellW, cellH = img.Width, img.Height
			if rr.fill.set && rr.maxW != nil && rr.maxH != nil {
				cellW, cellH = *rr.maxW, *rr.maxH
			}
			if err := checkOutput(cellW*across, cellH*rows); err != nil {
				return nil, err
			}
			out = encode.NewImage(cellW*across, cellH*rows, img.Bands, img.Format)
		}
		if img.Bands != out.Bands || img.Format != out.Format {
			// Frames of one source share their layout; should one differ,
			// both become 8-bit RGBA rather than fail.
			img = toMode(img, true)
			out = toMode(out, true)
		}
		paste(out, img, (k%across)*cellW, (k/across)*cellH)
	}
	return out, nil
}
