package pipeline

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/style"
)

// The expected values in this file are what large_image 1.35.2 answers for
// the same files and requests.

// pixelRGB returns the r, g, b of a pixel answer.
func pixelRGB(t *testing.T, v any) [3]int {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("pixel answer %v", v)
	}
	r, _ := m["r"].(int)
	g, _ := m["g"].(int)
	b, _ := m["b"].(int)
	return [3]int{r, g, b}
}

func TestICCAppliedOnEveryRoute(t *testing.T) {
	p := newPipeline(t, nil)
	ctx := context.Background()
	loc := fileLoc(t, "libvips/sample.jpg")
	// The pixel route reads what the region route serves: ICC-corrected
	// unless the style turns it off.
	for _, c := range []struct {
		left, top float64
		style     string
		want      [3]int
	}{
		{0, 0, "", [3]int{183, 161, 126}},
		{100, 200, "", [3]int{67, 78, 106}},
		{0, 0, `{"icc": false}`, [3]int{176, 160, 127}},
	} {
		px, err := p.Pixel(ctx, loc, PixelRequest{Left: c.left, Top: c.top, Style: c.style})
		if err != nil {
			t.Fatal(err)
		}
		if got := pixelRGB(t, px); got != c.want {
			t.Errorf("pixel %v,%v style %q = %v, want %v", c.left, c.top, c.style, got, c.want)
		}
		res, err := p.Region(ctx, loc, RegionRequest{Left: ptr(c.left), Top: ptr(c.top), RegionWidth: ptr(1.0),
			RegionHeight: ptr(1.0), Style: c.style, Encode: EncodeOptions{Encoding: "PNG"}})
		if err != nil {
			t.Fatal(err)
		}
		img := decode(t, res.Data)
		if got := [3]int{int(img.Pix[0]), int(img.Pix[1]), int(img.Pix[2])}; got != c.want {
			t.Errorf("region at %v,%v style %q = %v, want %v", c.left, c.top, c.style, got, c.want)
		}
	}
	// Histogram and bands see corrected values too. Little CMS rounds a few
	// samples differently from libvips' transform, hence the tolerances.
	hist, err := p.Histogram(ctx, loc, HistogramRequest{Bins: 4})
	if err != nil {
		t.Fatal(err)
	}
	wantHist := []struct {
		min, max, mean float64
		hist           []float64
	}{
		{42, 248, 127.20939304103604, []float64{43451, 28017, 54727, 1985}},
		{39, 231, 117.91875487595568, []float64{43619, 32342, 51611, 608}},
		{20, 227, 108.74766734279919, []float64{5929, 96803, 25096, 352}},
	}
	if len(hist) != 3 {
		t.Fatalf("%d histogram bands", len(hist))
	}
	for i, w := range wantHist {
		h := hist[i]
		if h.Min != w.min || h.Max != w.max || h.Samples != 290*442 || math.Abs(h.Mean-w.mean) > 0.01 {
			t.Errorf("band %d: min %v max %v samples %v mean %v; want %v %v %d %v", i, h.Min, h.Max, h.Samples,
				h.Mean, w.min, w.max, 290*442, w.mean)
		}
		for j := range w.hist {
			if math.Abs(h.Hist[j]-w.hist[j]) > 10 {
				t.Errorf("band %d bin %d: %v, want %v", i, j, h.Hist[j], w.hist[j])
			}
		}
	}
	bands, err := p.Bands(ctx, loc, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range wantHist {
		b := bands[[]string{"1", "2", "3"}[i]]
		if b.Min != w.min || b.Max != w.max || math.Abs(b.Mean-w.mean) > 0.01 {
			t.Errorf("bands %d: %+v, want min %v max %v mean %v", i+1, b, w.min, w.max, w.mean)
		}
	}
}

func TestPillowResampling(t *testing.T) {
	// Pillow's output for these rows (Image.resize on an L image): the
	// kernels are centred on (x + 0.5) · in/out, so patterns stay
	// symmetric.
	row := func(v ...uint8) *encode.Image {
		return &encode.Image{Width: len(v), Height: 1, Bands: 1, Format: encode.Uint8, Pix: v}
	}
	for _, c := range []struct {
		name string
		in   *encode.Image
		f    pilFilter
		want []uint8
	}{
		{"bilinear down", row(0, 0, 255, 255, 0, 0, 255, 255), pilBilinear, []uint8{36, 191, 64, 219}},
		{"bicubic down", row(0, 0, 255, 255, 0, 0, 255, 255), pilBicubic, []uint8{21, 216, 39, 234}},
		{"lanczos down", row(0, 0, 255, 255, 0, 0, 255, 255), pilLanczos, []uint8{20, 220, 35, 235}},
		{"lanczos down 3", row(0, 0, 255, 255, 0, 0, 255, 255), pilLanczos, []uint8{92, 127, 163}},
		{"bilinear up", row(0, 255, 0), pilBilinear, []uint8{0, 36, 146, 255, 146, 36, 0}},
		{"bicubic up", row(0, 255, 0), pilBicubic, []uint8{0, 26, 160, 255, 160, 26, 0}},
		{"lanczos up", row(0, 255, 0), pilLanczos, []uint8{0, 34, 167, 255, 167, 34, 0}},
	} {
		out, ok := pilResize(c.in, len(c.want), 1, c.f)
		if !ok || string(out.Pix) != string(c.want) {
			t.Errorf("%s: %v, want %v", c.name, out.Pix, c.want)
		}
	}
	// With a box (Pillow 9.4's Image.resize(size, LANCZOS, box=...)):
	// fractional edges move the kernels' centres.
	for _, c := range []struct {
		box  [4]float64
		want []uint8
	}{
		{[4]float64{1, 0, 7, 1}, []uint8{142, 128, 113}},
		{[4]float64{0.5, 0, 7.5, 1}, []uint8{40, 254, 1, 215}},
		{[4]float64{0, 0, 7.5, 1}, []uint8{2, 0, 219, 255, 68, 0, 158, 255}},
	} {
		out, ok := pilResizeBox(row(0, 0, 255, 255, 0, 0, 255, 255), c.box, len(c.want), 1, pilLanczos)
		if !ok || string(out.Pix) != string(c.want) {
			t.Errorf("box %v: %v, want %v", c.box, out, c.want)
		}
	}
	rgb := &encode.Image{Width: 6, Height: 5, Bands: 3, Format: encode.Uint8, Pix: []uint8{
		68, 32, 130, 60, 253, 230, 241, 194, 107, 48, 249, 14, 199, 221, 1, 228, 136, 117,
		52, 162, 15, 11, 13, 4, 195, 110, 216, 14, 113, 224, 253, 119, 176, 118, 112, 235,
		148, 11, 213, 51, 95, 151, 61, 170, 216, 97, 155, 145, 255, 201, 17, 245, 124, 206,
		212, 88, 187, 191, 44, 224, 55, 83, 201, 189, 250, 15, 240, 22, 157, 201, 87, 86,
		116, 6, 102, 118, 207, 176, 180, 235, 137, 2, 196, 66, 105, 218, 28, 246, 186, 102}}
	out, ok := pilResizeBox(rgb, [4]float64{0.5, 0.25, 5.5, 4.75}, 4, 3, pilLanczos)
	if want := []uint8{29, 119, 91, 175, 159, 159, 76, 183, 112, 210, 157, 123, 106, 43, 140, 49, 106, 209,
		148, 158, 139, 247, 116, 137, 168, 90, 190, 120, 176, 173, 102, 208, 39, 200, 123, 88}; !ok || string(out.Pix) != string(want) {
		t.Errorf("RGB box: %v, want %v", out, want)
	}
	if _, ok := pilResizeBox(rgb, [4]float64{0, 0, 6.5, 5}, 4, 3, pilLanczos); ok {
		t.Error("a box past the image accepted")
	}

	// RGBA is scaled premultiplied, as Pillow does.
	rgba := &encode.Image{Width: 2, Height: 1, Bands: 4, Format: encode.Uint8, Pix: []uint8{255, 0, 0, 255, 0, 0, 255, 0}}
	out, _ = pilResize(rgba, 3, 1, pilBilinear)
	if want := []uint8{255, 0, 0, 255, 255, 0, 0, 128, 0, 0, 0, 0}; string(out.Pix) != string(want) {
		t.Errorf("rgba: %v, want %v", out.Pix, want)
	}

	// An upscaled thumbnail (120×180 into 256²) matches large_image's
	// pixel for pixel; libvips' grid put it half a pixel off.
	p := newPipeline(t, nil)
	res, err := p.Thumbnail(context.Background(), fileLoc(t, "large_image/test_orient1.tif"),
		ThumbnailRequest{Encode: EncodeOptions{Encoding: "PNG"}})
	if err != nil {
		t.Fatal(err)
	}
	img := decode(t, res.Data)
	if img.Width != 170 || img.Height != 256 {
		t.Fatalf("thumbnail %dx%d", img.Width, img.Height)
	}
	for _, c := range []struct{ x, y, v int }{{51, 40, 226}, {119, 132, 179}, {130, 14, 67}, {30, 14, 67}, {51, 104, 229}} {
		if got := int(img.Pix[(c.y*img.Width+c.x)*img.Bands]); got != c.v {
			t.Errorf("thumbnail pixel %d,%d = %d, want %d", c.x, c.y, got, c.v)
		}
	}
}

func TestHistogramResamplesByDefault(t *testing.T) {
	p := newPipeline(t, nil)
	ctx := context.Background()
	loc := fileLoc(t, "openslide-python/boxes.tiff")
	region := func(resample string) RegionRequest {
		return RegionRequest{Width: ptr(100), Height: ptr(100), Resample: resample}
	}
	// large_image's TileIterator resamples unless told not to: 8300
	// samples from the 150×125 level cut into 90-pixel tiles, each scaled
	// on its own; resample=false histograms the 150×125 level as stored.
	for _, c := range []struct {
		resample string
		samples  float64
		mean     float64
		red      []float64
	}{
		{"", 8300, 159.03686746987952, []float64{3050, 111, 28, 5111}},
		{"true", 8300, 159.03686746987952, []float64{3050, 111, 28, 5111}},
		// The iterator hands its tiles bool(resample): any number but 0 is
		// LANCZOS.
		{"3", 8300, 159.03686746987952, []float64{3050, 111, 28, 5111}},
		{"false", 18750, 159.09386666666666, []float64{6968, 0, 169, 11613}},
		{"0", 18750, 159.09386666666666, []float64{6968, 0, 169, 11613}},
	} {
		hist, err := p.Histogram(ctx, loc, HistogramRequest{Region: region(c.resample), Bins: 4})
		if err != nil {
			t.Fatal(err)
		}
		h := hist[0]
		if h.Samples != c.samples || !near(h.Mean, c.mean) || !equalFloats(h.Hist, c.red) {
			t.Errorf("resample %q: samples %v mean %v hist %v; want %v %v %v", c.resample, h.Samples, h.Mean,
				h.Hist, c.samples, c.mean, c.red)
		}
	}
}

func TestRegionIgnoresResampleValue(t *testing.T) {
	// large_image's getRegion scales with LANCZOS (BICUBIC when growing)
	// whatever resample says; only an integer or a boolean is accepted.
	p := newPipeline(t, nil)
	ctx := context.Background()
	loc := fileLoc(t, "openslide-python/boxes.tiff")
	get := func(resample string) *encode.Image {
		res, err := p.Region(ctx, loc, RegionRequest{Width: ptr(97), Resample: resample,
			Encode: EncodeOptions{Encoding: "PNG"}})
		if err != nil {
			t.Fatalf("resample %q: %v", resample, err)
		}
		return decode(t, res.Data)
	}
	want := get("")
	for _, v := range []string{"0", "2", "3", "9", "false"} {
		if d := meanAbsDiff(t, get(v), want); d != 0 {
			t.Errorf("resample=%s differs from the default by %v", v, d)
		}
	}
	_, err := p.Region(ctx, loc, RegionRequest{Width: ptr(97), Resample: "maybe"})
	wantError(t, err, 400, `"resample" parameter is an incorrect type.`)
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestColourParameters(t *testing.T) {
	p := newPipeline(t, nil)
	ctx := context.Background()
	loc := fileLoc(t, "openslide-python/boxes.tiff")
	// The last tile of the full level (3/4/3) has image data up to 44×58;
	// (60, 60) is edge. large_image hands edge to Pillow's ImageColor as
	// given, so GREEN is CSS green there.
	for edge, want := range map[string][3]uint8{
		"aliceblue":             {240, 248, 255},
		"rgb(255,0,0)":          {255, 0, 0},
		"hsl(0,100%,50%)":       {255, 0, 0},
		"hsv(120,100%,100%)":    {0, 255, 0},
		"rgba(0,0,255,128)":     {0, 0, 255},
		"#f00":                  {255, 0, 0},
		"GREEN":                 {0, 128, 0},
		"LightGoldenRodYellow":  {250, 250, 210},
		"rgb(100%,50%,0%)":      {255, 128, 0},
		"hsl(240, 100%, 25%)":   {0, 0, 128},
		"rgba(255, 255, 0, 10)": {255, 255, 0},
	} {
		res, err := p.Tile(ctx, loc, TileRequest{Z: 3, X: 4, Y: 3, Edge: edge, Encode: EncodeOptions{Encoding: "PNG"}})
		if err != nil {
			t.Fatalf("edge %q: %v", edge, err)
		}
		img := decode(t, res.Data)
		o := (60*img.Width + 60) * img.Bands
		if got := [3]uint8(img.Pix[o : o+3]); got != want {
			t.Errorf("edge %q: %v, want %v", edge, got, want)
		}
	}
	// Pillow's messages, with the string lower-cased.
	_, err := p.Tile(ctx, loc, TileRequest{Z: 3, X: 4, Y: 3, Edge: "NotAColour"})
	wantError(t, err, 400, "Value Error: unknown color specifier: 'notacolour'")
	_, err = p.Thumbnail(ctx, loc, ThumbnailRequest{Fill: "corner:NotA"})
	wantError(t, err, 400, "Value Error: unknown color specifier: 'nota'")
	_, err = p.Thumbnail(ctx, loc, ThumbnailRequest{Fill: strings.Repeat("a", 101)})
	wantError(t, err, 400, "Value Error: color specifier is too long")

	// fill follows large_image's _letterboxImage: a case-insensitive
	// corner: prefix and its exact-case R/G/B names. 300×250 in 256² is
	// 256×213, centred (rows 21–233) or at the top.
	for _, c := range []struct {
		fill string
		x, y int
		want [3]uint8
	}{
		{"GREEN", 128, 2, [3]uint8{0, 255, 0}},
		{"green", 128, 2, [3]uint8{0, 128, 0}},
		{"corner:GREEN", 128, 254, [3]uint8{0, 255, 0}},
		{"CORNER:aliceblue", 128, 254, [3]uint8{240, 248, 255}},
		{"hsl(0,100%,50%)", 128, 254, [3]uint8{255, 0, 0}},
	} {
		res, err := p.Thumbnail(ctx, loc, ThumbnailRequest{Width: 256, Height: 256, Fill: c.fill,
			Encode: EncodeOptions{Encoding: "PNG"}})
		if err != nil {
			t.Fatalf("fill %q: %v", c.fill, err)
		}
		img := decode(t, res.Data)
		o := (c.y*img.Width + c.x) * img.Bands
		if got := [3]uint8(img.Pix[o : o+3]); got != c.want {
			t.Errorf("fill %q at %d,%d: %v, want %v", c.fill, c.x, c.y, got, c.want)
		}
	}
	// The parser is the style package's, the one palettes use.
	if c, ok := style.ParsePILColour("aliceblue"); !ok || c != (style.Colour{240, 248, 255, 255}) {
		t.Errorf("ParsePILColour(aliceblue) = %v, %v", c, ok)
	}
}

func TestInternalMetadataICC(t *testing.T) {
	p := newPipeline(t, nil)
	md, err := p.InternalMetadata(context.Background(), fileLoc(t, "libvips/sample.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := md["iccprofiles"].([]string)
	if len(got) != 1 || got[0] != "Artifex Software A98 ICC Profile \r\n\r\nCopyright Artifex Software 2018" {
		t.Errorf("iccprofiles %q", md["iccprofiles"])
	}
}
