package style

import (
	"errors"
	"math"
	"slices"
	"strings"
)

// Raster is a pixel buffer: Width×Height pixels of Bands interleaved
// samples, stored as float64 whatever the source type. DType is the numpy
// name of the data the values came from ("uint8", "uint16", "int8",
// "float32", …); it decides defaults (full ranges, 8-bit conversion).
type Raster struct {
	Width, Height, Bands int
	Pix                  []float64
	DType                string
}

// NewRaster allocates a zeroed raster.
func NewRaster(w, h, bands int, dtype string) *Raster {
	return &Raster{Width: w, Height: h, Bands: bands, DType: dtype, Pix: make([]float64, w*h*bands)}
}

// check rejects a malformed buffer from the caller rather than panic.
func (r *Raster) check() error {
	if r == nil || r.Width < 0 || r.Height < 0 || r.Bands < 1 || len(r.Pix) < r.Width*r.Height*r.Bands {
		return errors.New("style: malformed raster")
	}
	return nil
}

// RGBA is an 8-bit, 4-band image ready to encode.
type RGBA struct {
	Width, Height int
	Pix           []uint8
}

// Env gives Apply the pixels it needs beyond the style itself.
type Env interface {
	// Tile returns the unstyled tile of frame at the position being styled.
	// Errors (e.g. a frame out of range) are returned by Apply as is.
	Tile(frame int) (*Raster, error)
	// Stats returns the statistics of a whole frame, computed by the caller
	// with ComputeStats on a view of the frame downsampled to at most
	// 1024×1024 and cached per source and frame. nil means unavailable.
	Stats(frame int) (*FrameStats, error)
}

// BandNamer is optionally implemented by an Env whose source names its
// bands (e.g. channel names); names are matched case-insensitively and map
// to 0-based band indexes.
type BandNamer interface {
	BandNames() map[string]int
}

// FrameStats are the per-band statistics of a frame used to resolve
// auto/min/max ranges: Bands[i] has Min and Max, and Hist/BinEdges for
// threshold forms such as "min:0.02".
type FrameStats struct {
	Bands []BandHist
}

