package style

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"gonum.org/v1/gonum/floats"
)

// BandHist is one channel's entry of the histogram route (TileSource.histogram); its
// JSON form is large_image's.
type BandHist struct {
	Min      float64    `json:"min"`
	Max      float64    `json:"max"`
	Mean     float64    `json:"mean"`
	Stdev    float64    `json:"stdev"`
	Range    [2]float64 `json:"range"`
	Hist     []float64  `json:"hist"`
	BinEdges []float64  `json:"bin_edges"`
	Bins     int        `json:"bins"`
	Density  bool       `json:"density"`
	Samples  float64    `json:"samples"`
}

// Histogrammer computes histograms over a region read in pieces, in
// large_image's two passes: feed every piece to AddMinMax, then every piece
// to AddHist, then call Result. NaN samples are skipped.
type Histogrammer struct {
	bins        int
	lo, hi      float64
	round       bool
	density     bool
	integer     bool
	min, max    []float64
	sum, sum2   []float64
	count       []float64
	result      []BandHist
	histStarted bool
}

// NewHistogrammer prepares a histogram of bins bins. lo and hi give the
// range; pass NaN for both to use [min, max+1] of the data. roundRange
// applies large_image's rounding of that default range for integer data.
func NewHistogrammer(bins int, lo, hi float64, roundRange, density bool) *Histogrammer {
	if bins < 1 {
		bins = 1
	}
	return &Histogrammer{bins: bins, lo: lo, hi: hi, round: roundRange, density: density}
}

// AddMinMax is the first pass: per-band min, max, sum and sum of squares.
func (h *Histogrammer) AddMinMax(r *Raster) {
	if h.min == nil {
		h.integer = isIntegerDType(r.DType)
		h.min, h.max = make([]float64, r.Bands), make([]float64, r.Bands)
		h.sum, h.sum2, h.count = make([]float64, r.Bands), make([]float64, r.Bands), make([]float64, r.Bands)
		for i := range h.min {
			h.min[i], h.max[i] = math.Inf(1), math.Inf(-1)
		}
	}
	nb := min(r.Bands, len(h.min))
	for p := 0; p < r.Width*r.Height; p++ {
		for b := 0; b < nb; b++ {
			v := r.Pix[p*r.Bands+b]
			if math.IsNaN(v) {
				continue
			}
			h.min[b] = math.Min(h.min[b], v)
			h.max[b] = math.Max(h.max[b], v)
			h.sum[b] += v
			h.sum2[b] += v * v
			h.count[b]++
		}
	}
}

// MinMax returns the per-band statistics of the first pass, without
// histograms (as for the bands route and plain auto ranges).
func (h *Histogrammer) MinMax() []BandHist {
	out := make([]BandHist, len(h.min))
	for b := range out {
		if h.count[b] == 0 {
			continue
		}
		mean := h.sum[b] / h.count[b]
		out[b] = BandHist{
			Min: h.min[b], Max: h.max[b], Mean: mean,
			Stdev: math.Sqrt(math.Max(h.sum2[b]/h.count[b]-mean*mean, 0)),
			Bins:  h.bins, Density: h.density,
		}
	}
	return out
}

func (h *Histogrammer) startHist() {
	h.histStarted = true
	h.result = h.MinMax()
	for b := range h.result {
		e := &h.result[b]
		explicit := !math.IsNaN(h.lo) || !math.IsNaN(h.hi)
		lo, hi := h.lo, h.hi
		if !explicit {
			lo, hi = e.Min, e.Max+1
			if h.count[b] == 0 {
				lo, hi = 0, 1
			}
		}
		if math.IsNaN(lo) {
			lo = 0
		}
		if math.IsNaN(hi) {
			hi = 256
		}
		e.Range = [2]float64{lo, hi}
		if !explicit && h.round && h.integer && hi-lo < float64(h.bins)*10 {
			step := math.Ceil((hi - lo) / float64(h.bins))
			rbins := int(math.Ceil((hi - lo) / step))
			e.Range[1] = lo + step*float64(rbins)
			e.Bins = rbins
		}
		// numpy widens an empty range by half a unit each side.
		elo, ehi := e.Range[0], e.Range[1]
		if elo == ehi {
			elo, ehi = elo-0.5, ehi+0.5
		}
		e.BinEdges = make([]float64, e.Bins+1)
		if ehi > elo {
			floats.Span(e.BinEdges, elo, ehi)
		} else {
			for i := range e.BinEdges {
				e.BinEdges[i] = elo
			}
		}
		e.Hist = make([]float64, e.Bins)
	}
}

// AddHist is the second pass: counts per bin, numpy-style (values outside
// the range are ignored, the last bin includes its upper edge).
func (h *Histogrammer) AddHist(r *Raster) {
	if h.min == nil {
		return
	}
	if !h.histStarted {
		h.startHist()
	}
	nb := min(r.Bands, len(h.result))
	for b := 0; b < nb; b++ {
		e := &h.result[b]
		edges := e.BinEdges
		n := e.Bins
		lo, hi := edges[0], edges[n]
		if !(hi > lo) {
			continue
		}
		norm := float64(n) / (hi - lo)
		for p := 0; p < r.Width*r.Height; p++ {
			v := r.Pix[p*r.Bands+b]
			if !(v >= lo && v <= hi) {
				continue
			}
			idx := int((v - lo) * norm)
			if idx >= n {
				idx = n - 1
			}
			// Correct float error against the actual edges, as numpy does.
			if idx > 0 && v < edges[idx] {
				idx--
			} else if idx < n-1 && v >= edges[idx+1] {
				idx++
			}
			e.Hist[idx]++
		}
	}
}

