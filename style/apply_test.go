package style

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"testing"
)

// fakeEnv serves fixed tiles per frame and computes stats from them (the
// whole "image" is the tile here).
type fakeEnv struct {
	tiles      map[int]*Raster
	statsCalls int
	noStats    bool
}

func (e *fakeEnv) Tile(frame int) (*Raster, error) {
	t, ok := e.tiles[frame]
	if !ok {
		return nil, errors.New("Frame does not exist")
	}
	return t, nil
}

func (e *fakeEnv) Stats(frame int) (*FrameStats, error) {
	e.statsCalls++
	if e.noStats {
		return nil, nil
	}
	t, err := e.Tile(frame)
	if err != nil {
		return nil, err
	}
	return ComputeStats(t, 256), nil
}

func raster(w, h, bands int, dtype string, pix ...float64) *Raster {
	return &Raster{Width: w, Height: h, Bands: bands, DType: dtype, Pix: pix}
}

func apply(t *testing.T, style string, env *fakeEnv) *Raster {
	t.Helper()
	s := mustParse(t, style)
	out, err := s.Apply(s.EffectiveFrame(0), env)
	if err != nil {
		t.Fatalf("Apply(%s): %v", style, err)
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-3 }

func expectPix(t *testing.T, name string, got *Raster, bands int, want ...float64) {
	t.Helper()
	if got.Bands != bands || len(got.Pix) != len(want) {
		t.Fatalf("%s: %d bands %v, want %d bands %v", name, got.Bands, got.Pix, bands, want)
	}
	for i := range want {
		if !near(got.Pix[i], want[i]) {
			t.Fatalf("%s: pix %v, want %v", name, got.Pix, want)
		}
	}
}

// rgb8 is a 2×1 uint8 RGB tile whose range (10..200) is inside the byte
// range, so auto means 0..255.
func rgb8() *fakeEnv {
	return &fakeEnv{tiles: map[int]*Raster{0: raster(2, 1, 3, "uint8", 10, 100, 200, 50, 150, 20)}}
}

func TestApplyDefaultBandIsGreen(t *testing.T) {
	// No band → index 1 for ≥3 channels; auto → 0..255; default palette.
	out := apply(t, `{"min":"auto"}`, rgb8())
	expectPix(t, "green", out, 4, 100, 100, 100, 255, 150, 150, 150, 255)
	if out.DType != "float32" {
		t.Errorf("dtype %s", out.DType)
	}
	out = apply(t, `{"band":"red"}`, rgb8())
	expectPix(t, "red", out, 4, 10, 10, 10, 255, 50, 50, 50, 255)
	out = apply(t, `{"band":3}`, rgb8())
	expectPix(t, "band 3", out, 4, 200, 200, 200, 255, 20, 20, 20, 255)
	out = apply(t, `{"band":"blue","min":0,"max":400}`, rgb8())
	expectPix(t, "blue scaled", out, 4, 127.5, 127.5, 127.5, 255, 12.75, 12.75, 12.75, 255)
	// Out-of-range integer band and unknown names use the default.
	out = apply(t, `{"band":9}`, rgb8())
	expectPix(t, "band 9", out, 4, 100, 100, 100, 255, 150, 150, 150, 255)
}

func TestApplySwapRedGreen(t *testing.T) {
	out := apply(t, `{"bands":[{"band":1,"palette":["#000","#0f0"]},{"band":2,"palette":["#000","#f00"]},{"band":3,"palette":["#000","#00f"]}]}`, rgb8())
	expectPix(t, "swap", out, 4, 100, 10, 200, 255, 150, 50, 20, 255)
	rgba := ToRGBA(out)
	want := []uint8{100, 10, 200, 255, 150, 50, 20, 255}
	for i := range want {
		if rgba.Pix[i] != want[i] {
			t.Fatalf("ToRGBA %v", rgba.Pix)
		}
	}
}

func TestApplyUint16GreyOutput(t *testing.T) {
	env := &fakeEnv{tiles: map[int]*Raster{0: raster(3, 1, 1, "uint16", 1000, 1500, 3000)}}
	out := apply(t, `{"min":1000,"max":2000}`, env)
	// One band, one channel, default palette → grey (1-channel) output;
	// the 2-colour palette starting at 0 is not clamped (2 → 510).
	expectPix(t, "uint16", out, 1, 0, 127.5, 510)
	r := ToRGBA(out)
	if r.Pix[4] != 127 || r.Pix[8] != 255 || r.Pix[11] != 255 {
		t.Errorf("8-bit %v", r.Pix)
	}
	if env.statsCalls != 0 {
		t.Error("numeric min/max must not need stats")
	}
	// auto: uint16 data outside the byte range → data min and max.
	out = apply(t, `{}`+``, env)
	if out != env.tiles[0] {
		t.Error("empty style must pass the tile through")
	}
	out = apply(t, `{"min":"auto","max":"auto"}`, env)
	expectPix(t, "auto", out, 1, 0, 255*500.0/2000, 255)
	out = apply(t, `{"max":"full","min":"full"}`, env)
	expectPix(t, "full", out, 1, 255*1000.0/65535, 255*1500.0/65535, 255*3000.0/65535)
	env.noStats = true
	out = apply(t, `{"min":"min","max":"max"}`, env)
	expectPix(t, "no stats", out, 1, 255*1000.0/65535, 255*1500.0/65535, 255*3000.0/65535)
}

func TestApplyFloatFull(t *testing.T) {
	env := &fakeEnv{tiles: map[int]*Raster{0: raster(2, 1, 1, "float32", 0.25, 2)}}
	out := apply(t, `{"min":"full","max":"full","palette":["#000","#fff"]}`, env)
	expectPix(t, "float", out, 1, 63.75, 510)
	out = apply(t, `{"min":0,"max":2,"palette":["#fff","#000"]}`, env)
	// Interpolated palette: 0.125 → 255·0.875; 1 → 0.
	expectPix(t, "float interp", out, 4, 223.125, 223.125, 223.125, 255, 0, 0, 0, 255)
	env.tiles[0].DType = "float64"
	if out = apply(t, `{"min":0,"max":2}`, env); out.DType != "float64" {
		t.Errorf("float64 source gives %s output", out.DType)
	}
}

func TestApplyNodataAndClamp(t *testing.T) {
	env := &fakeEnv{tiles: map[int]*Raster{0: raster(4, 1, 1, "uint8", 0, 5, 10, 20)}}
	out := apply(t, `{"nodata":0,"min":0,"max":10,"palette":["#000","#f00"]}`, env)
	expectPix(t, "nodata", out, 4,
		0, 0, 0, 0,
		127.5, 0, 0, 255,
		255, 0, 0, 255,
		510, 0, 0, 255)
	out = apply(t, `{"clamp":false,"min":4,"max":10,"palette":["#000","#f00"]}`, env)
	expectPix(t, "clamp", out, 4,
		0, 0, 0, 0,
		42.5, 0, 0, 255,
		255, 0, 0, 255,
		0, 0, 0, 0)
}

func TestApplyDiscreteCategorical(t *testing.T) {
	env := &fakeEnv{tiles: map[int]*Raster{0: raster(4, 1, 1, "uint8", 0, 1, 3, 6)}}
	out := apply(t, `{"nodata":0,"min":0,"max":6,"clamp":true,"dtype":"uint8","scheme":"discrete",
		"palette":["#000000","#0000ff","#00ff00","#ff0000","#ffff00","#00ffff","#ff00ff"]}`, env)
	// floor(b·7): 1/6 → 1, 3/6 → 3, 1 → 7 clipped to 6.
	expectPix(t, "categorical", out, 4,
		0, 0, 0, 0,
		0, 0, 255, 255,
		255, 0, 0, 255,
		255, 0, 255, 255)
	if out.DType != "uint8" {
		t.Errorf("dtype %s", out.DType)
	}
}

func TestApplyAlphaMultiply(t *testing.T) {
	env := &fakeEnv{tiles: map[int]*Raster{0: raster(2, 1, 2, "uint8", 200, 255, 100, 51)}}
	out := apply(t, `{"bands":[{"band":1},{"band":"alpha"}]}`, env)
	// Alpha band multiplies every channel by the palette #FFF0→#FFFF:
	// colour channels are constant 255 (skipped), alpha gets a/255.
	expectPix(t, "alpha", out, 4, 200, 200, 200, 255, 100, 100, 100, 51)
	// An alpha band first writes nothing (multiply at e = 0).
	out = apply(t, `{"bands":[{"band":"alpha"},{"band":1,"composite":"multiply","palette":"#f00"}]}`, env)
	expectPix(t, "alpha first", out, 4, 0, 0, 0, 0, 0, 0, 0, 0)
}

func TestApplyFramesComposite(t *testing.T) {
	env := &fakeEnv{tiles: map[int]*Raster{
		0: raster(1, 1, 1, "uint8", 100),
		1: raster(1, 1, 1, "uint8", 200),
		2: raster(1, 1, 1, "uint8", 50),
		3: raster(1, 1, 1, "uint8", 0),
	}}
	s := mustParse(t, `{"bands":[{"framedelta":0,"palette":"#0000FF"},{"framedelta":1,"palette":"#00FF00"},{"framedelta":2,"palette":"#FF0000"}]}`)
	out, err := s.Apply(1, env)
	if err != nil {
		t.Fatal(err)
	}
	// Frame 1 (200 → 0..255 since all frames are in the byte range)
	// → blue, frame 2 → green, frame 3 → red; lighten = max per channel;
	// alpha is 255 from every palette's end colour … and 255 at 0 too.
	expectPix(t, "frames", out, 4, 0, 50, 200, 255)
	if _, err := s.Apply(2, env); err == nil || err.Error() != "Frame does not exist" {
		t.Errorf("missing frame: %v", err)
	}
	s = mustParse(t, `{"bands":[{"frame":3,"palette":"#f00","min":0,"max":100},{"frame":0,"palette":"#0f0","min":0,"max":100}]}`)
	if f := s.EffectiveFrame(1); f != 3 {
		t.Fatalf("effective frame %d", f)
	}
	out, err = s.Apply(3, env)
	if err != nil {
		t.Fatal(err)
	}
	expectPix(t, "explicit frames", out, 4, 0, 255, 0, 255)
}

func TestApplyThreshold(t *testing.T) {
	// 100 pixels 0..99 as uint16 (outside the byte-range test because max
	// is 99 ≥ 2 and ≤ 255 — so use min/max forms explicitly).
	pix := make([]float64, 100)
	for i := range pix {
		pix[i] = float64(i)
	}
	env := &fakeEnv{tiles: map[int]*Raster{0: raster(100, 1, 1, "uint16", pix...)}}
	s := mustParse(t, `{"min":"min:0.1","max":"max:0.1"}`)
	st := ComputeStats(env.tiles[0], 256)
	// Range [0, 100] in 256 bins of 0.390625; each integer falls in its own
	// bin. From the low end the count passes 10 at value 10, bin
	// floor(10/0.390625)=25, left edge 9.765625.
	lo := resolveBound(s.bands[0].Min, false, "uint16", 0, st)
	hi := resolveBound(s.bands[0].Max, true, "uint16", 0, st)
	if !near(lo, 9.765625) {
		t.Errorf("min:0.1 = %v", lo)
	}
	// From the top: 99 is in bin 253 ([98.828125, 99.21875)); the count
	// passes 10 at value 89, bin 227, whose upper edge is 89.0625.
	if !near(hi, 89.0625) {
		t.Errorf("max:0.1 = %v", hi)
	}
	out, err := s.Apply(0, env)
	if err != nil {
		t.Fatal(err)
	}
	if !near(out.Pix[50], float64(float32((50-lo)/(hi-lo)*255))) {
		t.Errorf("pixel 50 = %v", out.Pix[50])
	}
	// Threshold 0 is no threshold; auto:t behaves as min:t/max:t outside
	// the byte range.
	if v := resolveBound(Bound{Kind: "min"}, false, "uint16", 0, st); v != 0 {
		t.Errorf("min = %v", v)
	}
	st.Bands[0].Max = 1000
	if v := resolveBound(Bound{Kind: "auto", Threshold: 0.1}, false, "uint16", 0, st); !near(v, 9.765625) {
		t.Errorf("auto:0.1 = %v", v)
	}
}

func TestApplyDTypeAndAxis(t *testing.T) {
	env := &fakeEnv{tiles: map[int]*Raster{0: raster(1, 1, 1, "uint16", 1500)}}
	out := apply(t, `{"min":1000,"max":2000,"dtype":"uint16","palette":["#000","#fff"]}`, env)
	expectPix(t, "uint16", out, 1, 32767)
	if out.DType != "uint16" || ToRGBA(out).Pix[0] != 127 {
		t.Errorf("uint16 output %v", out)
	}
	out = apply(t, `{"min":1000,"max":2000,"dtype":"source"}`, env)
	expectPix(t, "source", out, 1, 32767)
	out = apply(t, `{"min":1000,"max":2000,"dtype":"float"}`, env)
	expectPix(t, "float", out, 1, 0.5)
	out = apply(t, `{"min":1000,"max":1100,"dtype":"uint8"}`, env)
	// 5·255 = 1275 wraps in the uint8 cast (large_image does not clip).
	expectPix(t, "uint8 wrap", out, 1, float64(uint8(1275%256)))
	out = apply(t, `{"min":1000,"max":2000,"palette":["#000","#f80"],"axis":1}`, env)
	expectPix(t, "axis", out, 1, 0.5*136)
	out = apply(t, `{"min":1000,"max":2000,"palette":["#000","#f80"],"axis":7}`, env)
	if out.Bands != 4 {
		t.Errorf("out-of-range axis must be ignored")
	}
}

func TestApplyEmptyBandsAndICCOnly(t *testing.T) {
	out := apply(t, `{"bands":[]}`, rgb8())
	expectPix(t, "empty bands", out, 4, 0, 0, 0, 0, 0, 0, 0, 0)
	env := rgb8()
	if out = apply(t, `{"icc":false}`, env); out != env.tiles[0] {
		t.Error("icc-only style must return the tile")
	}
}

func TestApplyMaskPixelValues(t *testing.T) {
	env := rgb8()
	out := apply(t, `{"bands":[{"band":1}],"function":{"name":"large_image.tilesource.stylefuncs.maskPixelValues",
		"context":true,"parameters":{"values":[[10,100,200]]}}}`, env)
	expectPix(t, "mask", out, 4, 255, 255, 255, 0, 0, 0, 0, 255)
	// 0xBBGGRR form for 50,150,20.
	v := 20*65536 + 150*256 + 50
	out = apply(t, `{"bands":[{"band":1}],"function":{"name":"large_image.tilesource.stylefuncs.maskPixelValues",
		"context":true,"stage":"main","parameters":{"values":[`+itoa(v)+`],"positive":[1,2,3,4]}}}`, env)
	expectPix(t, "mask bgr", out, 4, 0, 0, 0, 255, 1, 2, 3, 4)
	// Unknown functions pass through.
	out = apply(t, `{"bands":[{"band":1}],"function":"my.module.func"}`, env)
	expectPix(t, "unknown func", out, 4, 10, 10, 10, 255, 50, 50, 50, 255)
}

func TestMedianFilter(t *testing.T) {
	// A single bright pixel in a dark 3×3 image: the median is 0, so the
	// sharpened value is v + (v − 0)·w, clipped to 255.
	pix := make([]float64, 9)
	pix[4] = 100
	img := raster(3, 3, 1, "uint8", pix...)
	out := medianFilter(img, map[string]any{"kernel": jsonNum("3"), "weight": jsonNum("0.5")})
	if out.Pix[4] != 150 || out.Pix[0] != 0 {
		t.Errorf("median %v", out.Pix)
	}
}

func TestTo8Bit(t *testing.T) {
	cases := []struct {
		v     float64
		dtype string
		want  uint8
	}{
		{8728, "uint16", 34}, {65535, "uint16", 255}, {-128, "int8", 0}, {127, "int8", 255},
		{-32768, "int16", 0}, {32767, "int16", 255}, {300, "float32", 255}, {-3, "float32", 0},
		{math.NaN(), "float64", 0}, {254.9, "float32", 254}, {1 << 31, "uint32", 128},
	}
	for _, c := range cases {
		if got := To8Bit(c.v, c.dtype); got != c.want {
			t.Errorf("To8Bit(%v, %s) = %d, want %d", c.v, c.dtype, got, c.want)
		}
	}
}

func itoa(v int) string { return strconv.Itoa(v) }

func jsonNum(s string) json.Number { return json.Number(s) }

func TestApplyMalformedRaster(t *testing.T) {
	env := &fakeEnv{tiles: map[int]*Raster{0: raster(2, 2, 3, "uint8", 1, 2)}}
	if _, err := mustParse(t, `{"max":3}`).Apply(0, env); err == nil {
		t.Error("short buffer accepted")
	}
}
