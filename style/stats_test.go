package style

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/stat"
)

func TestHistogramNumpyExample(t *testing.T) {
	r := raster(7, 1, 1, "uint8", 0, 1, 2, 3, 3, 4, 10)
	h := Histogram(r, 4, 0, 11, false, false)
	// numpy.histogram([0,1,2,3,3,4,10], 4, (0, 11)) → [3,3,0,1],
	// edges [0, 2.75, 5.5, 8.25, 11].
	wantHist := []float64{3, 3, 0, 1}
	wantEdges := []float64{0, 2.75, 5.5, 8.25, 11}
	for i := range wantHist {
		if h[0].Hist[i] != wantHist[i] {
			t.Fatalf("hist %v", h[0].Hist)
		}
	}
	for i := range wantEdges {
		if h[0].BinEdges[i] != wantEdges[i] {
			t.Fatalf("edges %v", h[0].BinEdges)
		}
	}
	if h[0].Samples != 7 || h[0].Min != 0 || h[0].Max != 10 || h[0].Range != [2]float64{0, 11} {
		t.Errorf("entry %+v", h[0])
	}
	// An explicit range drops values outside it; the top edge is inclusive.
	h = Histogram(r, 2, 1, 3, false, true)
	if h[0].Samples != 4 || h[0].Hist[0] != 0.25 || h[0].Hist[1] != 0.75 || !h[0].Density {
		t.Errorf("density entry %+v", h[0])
	}
}

