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
	var geom regionGeom
	img, err := p.analysisRegion(ctx, loc, req.Region, true, &geom)
	if err != nil {
		return nil, err
	}
	if img == nil || img.Width == 0 || img.Height == 0 {
		return []style.BandHist{}, nil
	}
	parts := []*encode.Image{img}
	if histogramResamples(req.Region.Resample) && math.Round(geom.scale*100) != 100 {
		parts = resampleByTiles(img, geom)
	}
	h := style.NewHistogrammer(bins, lo, hi, req.RoundRange, req.Density)
	for _, part := range parts {
		forStrips(part, h.AddMinMax)
	}
	for _, part := range parts {
		forStrips(part, h.AddHist)
	}
	return h.Result(), nil
}

// histogramResamples reads the histogram's resample parameter as
// large_image's TileIterator does: absent means resample (its default is
// True, whatever the route's documentation says), false or 0 reads the
// level as stored. Any other value resamples with LANCZOS: the iterator
// hands tiles bool(resample), so a Pillow filter number is not used.
func histogramResamples(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "false", "off", "no", "0":
		return false
	}
	return true
}

// resampleByTiles scales level pixels to the output resolution the way
// large_image's tile iterator does when it resamples: the level is cut
// into tiles of ceil(tile size · scale) level pixels, counted from the
// level's origin and clipped to the region, and each piece is converted
// to 8 bits and resized on its own with LANCZOS to int(size / scale) (at
// least 1) output pixels (LazyTileDict._resample, through Pillow).
func resampleByTiles(img *encode.Image, g regionGeom) []*encode.Image {
	tw := max(1, int(math.Ceil(float64(g.tileW)*g.scale)))
	th := max(1, int(math.Ceil(float64(g.tileH)*g.scale)))
	img = encode.To8Bit(img)
	var parts []*encode.Image
	for ty := g.y0 / th; ty*th < g.y0+img.Height; ty++ {
		top := max(ty*th, g.y0) - g.y0
		bottom := min((ty+1)*th, g.y0+img.Height) - g.y0
		for tx := g.x0 / tw; tx*tw < g.x0+img.Width; tx++ {
			left := max(tx*tw, g.x0) - g.x0
			right := min((tx+1)*tw, g.x0+img.Width) - g.x0
			piece := encode.Crop(img, left, top, right-left, bottom-top)
			w := max(1, int(float64(piece.Width)/g.scale))
			h := max(1, int(float64(piece.Height)/g.scale))
			if out, ok := pilResize(piece, w, h, pilLanczos); ok {
				piece = out
			} else if out, err := encode.Resize(piece, w, h, encode.Lanczos3); err == nil {
				piece = out
			}
			parts = append(parts, piece)
		}
	}
	return parts
}

// analysisRegion validates a region request and returns its pixels as the
// image routes see them before encoding (ICC-corrected, styled when a
// style with band processing is given); noScale returns the level pixels
// without the final scaling.
func (p *Pipeline) analysisRegion(ctx context.Context, loc Locator, req RegionRequest, noScale bool, geom *regionGeom) (*encode.Image, error) {
	style, err := parseStyle(req.Style, http.StatusBadRequest)
	if err != nil {
		return nil, err
	}
	rr, err := newRegionParams(req)
	if err != nil {
		return nil, err
	}
	rr.style, rr.noScale, rr.geom = style, noScale, geom
	var img *encode.Image
	err = p.withSource(ctx, loc, func(src tilesource.Source) error {
		img, err = p.region(ctx, loc, src, rr, "", modeOwnBands)
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
			Mean: m.Mean, Stdev: m.Stdev, MinMaxAs: scalarOf(img.Format)}
	}
	return out, nil
}

// scalarOf is the numpy scalar type of a sample format.
func scalarOf(f encode.Format) style.Scalar {
	switch f {
	case encode.Float64:
		return style.Float64Scalar
	case encode.Float32:
		return style.Float32Scalar
	}
	return style.IntScalar
}

// Pixel returns {"value": [...], <mode letters>: 8-bit values} for the
// base pixel at (left, top), {} outside the image, or one such object per
// frame (with "frame") when FrameList is given (TileSource.getPixel).
func (p *Pipeline) Pixel(ctx context.Context, loc Locator, req PixelRequest) (any, error) {
	one := func(frame int) (map[string]any, error) {
		left, top, w, h := req.Left, req.Top, 1.0, 1.0
		img, err := p.analysisRegion(ctx, loc, RegionRequest{Left: &left, Top: &top, RegionWidth: &w,
			RegionHeight: &h, Units: req.Units, UnitsWH: "base_pixels", Frame: frame, Style: req.Style}, true, nil)
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
	return p.cachedEncoded(ctx, key, enc, mime, req.Region.Encode, func(ctx context.Context) (*encode.Image, error) {
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
		return p.region(ctx, loc, src, rr, enc, outputMode(enc))
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
		img, err := p.region(ctx, loc, src, fr, enc, modeOwnBands)
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
			img = toMode(img, modeRGBA)
			out = toMode(out, modeRGBA)
		}
		pasteVisible(out, img, (k%across)*cellW, (k/across)*cellH)
	}
	return out, nil
}

// pasteVisible pastes src into dst at (x, y) as large_image's
// _addSubimageToImage does: with an alpha band (2 or 4 bands), only the
// pixels whose alpha is not zero, so a frame's transparent pixels leave the
// montage's zeros.
func pasteVisible(dst, src *encode.Image, x, y int) {
	if src.Bands != 2 && src.Bands != 4 {
		paste(dst, src, x, y)
		return
	}
	ps := src.PixelSize()
	if dst.PixelSize() != ps {
		return
	}
	ss := src.Format.Size()
	for r := max(y, 0); r < min(y+src.Height, dst.Height); r++ {
		for c := max(x, 0); c < min(x+src.Width, dst.Width); c++ {
			so := (r-y)*src.Stride() + (c-x)*ps
			if px := src.Pix[so : so+ps]; positive(px[ps-ss:], src.Format) {
				copy(dst.Pix[r*dst.Stride()+c*ps:], px)
			}
		}
	}
}

// positive reports whether the sample b of format f is above zero.
func positive(b []byte, f encode.Format) bool {
	ne := binary.NativeEndian
	switch f {
	case encode.Int8:
		return int8(b[0]) > 0
	case encode.Int16:
		return int16(ne.Uint16(b)) > 0
	case encode.Int32:
		return int32(ne.Uint32(b)) > 0
	case encode.Float32:
		return math.Float32frombits(ne.Uint32(b)) > 0
	case encode.Float64:
		return math.Float64frombits(ne.Uint64(b)) > 0
	}
	for _, v := range b {
		if v != 0 {
			return true
		}
	}
	return false
}