// Apply styles the tile of the main frame (already passed through
// EffectiveFrame) following TileSource._applyStyle. The result has 4 bands (RGBA), or 1
// for a single default-palette band on 1-band data, or 1 when axis picks a
// channel. Its DType tells how to read the values: "float32"/"float64" for
// the nominal 0–255 float output, "uint8" or "uint16" when the style's
// dtype asks for them, and float 0–1 for dtype "float". Convert it with
// ToRGBA (or To8Bit) before encoding. The result has the main tile's size;
// padding to the tile size is the caller's.
//
// A style without band processing (icc only) returns the main tile.
func (s *Style) Apply(frame int, env Env) (*Raster, error) {
	main, err := env.Tile(frame)
	if err != nil {
		return nil, err
	}
	if err := main.check(); err != nil {
		return nil, err
	}
	if !s.NeedsPixels() {
		return main, nil
	}
	outBands := 4
	if len(s.bands) == 1 && s.bands[0].BandName != "alpha" && main.Bands == 1 &&
		slices.Equal(s.bands[0].Palette, defaultPalette) {
		outBands = 1
	}
	outType := "float32"
	if main.DType == "float64" {
		outType = "float64"
	}
	out := NewRaster(main.Width, main.Height, outBands, outType)
	src := main
	main = applyFunctions(s.funcs, "pre", main, src)
	stats := map[int]*FrameStats{}
	getStats := func(f int) (*FrameStats, error) {
		if st, ok := stats[f]; ok {
			return st, nil
		}
		st, err := env.Stats(f)
		if err != nil {
			return nil, err
		}
		stats[f] = st
		return st, nil
	}
	var names map[string]int
	if bn, ok := env.(BandNamer); ok {
		names = map[string]int{}
		for k, v := range bn.BandNames() {
			names[strings.ToLower(k)] = v
		}
	}
	npix := main.Width * main.Height
	bandVals := make([]float64, npix)
	scaled := make([]float64, npix)
	mask := make([]bool, npix)
	colours := make([]float64, npix)
	for e, b := range s.bands {
		img := main
		f := b.bandFrame(frame)
		if f != frame {
			if img, err = env.Tile(f); err != nil {
				return nil, err
			}
			if err := img.check(); err != nil {
				return nil, err
			}
			img = fitTo(img, main)
		}
		bandIdx := 0
		if img.Bands > 2 {
			bandIdx = 1
		}
		if b.BandIndex >= 1 && b.BandIndex <= img.Bands {
			bandIdx = b.BandIndex - 1
		}
		if idx, ok := names[strings.ToLower(b.BandName)]; ok && b.BandName != "" && img.Bands > idx && idx >= 0 {
			bandIdx = idx
		}
		constant := false
		statIdx := bandIdx
		switch {
		case b.BandName == "red" && img.Bands > 2:
			bandIdx, statIdx = 0, 0
		case b.BandName == "blue" && img.Bands > 2:
			bandIdx, statIdx = 2, 2
		case b.BandName == "alpha":
			if img.Bands == 2 || img.Bands == 4 {
				bandIdx, statIdx = img.Bands-1, img.Bands-1
			} else {
				constant, statIdx = true, -1
			}
		}
		for p := range bandVals {
			if constant {
				bandVals[p] = 255
			} else {
				bandVals[p] = img.Pix[p*img.Bands+bandIdx]
			}
		}
		if len(b.Funcs) > 0 {
			bandVals = bandStage(b.Funcs, "preband", bandVals, img, src)
		}
		var st *FrameStats
		if b.Min.needsStats() || b.Max.needsStats() {
			if st, err = getStats(f); err != nil {
				return nil, err
			}
		}
		lo := resolveBound(b.Min, false, img.DType, statIdx, st)
		hi := resolveBound(b.Max, true, img.DType, statIdx, st)
		delta := hi - lo
		if hi == lo {
			delta = 1
		}
		useMask := b.NoData != nil || !b.Clamp
		for p, v := range bandVals {
			mask[p] = b.NoData == nil || v != *b.NoData
			scaled[p] = (v - lo) / delta
			if !b.Clamp {
				mask[p] = mask[p] && scaled[p] >= 0 && scaled[p] <= 1
			}
		}
		if len(b.Funcs) > 0 {
			scaled = bandStage(b.Funcs, "band", scaled, img, src)
		}
		pal := b.Palette
		for ch := 0; ch < outBands; ch++ {
			first := pal[0][ch]
			isConst := true
			for _, c := range pal {
				isConst = isConst && c[ch] == first
			}
			if isConst {
				if (first == 0 && !b.Multiply) || (first == 255 && b.Multiply) {
					continue
				}
				for p := range colours {
					colours[p] = first
				}
			} else {
				paletteColumn(colours, scaled, pal, ch, b.Discrete)
			}
			for p, c := range colours {
				i := p*outBands + ch
				switch {
				case b.Multiply:
					// The first entry writes nothing when it multiplies,
					// as in large_image.
					if e > 0 {
						if !useMask || mask[p] {
							out.Pix[i] = store(out.Pix[i]*(c/255), outType)
						}
					}
				case e == 0:
					if useMask && !mask[p] {
						c = 0
					}
					out.Pix[i] = store(c, outType)
				default:
					if useMask && !mask[p] {
						c = 0
					}
					out.Pix[i] = store(math.Max(out.Pix[i], c), outType)
				}
			}
		}
		if len(b.Funcs) > 0 {
			out = applyFunctions(b.Funcs, "postband", out, src)
		}
	}
	out = applyFunctions(s.funcs, "main", out, src)
	out = convertDType(out, s.dtype, src.DType)
	if s.axis != nil && *s.axis >= 0 && *s.axis < out.Bands {
		a := *s.axis
		one := NewRaster(out.Width, out.Height, 1, out.DType)
		for p := range one.Pix {
			one.Pix[p] = out.Pix[p*out.Bands+a]
		}
		out = one
	}
	out = applyFunctions(s.funcs, "post", out, src)
	return out, nil
}

// store rounds a value to the output's precision, so that truncation at
// encoding matches large_image's float32 output.
func store(v float64, outType string) float64 {
	if outType == "float32" {
		return float64(float32(v))
	}
	return v
}

// bandStage runs band-level functions on one band's values; a function
// needs a multi-band image, so on a single band they are no-ops except the
// median filter.
func bandStage(fs []Function, stage string, vals []float64, img, src *Raster) []float64 {
	r := &Raster{Width: img.Width, Height: img.Height, Bands: 1, DType: "float64", Pix: vals}
	if stage == "preband" {
		r.DType = img.DType
	}
	return applyFunctions(fs, stage, r, src).Pix
}

