package pipeline

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"testing"

	"github.com/tileserver/tileserver/encode"
)

// fullFrame returns the unstyled full-resolution frame as float samples.
func fullFrame(t *testing.T, p *Pipeline, loc Locator, frame int) (w, h, bands int, pix []float64) {
	t.Helper()
	src, release, err := p.acquire(context.Background(), loc)
	if err != nil {
		t.Fatal(err)
	}
	info := src.Info()
	release()
	z := info.Levels - 1
	w, h, bands = info.SizeX, info.SizeY, info.Bands
	pix = make([]float64, w*h*bands)
	cols, rows := info.TileCount(z)
	for ty := range rows {
		for tx := range cols {
			img, tp := rawTile(t, p, loc, frame, z, tx, ty)
			for y := range img.Height {
				for x := range img.Width {
					gx, gy := tx*info.TileWidth+x, ty*info.TileHeight+y
					if gx < w && gy < h {
						copy(pix[(gy*w+gx)*bands:(gy*w+gx+1)*bands], tp[(y*img.Width+x)*bands:])
					}
				}
			}
		}
	}
	return w, h, bands, pix
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestHistogramAgainstDirectComputation(t *testing.T) {
	p := newPipeline(t, nil)
	ctx := context.Background()
	loc := fileLoc(t, "pathml/smalltif.tif")
	w, h, _, pix := fullFrame(t, p, loc, 0)
	mn, mx, sum, sum2 := math.Inf(1), math.Inf(-1), 0.0, 0.0
	for _, v := range pix {
		mn, mx = math.Min(mn, v), math.Max(mx, v)
		sum += v
		sum2 += v * v
	}
	n := float64(w * h)
	mean := sum / n
	stdev := math.Sqrt(sum2/n - mean*mean)
	lo, hi := mn, mx+1
	hist := make([]float64, 256)
	for _, v := range pix {
		i := min(int((v-lo)/(hi-lo)*256), 255)
		hist[i]++
	}
	got, err := p.Histogram(ctx, loc, HistogramRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("%d entries", len(got))
	}
	g := got[0]
	if g.Min != mn || g.Max != mx || !near(g.Mean, mean) || math.Abs(g.Stdev-stdev) > 1e-6*stdev ||
		g.Samples != n || g.Bins != 256 || g.Range != [2]float64{lo, hi} || len(g.BinEdges) != 257 {
		t.Errorf("histogram %+v; want min %v max %v mean %v stdev %v samples %v", g, mn, mx, mean, stdev, n)
	}
	for i := range hist {
		if g.Hist[i] != hist[i] {
			t.Fatalf("bin %d: %v, want %v", i, g.Hist[i], hist[i])
		}
	}
	// An explicit range with only one end: the other is 0 or 256.
	got, err = p.Histogram(ctx, loc, HistogramRequest{RangeMax: ptr(40000), Bins: 10})
	if err != nil {
		t.Fatal(err)
	}
	want := 0.0
	for _, v := range pix {
		if v <= 40000 {
			want++
		}
	}
	if got[0].Range != [2]float64{0, 40000} || got[0].Samples != want {
		t.Errorf("range %v samples %v, want [0 40000] %v", got[0].Range, got[0].Samples, want)
	}
	_, err = p.Histogram(ctx, loc, HistogramRequest{RangeMin: ptr(10), RangeMax: ptr(5)})
	wantError(t, err, 400, "Value Error: rangeMin must not be greater than rangeMax.")
	_, err = p.Histogram(ctx, loc, HistogramRequest{Bins: 1 << 20})
	wantError(t, err, 400, "Value Error: bins must be between 1 and 65536.")
	// width/height with resample=false read the preferred level unscaled:
	// level 1 of this file is not stored, so 200×150 reads full resolution.
	got, err = p.Histogram(ctx, loc, HistogramRequest{Region: RegionRequest{Width: ptr(200), Height: ptr(200),
		Resample: "false"}})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Samples != 640*480 {
		t.Errorf("level histogram of %v samples, want %d", got[0].Samples, 640*480)
	}
	// Without resample, large_image's TileIterator resamples (its default
	// is True): 640×480 at scale 3.2 is one 820-pixel iterator tile, made
	// int(640/3.2)×int(480/3.2).
	got, err = p.Histogram(ctx, loc, HistogramRequest{Region: RegionRequest{Width: ptr(200), Height: ptr(200)}})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Samples != 200*150 {
		t.Errorf("default histogram of %v samples, want %d", got[0].Samples, 200*150)
	}
	// On the test source every level is stored: 1024² asked at 200 reads
	// the 256² level.
	test := testLoc(map[string]string{"sizeX": "1024", "sizeY": "1024"})
	got, err = p.Histogram(ctx, test, HistogramRequest{Region: RegionRequest{Width: ptr(200), Height: ptr(200),
		Resample: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Samples != 256*256 {
		t.Errorf("test source level histogram: %d bands, %v samples", len(got), got[0].Samples)
	}
	// resample=true scales to the output size first.
	got, err = p.Histogram(ctx, test, HistogramRequest{Region: RegionRequest{Width: ptr(200), Height: ptr(200),
		Resample: "true"}})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Samples != 200*200 {
		t.Errorf("resampled histogram of %v samples", got[0].Samples)
	}
}

func TestBandsAgainstDirectComputation(t *testing.T) {
	p := newPipeline(t, nil)
	loc := cmuLoc(t)
	w, h, bands, pix := fullFrame(t, p, loc, 0)
	got, err := p.Bands(context.Background(), loc, 0)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"red", "green", "blue"}
	for b := range bands {
		mn, mx, sum, sum2 := math.Inf(1), math.Inf(-1), 0.0, 0.0
		for i := b; i < len(pix); i += bands {
			v := pix[i]
			mn, mx = math.Min(mn, v), math.Max(mx, v)
			sum += v
			sum2 += v * v
		}
		n := float64(w * h)
		mean := sum / n
		stdev := math.Sqrt(sum2/n - mean*mean)
		g, ok := got[string(rune('1'+b))]
		if !ok || g.Interpretation != names[b] || g.Min != mn || g.Max != mx || !near(g.Mean, mean) ||
			math.Abs(g.Stdev-stdev) > 1e-6*stdev {
			t.Errorf("band %d: %+v, want min %v max %v mean %v stdev %v", b+1, g, mn, mx, mean, stdev)
		}
	}
	_, err = p.Bands(context.Background(), loc, 1)
	wantError(t, err, 400, "Frame does not exist")
}

func TestPixel(t *testing.T) {
	p := newPipeline(t, nil)
	ctx := context.Background()
	loc := fileLoc(t, "pathml/smalltif.tif")
	w, _, _, pix := fullFrame(t, p, loc, 0)
	got, err := p.Pixel(ctx, loc, PixelRequest{Left: 300, Top: 200})
	if err != nil {
		t.Fatal(err)
	}
	v := pix[200*w+300]
	b, _ := json.Marshal(got)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if vals, _ := m["value"].([]any); len(vals) != 1 || vals[0] != v || m["l"] != math.Floor(v/256) || len(m) != 2 {
		t.Errorf("pixel %s, want value [%v] l %v", b, v, math.Floor(v/256))
	}
	out, err := p.Pixel(ctx, loc, PixelRequest{Left: 700, Top: 10})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(out); string(b) != "{}" {
		t.Errorf("outside pixel %s, want {}", b)
	}
	// A fraction of the width, and several frames of a multi-frame file.
	ome := fileLoc(t, "libvips/multi-channel-z-series.ome.tif")
	ow, _, _, f0 := fullFrame(t, p, ome, 0)
	_, _, _, f7 := fullFrame(t, p, ome, 7)
	list, err := p.Pixel(ctx, ome, PixelRequest{Left: 0.25, Top: 100.0 / 167, Units: "fraction", FrameList: []int{0, 7}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(list)
	var ms []map[string]any
	if err := json.Unmarshal(b, &ms); err != nil {
		t.Fatal(err)
	}
	x, y := int(math.RoundToEven(0.25*439)), int(math.RoundToEven(100.0/167*167))
	for i, want := range []float64{f0[y*ow+x], f7[y*ow+x]} {
		if len(ms) != 2 || ms[i]["frame"] != float64([]int{0, 7}[i]) || ms[i]["value"].([]any)[0] != want ||
			ms[i]["l"] != float64(encode.To8Bit(&encode.Image{Width: 1, Height: 1, Bands: 1, Format: encode.Int8,
				Pix: []byte{byte(int8(want))}}).Pix[0]) {
			t.Errorf("frame list pixel %s, want value %v in entry %d", b, want, i)
		}
	}
	_, err = p.Pixel(ctx, ome, PixelRequest{Left: 1, Top: 1, Units: "parsec"})
	wantError(t, err, 400, "Value Error: Invalid units 'parsec'")
}

func TestTileFrames(t *testing.T) {
	p := newPipeline(t, nil)
	ctx := context.Background()
	loc := testLoc(map[string]string{"frames": "5", "sizeX": "512", "sizeY": "384"})
	png := EncodeOptions{Encoding: "PNG"}
	res, err := p.TileFrames(ctx, loc, TileFramesRequest{Region: RegionRequest{Width: ptr(128), Height: ptr(128),
		Encode: png}, FrameList: []int{4, 1, 9, 2}})
	if err != nil {
		t.Fatal(err)
	}
	got := decode(t, res.Data)
	// Frames 4, 1, 2 (9 is dropped): 2 across, cells of 128×96. Each
	// frame is scaled in its own bands (RGB here), not in the RGBA a PNG
	// region is scaled in (large_image 1.35.2 on the same request: an
	// RGB montage, the empty cell black).
	if got.Width != 256 || got.Height != 192 || got.Bands != 3 {
		t.Fatalf("montage %dx%d×%d, want 256x192×3", got.Width, got.Height, got.Bands)
	}
	for k, f := range []int{4, 1, 2} {
		r, err := p.Region(ctx, loc, RegionRequest{Width: ptr(128), Height: ptr(128), Frame: f, Encode: png})
		if err != nil {
			t.Fatal(err)
		}
		want := toMode(decode(t, r.Data), modeRGB)
		cell := encode.Crop(got, (k%2)*128, (k/2)*96, 128, 96)
		if d := meanAbsDiff(t, cell, want); d != 0 {
			t.Errorf("cell %d (frame %d) differs from its region by %.2f", k, f, d)
		}
	}
	// The empty fourth cell stays black.
	if c := encode.Crop(got, 128, 96, 128, 96); slices.ContainsFunc(c.Pix, func(v byte) bool { return v != 0 }) {
		t.Errorf("empty cell is not black: %v", c.Pix[:3])
	}
	// With a fill each cell is exactly width×height; framesAcross is kept.
	res, err = p.TileFrames(ctx, loc, TileFramesRequest{Region: RegionRequest{Width: ptr(100), Height: ptr(100),
		Fill: "corner:black", Encode: png}, FramesAcross: 5})
	if err != nil {
		t.Fatal(err)
	}
	if got := decode(t, res.Data); got.Width != 500 || got.Height != 100 {
		t.Errorf("filled montage %dx%d, want 500x100", got.Width, got.Height)
	}
}

func TestQuadInfo(t *testing.T) {
	p := newPipeline(t, nil)
	loc := testLoc(map[string]string{"frames": "c=2,z=3", "sizeX": "10000", "sizeY": "5000"})
	got, err := p.QuadInfo(context.Background(), loc, QuadInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(got)
	var m struct {
		Src   []map[string]any `json:"src"`
		Quads []struct {
			Crop map[string]float64 `json:"crop"`
		} `json:"quads"`
		Frames      []int          `json:"frames"`
		MinLevel    int            `json:"minLevel"`
		FramesToIdx map[string]int `json:"framesToIdx"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	// Hand-computed: 6 frames of 10000×5000 in one 8192² texture give
	// 4096×2048 cells, 2 across and 3 down.
	if len(m.Src) != 1 || m.Src[0]["width"] != 4096.0 || m.Src[0]["height"] != 2048.0 ||
		m.Src[0]["framesAcross"] != 2.0 || m.Src[0]["fill"] != "corner:black" || m.Src[0]["encoding"] != "JPEG" ||
		m.Src[0]["jpegQuality"] != 85.0 || m.Src[0]["frameList"] != nil {
		t.Errorf("src %v", m.Src)
	}
	if len(m.Frames) != 6 || m.MinLevel != 3 || len(m.Quads) != 6 || m.FramesToIdx["5"] != 5 {
		t.Fatalf("quad info %s", b)
	}
	want0 := map[string]float64{"x": 10000, "y": 5000, "left": 0, "top": 4096, "right": 4096, "bottom": 6144}
	want5 := map[string]float64{"x": 10000, "y": 5000, "left": 4096, "top": 0, "right": 8192, "bottom": 2048}
	for k, v := range want0 {
		if m.Quads[0].Crop[k] != v || m.Quads[5].Crop[k] != want5[k] {
			t.Errorf("crop %s: %v and %v, want %v and %v", k, m.Quads[0].Crop[k], m.Quads[5].Crop[k], v, want5[k])
		}
	}
	// An axis as frameStride: every other frame (one per z).
	got, err = p.QuadInfo(context.Background(), loc, QuadInfoRequest{FrameStride: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if fr := got["frames"].([]any); len(fr) != 3 || fr[1] != 2 {
		t.Errorf("frames with stride c: %v", fr)
	}
}