func TestHistogramAgainstDirectComputation(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const w, hgt, bands = 64, 48, 3
	r := NewRaster(w, hgt, bands, "uint16")
	for i := range r.Pix {
		r.Pix[i] = float64(rng.IntN(5000) + 100*(i%bands))
	}
	res := Histogram(r, 256, math.NaN(), math.NaN(), false, false)
	if len(res) != bands {
		t.Fatalf("%d bands", len(res))
	}
	for b := 0; b < bands; b++ {
		vals := make([]float64, 0, w*hgt)
		for p := 0; p < w*hgt; p++ {
			vals = append(vals, r.Pix[p*bands+b])
		}
		mean, std := stat.PopMeanStdDev(vals, nil)
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range vals {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
		e := res[b]
		if e.Min != lo || e.Max != hi || math.Abs(e.Mean-mean) > 1e-9 || math.Abs(e.Stdev-std) > 1e-6 {
			t.Errorf("band %d: %+v vs min %v max %v mean %v std %v", b, e, lo, hi, mean, std)
		}
		if e.Range != [2]float64{lo, hi + 1} || len(e.Hist) != 256 || len(e.BinEdges) != 257 {
			t.Errorf("band %d range %v", b, e.Range)
		}
		// Direct: bin i holds v with edge[i] <= v < edge[i+1].
		direct := make([]float64, 256)
		width := (hi + 1 - lo) / 256
		for _, v := range vals {
			i := int(math.Floor((v - lo) / width))
			if i > 0 && v < e.BinEdges[i] {
				i--
			}
			if i < 255 && v >= e.BinEdges[i+1] {
				i++
			}
			direct[i]++
		}
		for i := range direct {
			if direct[i] != e.Hist[i] {
				t.Fatalf("band %d bin %d: %v vs %v", b, i, e.Hist[i], direct[i])
			}
		}
		if e.Samples != float64(w*hgt) {
			t.Errorf("samples %v", e.Samples)
		}
	}
}

func TestHistogramRoundRange(t *testing.T) {
	r := raster(3, 1, 1, "uint8", 0, 128, 255)
	if h := Histogram(r, 512, math.NaN(), math.NaN(), true, false); h[0].Bins != 256 || len(h[0].Hist) != 256 || h[0].Range != [2]float64{0, 256} {
		t.Errorf("round 512: bins %d range %v", h[0].Bins, h[0].Range)
	}
	if h := Histogram(r, 512, math.NaN(), math.NaN(), false, false); h[0].Bins != 512 {
		t.Errorf("no round: %d bins", h[0].Bins)
	}
	// step = ceil(256/100) = 3, bins = ceil(256/3) = 86, hi = 258.
	if h := Histogram(r, 100, math.NaN(), math.NaN(), true, false); h[0].Bins != 86 || h[0].Range[1] != 258 {
		t.Errorf("round 100: bins %d range %v", h[0].Bins, h[0].Range)
	}
	// Float data is never rounded.
	r.DType = "float32"
	if h := Histogram(r, 512, math.NaN(), math.NaN(), true, false); h[0].Bins != 512 {
		t.Errorf("float round: %d bins", h[0].Bins)
	}
}

func TestHistogrammerInPieces(t *testing.T) {
	a := raster(2, 1, 1, "uint8", 1, 2)
	b := raster(2, 1, 1, "uint8", 3, 9)
	h := NewHistogrammer(4, math.NaN(), math.NaN(), false, false)
	h.AddMinMax(a)
	h.AddMinMax(b)
	h.AddHist(a)
	h.AddHist(b)
	whole := Histogram(raster(4, 1, 1, "uint8", 1, 2, 3, 9), 4, math.NaN(), math.NaN(), false, false)
	got := h.Result()
	for i := range whole[0].Hist {
		if got[0].Hist[i] != whole[0].Hist[i] {
			t.Fatalf("pieces %v vs whole %v", got[0].Hist, whole[0].Hist)
		}
	}
	if got[0].Mean != whole[0].Mean || got[0].Min != 1 || got[0].Max != 9 {
		t.Errorf("%+v", got[0])
	}
}

func TestBandInfoJSON(t *testing.T) {
	// Girder writes numpy scalars other than float64 with str(): the
	// min and max of an integer or float32 image are strings (large_image
	// 1.35.2 behind Girder; numpy 1.24's str for the float32 cases).
	for _, c := range []struct {
		b    BandInfo
		want string
	}{
		{BandInfo{Interpretation: "red", Min: 0, Max: 255, Mean: 159.0894, Stdev: 123.52473358659793, MinMaxAs: IntScalar},
			`{"interpretation":"red","min":"0","max":"255","mean":159.0894,"stdev":123.52473358659793}`},
		{BandInfo{Interpretation: "gray", Min: -3, Max: 65535, Mean: 2, Stdev: 0, MinMaxAs: IntScalar},
			`{"interpretation":"gray","min":"-3","max":"65535","mean":2,"stdev":0}`},
		{BandInfo{Interpretation: "gray", Min: 0.5, Max: 1, Mean: 0.75, Stdev: 0.25, MinMaxAs: Float32Scalar},
			`{"interpretation":"gray","min":"0.5","max":"1.0","mean":0.75,"stdev":0.25}`},
		{BandInfo{Interpretation: "gray", Min: float64(float32(0.0001)), Max: 1e16, MinMaxAs: Float32Scalar},
			`{"interpretation":"gray","min":"1e-04","max":"1e+16","mean":0,"stdev":0}`},
		{BandInfo{Interpretation: "gray", Min: math.Copysign(0, -1), Max: float64(float32(9.999e15)), MinMaxAs: Float32Scalar},
			`{"interpretation":"gray","min":"-0.0","max":"9999000000000000.0","mean":0,"stdev":0}`},
		{BandInfo{Interpretation: "gray", Min: -0.25, Max: 2.5, Mean: math.NaN(), MinMaxAs: Float64Scalar},
			`{"interpretation":"gray","min":-0.25,"max":2.5,"mean":null,"stdev":0}`},
	} {
		got, err := json.Marshal(c.b)
		if err != nil || string(got) != c.want {
			t.Errorf("%+v: %s %v, want %s", c.b, got, err, c.want)
		}
	}
	names := map[int][]string{1: {"gray"}, 2: {"gray", "alpha"}, 3: {"red", "green", "blue"}, 5: {"red", "green", "blue", "unknown", "unknown"}}
	for n, w := range names {
		got := Interpretations(n)
		for i := range w {
			if got[i] != w[i] {
				t.Errorf("Interpretations(%d) = %v", n, got)
			}
		}
	}
}