// fitTo crops or zero-pads another frame's tile to the main tile's shape.
func fitTo(img, main *Raster) *Raster {
	if img.Width == main.Width && img.Height == main.Height && img.Bands == main.Bands {
		return img
	}
	bands := min(img.Bands, main.Bands)
	r := NewRaster(main.Width, main.Height, bands, img.DType)
	for y := 0; y < min(img.Height, main.Height); y++ {
		for x := 0; x < min(img.Width, main.Width); x++ {
			copy(r.Pix[(y*main.Width+x)*bands:(y*main.Width+x+1)*bands], img.Pix[(y*img.Width+x)*img.Bands:])
		}
	}
	return r
}

// paletteColumn computes channel ch of the palette for each scaled value.
func paletteColumn(dst, scaled []float64, pal Palette, ch int, discrete bool) {
	n := len(pal)
	switch {
	case discrete:
		for p, v := range scaled {
			idx := 0
			if f := math.Floor(v * float64(n)); !math.IsNaN(f) {
				idx = int(math.Min(math.Max(f, 0), float64(n-1)))
			}
			dst[p] = pal[idx][ch]
		}
	case n == 2 && pal[0][ch] == 0:
		// No clamping here: encoding clips to 0–255 later.
		for p, v := range scaled {
			dst[p] = v * pal[1][ch]
		}
	default:
		for p, v := range scaled {
			dst[p] = interp(v, pal, ch)
		}
	}
}

// interp is piecewise-linear interpolation over stops spread evenly on
// [0, 1], clamped to the end colours.
func interp(v float64, pal Palette, ch int) float64 {
	n := len(pal)
	switch {
	case math.IsNaN(v):
		return v
	case n == 1 || v <= 0:
		return pal[0][ch]
	case v >= 1:
		return pal[n-1][ch]
	}
	pos := v * float64(n-1)
	i := int(pos)
	if i >= n-1 {
		return pal[n-1][ch]
	}
	// Stops are at i/(n-1), as numpy's linspace places them.
	x0, x1 := float64(i)/float64(n-1), float64(i+1)/float64(n-1)
	if v < x0 && i > 0 {
		i--
		x0, x1 = float64(i)/float64(n-1), float64(i+1)/float64(n-1)
	}
	y0, y1 := pal[i][ch], pal[i+1][ch]
	return y0 + (y1-y0)*(v-x0)/(x1-x0)
}

func (bd Bound) needsStats() bool {
	return bd.Kind == "auto" || bd.Kind == "min" || bd.Kind == "max"
}

// fullMax is the top of the data range guessed from the dtype.
func fullMax(dtype string) float64 {
	switch {
	case dtype == "uint16":
		return 65535
	case strings.HasPrefix(dtype, "float"):
		return 1
	}
	return 255
}

// resolveBound turns a min (isMax false) or max setting into a number
// (TileSource._getMinMax). bandIdx < 0 means the band has no statistics (constant alpha).
func resolveBound(bd Bound, isMax bool, dtype string, bandIdx int, st *FrameStats) float64 {
	kind := bd.Kind
	switch kind {
	case "value":
		return bd.Value
	case "full":
		if isMax {
			return fullMax(dtype)
		}
		return 0
	}
	have := st != nil && len(st.Bands) > 0
	if kind == "auto" {
		inByteRange := have
		for _, b := range st.bandsOrNil() {
			inByteRange = inByteRange && b.Min >= 0 && b.Min <= 254 && b.Max >= 2 && b.Max <= 255
		}
		if inByteRange {
			if isMax {
				return 255
			}
			return 0
		}
		kind = "min"
		if isMax {
			kind = "max"
		}
	}
	ok := have && bandIdx >= 0 && bandIdx < len(st.Bands)
	if kind == "min" {
		if !ok {
			return 0
		}
		if bd.Threshold != 0 && st.Bands[bandIdx].Hist != nil {
			return histogramThreshold(&st.Bands[bandIdx], bd.Threshold, false)
		}
		return st.Bands[bandIdx].Min
	}
	if !ok {
		return fullMax(dtype)
	}
	if bd.Threshold != 0 && st.Bands[bandIdx].Hist != nil {
		return histogramThreshold(&st.Bands[bandIdx], bd.Threshold, true)
	}
	return st.Bands[bandIdx].Max
}

func (st *FrameStats) bandsOrNil() []BandHist {
	if st == nil {
		return nil
	}
	return st.Bands
}