// Result finishes the histogram: samples and, with density, normalised
// counts.
func (h *Histogrammer) Result() []BandHist {
	if h.min == nil {
		return nil
	}
	if !h.histStarted {
		h.startHist()
	}
	for b := range h.result {
		e := &h.result[b]
		e.Samples = floats.Sum(e.Hist)
		if h.density && e.Samples > 0 {
			floats.Scale(1/e.Samples, e.Hist)
		}
	}
	return h.result
}

// Histogram computes the histogram route's entries for a whole raster
// (TileSource.histogram). Pass NaN for lo and hi to use the data range [min, max+1];
// the caller rejects lo > hi.
func Histogram(r *Raster, bins int, lo, hi float64, roundRange bool, density bool) []BandHist {
	h := NewHistogrammer(bins, lo, hi, roundRange, density)
	h.AddMinMax(r)
	h.AddHist(r)
	return h.Result()
}

// ComputeStats computes the statistics a style needs for auto/min/max
// ranges (TileSource._getMinMax): per-band min and max, and a histogram of bins bins
// (large_image uses 256) over [min, max+1] for the threshold forms. r is a
// view of the whole frame downsampled to at most 1024×1024.
func ComputeStats(r *Raster, bins int) *FrameStats {
	return &FrameStats{Bands: Histogram(r, bins, math.NaN(), math.NaN(), false, false)}
}

// BandInfo is one entry of the bands route (TileSource.getBandInformation).
type BandInfo struct {
	Interpretation string
	Min, Max       float64
	Mean, Stdev    float64
	// MinMaxAs is the numpy type large_image gives Min and Max in: the
	// image's dtype.
	MinMaxAs Scalar
}

// Scalar is how Girder's JSON encoder writes a numpy scalar: a float64 is
// a Python float, written as a number; any other numpy type is unknown to
// the json module, and Girder's encoder falls back to str(value).
type Scalar int

// The numpy scalar types large_image's statistics come in.
const (
	Float64Scalar Scalar = iota // a JSON number
	IntScalar                   // a string: "255"
	Float32Scalar               // a string: "0.5", "1.0", "1e-05"
)

// MarshalJSON writes the entry as Girder does (keys in the order of
// large_image's dict).
func (b BandInfo) MarshalJSON() ([]byte, error) {
	out := []byte(`{"interpretation":`)
	out = strconv.AppendQuote(out, b.Interpretation)
	out = append(out, `,"min":`...)
	out = b.MinMaxAs.appendJSON(out, b.Min)
	out = append(out, `,"max":`...)
	out = b.MinMaxAs.appendJSON(out, b.Max)
	out = append(out, `,"mean":`...)
	out = Float64Scalar.appendJSON(out, b.Mean)
	out = append(out, `,"stdev":`...)
	out = Float64Scalar.appendJSON(out, b.Stdev)
	return append(out, '}'), nil
}

func (s Scalar) appendJSON(out []byte, v float64) []byte {
	switch {
	case s == IntScalar:
		return strconv.AppendQuote(out, strconv.FormatInt(int64(v), 10))
	case s == Float32Scalar:
		return strconv.AppendQuote(out, numpyFloat32(float32(v)))
	}
	n, err := json.Marshal(v)
	if err != nil { // NaN or infinite, which JSON cannot write
		return append(out, "null"...)
	}
	return append(out, n...)
}

// numpyFloat32 is str() of a numpy float32: the shortest digits that read
// back as the same float32, positional with at least one decimal from
// 1e-4 up to 1e16, scientific outside.
func numpyFloat32(v float32) string {
	switch a := math.Abs(float64(v)); {
	case math.IsNaN(a):
		return "nan"
	case math.IsInf(float64(v), 1):
		return "inf"
	case math.IsInf(float64(v), -1):
		return "-inf"
	case a != 0 && (a < 1e-4 || a >= 1e16):
		return strconv.FormatFloat(float64(v), 'e', -1, 32)
	}
	s := strconv.FormatFloat(float64(v), 'f', -1, 32)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// Interpretations names bands by band count: gray; gray, alpha; red,
// green, blue; red, green, blue, alpha; more bands are red, green, blue
// then unknown.
func Interpretations(n int) []string {
	switch n {
	case 1:
		return []string{"gray"}
	case 2:
		return []string{"gray", "alpha"}
	case 4:
		return []string{"red", "green", "blue", "alpha"}
	}
	out := make([]string, n)
	for i := range out {
		out[i] = "unknown"
		if i < 3 {
			out[i] = [3]string{"red", "green", "blue"}[i]
		}
	}
	return out
}

func isIntegerDType(d string) bool {
	return strings.HasPrefix(d, "uint") || strings.HasPrefix(d, "int")
}