// histogramThreshold walks the histogram from the low end (or the high end
// for max) and returns the edge where the running count first exceeds
// threshold·samples.
func histogramThreshold(h *BandHist, threshold float64, fromMax bool) float64 {
	hist, edges := h.Hist, h.BinEdges
	if len(hist) == 0 || len(edges) == 0 {
		if fromMax {
			return h.Max
		}
		return h.Min
	}
	samples := h.Samples
	if h.Density {
		samples = 1
	}
	n := len(hist)
	at := func(i int) (float64, float64) {
		if fromMax {
			return hist[n-1-i], edges[len(edges)-1-i]
		}
		return hist[i], edges[i]
	}
	tally := 0.0
	for i := 0; i < n; i++ {
		count, edge := at(i)
		if tally+count > threshold*samples {
			if i == 0 {
				if fromMax {
					return h.Max
				}
				return h.Min
			}
			return edge
		}
		tally += count
	}
	if fromMax {
		return edges[0]
	}
	return edges[len(edges)-1]
}

// convertDType applies the style's dtype (the dtype and axis keys of TileSource._applyStyle).
func convertDType(out *Raster, dtype, sourceDType string) *Raster {
	if dtype == DTypeSource {
		switch {
		case sourceDType == "uint16":
			dtype = DTypeUint16
		case strings.HasPrefix(sourceDType, "float"):
			dtype = DTypeFloat
		}
	}
	switch dtype {
	case DTypeUint8:
		for i, v := range out.Pix {
			out.Pix[i] = float64(castUint8(v))
		}
		out.DType = "uint8"
	case DTypeUint16:
		for i, v := range out.Pix {
			out.Pix[i] = float64(castUint16(store(store(v*65535, out.DType)/255, out.DType)))
		}
		out.DType = "uint16"
	case DTypeFloat:
		if out.DType == "uint8" || out.DType == "uint16" {
			// Only reachable when a function changed the type; numpy's
			// in-place division would fail there, so leave it.
			return out
		}
		for i, v := range out.Pix {
			out.Pix[i] = store(v/255, out.DType)
		}
	}
	return out
}

// To8Bit converts a sample of dtype to 8 bits as large_image does before
// encoding (large_image's _imageToPIL).
func To8Bit(v float64, dtype string) uint8 { return to8(v, dtype) }

func to8(v float64, dtype string) uint8 {
	switch dtype {
	case "uint8":
		return castUint8(v)
	case "uint16":
		return uint8(castInt(v) >> 8)
	case "uint32":
		return uint8(castInt(v) >> 24)
	case "int8":
		return castUint8(v + 128)
	case "int16":
		return castUint8(math.Floor((v + 32768) / 256))
	case "int32":
		return castUint8(math.Floor((v + 2147483648) / 16777216))
	}
	if math.IsNaN(v) {
		return 0
	}
	return uint8(math.Min(math.Max(v, 0), 255))
}

// ToRGBA converts a raster to 8-bit RGBA for encoding: samples per spec
// 2.12, grey (1 band) replicated to RGB, grey+alpha to RGB+A, a missing
// alpha opaque, and only the first three bands of more than four.
func ToRGBA(r *Raster) *RGBA {
	out := &RGBA{Width: r.Width, Height: r.Height, Pix: make([]uint8, r.Width*r.Height*4)}
	n := r.Width * r.Height
	for p := 0; p < n; p++ {
		px := r.Pix[p*r.Bands : (p+1)*r.Bands]
		o := out.Pix[p*4 : p*4+4]
		o[3] = 255
		switch r.Bands {
		case 1, 2:
			g := to8(px[0], r.DType)
			o[0], o[1], o[2] = g, g, g
			if r.Bands == 2 {
				o[3] = to8(px[1], r.DType)
			}
		case 4:
			o[3] = to8(px[3], r.DType)
			fallthrough
		default:
			o[0], o[1], o[2] = to8(px[0], r.DType), to8(px[1], r.DType), to8(px[2], r.DType)
		}
	}
	return out
}

// To8BitRaster converts a raster to 8-bit samples keeping its band layout
// (1 L, 2 LA, 3 RGB, 4 RGBA; more than 4 keeps the first 3), for encoders
// that write grey images.
func To8BitRaster(r *Raster) *Raster {
	bands := r.Bands
	if bands > 4 {
		bands = 3
	}
	out := NewRaster(r.Width, r.Height, bands, "uint8")
	for p := 0; p < r.Width*r.Height; p++ {
		for ch := 0; ch < bands; ch++ {
			out.Pix[p*bands+ch] = float64(to8(r.Pix[p*r.Bands+ch], r.DType))
		}
	}
	return out
}
