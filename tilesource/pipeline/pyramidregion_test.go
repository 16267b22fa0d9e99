package pipeline

import (
	"context"
	"math"
	"testing"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilecache"
)

func newPyramidPipeline(t testing.TB, tiles tilecache.Tiles) *Pipeline {
	t.Helper()
	p, err := New(Config{Tiles: tiles, RegionsFromPyramid: true})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// psnr is the peak signal-to-noise ratio of two 8-bit images of the same
// size and bands, in dB.
func psnr(t *testing.T, a, b *encode.Image) float64 {
	t.Helper()
	if a.Width != b.Width || a.Height != b.Height || a.Bands != b.Bands || a.Format != encode.Uint8 || b.Format != encode.Uint8 {
		t.Fatalf("images differ in shape: %dx%dx%d and %dx%dx%d", a.Width, a.Height, a.Bands, b.Width, b.Height, b.Bands)
	}
	var se float64
	for i, v := range a.Pix {
		d := float64(v) - float64(b.Pix[i])
		se += d * d
	}
	return 10 * math.Log10(255*255/(se/float64(len(a.Pix))))
}

// TestRegionsFromPyramid: with Config.RegionsFromPyramid, a region at 5× of
// CMU-1-Small-Region.svs (20×, only full resolution stored) is the zxy
// route's tiles of level 2 as a viewer decodes them, and it shares them
// with that route through the tile cache, both ways; its pixels stay
// within JPEG noise of large_image's (full resolution with LANCZOS).
func TestRegionsFromPyramid(t *testing.T) {
	ctx := context.Background()
	loc := cmuLoc(t)
	tiles, err := tilecache.New(tilecache.Config{Mode: tilecache.ModeMemory, MemoryBytes: 256 << 20, KeepCheapAtOnce: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tiles.Close()
	p := newPyramidPipeline(t, tiles)
	png := EncodeOptions{Encoding: "PNG"}
	mag5 := 5.0

	// An area on level 2's pixel grid at 5× is level 2's zxy tiles as
	// they stand (555×740 of 240-pixel tiles): no scaling.
	grid := RegionRequest{Magnification: &mag5, Right: ptr(2220.0), Bottom: ptr(2960.0), Encode: png}
	res, err := p.Region(ctx, loc, grid)
	if err != nil {
		t.Fatal(err)
	}
	got := toMode(decode(t, res.Data), modeRGB)
	if got.Width != 555 || got.Height != 740 {
		t.Fatalf("region at 5×: %dx%d", got.Width, got.Height)
	}
	produced := tiles.Stats().Produced
	want := encode.NewImage(555, 740, 3, encode.Uint8)
	for ty := range 4 {
		for tx := range 3 {
			tile, err := p.Tile(ctx, loc, TileRequest{Z: 2, X: tx, Y: ty})
			if err != nil {
				t.Fatal(err)
			}
			if tile.CacheStatus != tilecache.StatusHitMemory {
				t.Errorf("tile 2/%d/%d after the region: %s, want a memory hit", tx, ty, tile.CacheStatus)
			}
			paste(want, decode(t, tile.Data), tx*240, ty*240)
		}
	}
	if n := tiles.Stats().Produced - produced; n != 0 {
		t.Errorf("the zxy tiles of level 2 were made again (%d productions)", n)
	}
	for i, v := range got.Pix {
		if v != want.Pix[i] {
			t.Fatalf("region at 5× differs from the zxy tiles of level 2 at pixel %d: %d, want %d", i/3, v, want.Pix[i])
		}
	}

	// Against large_image's answer (from full resolution, LANCZOS). An
	// area within a pixel of the output's size on the level is cut from
	// the level's grid at the output's size, as large_image cuts a level
	// the file stores: on the grid at 5×; the whole slide at 5× (its
	// 2967 rows are 741.75 of level 2: the bottom rows drift by up to 3/4
	// of a pixel); the central quarter at 10× and an area of level 3's
	// size, both starting mid-pixel (moved by half a pixel). Scaled
	// anyway, the area's exact span of the level is scaled (edges inside
	// pixels), so nothing moves: the whole slide and the central quarter
	// at 300 pixels wide (cut on the grid, 32.0 and 25.1 dB).
	quarter := func(r RegionRequest) RegionRequest {
		r.Left, r.Top, r.Right, r.Bottom, r.Encode = ptr(555.0), ptr(741.0), ptr(1665.0), ptr(2224.0), png
		return r
	}
	for _, c := range []struct {
		name string
		req  RegionRequest
		w, h int
		dB   float64
	}{
		{"on the grid at 5×", grid, 555, 740, 38},
		{"the whole slide at 5×", RegionRequest{Magnification: &mag5, Encode: png}, 555, 741, 26},
		{"the central quarter at 10×", quarter(RegionRequest{Magnification: ptr(10.0)}), 555, 741, 18},
		{"from mid-pixel at 10×", RegionRequest{Magnification: ptr(10.0), Left: ptr(555.0), Top: ptr(742.0),
			Right: ptr(1665.0), Bottom: ptr(2222.0), Encode: png}, 555, 740, 22},
		{"the whole slide 300 wide", RegionRequest{Width: ptr(300), Encode: png}, 300, 400, 38},
		{"the central quarter 300 wide", quarter(RegionRequest{Width: ptr(300)}), 300, 400, 38},
	} {
		ours, err := p.Region(ctx, loc, c.req)
		if err != nil {
			t.Fatal(err)
		}
		exact, err := newPipeline(t, nil).Region(ctx, loc, c.req)
		if err != nil {
			t.Fatal(err)
		}
		a, b := toMode(decode(t, ours.Data), modeRGB), toMode(decode(t, exact.Data), modeRGB)
		if a.Width != c.w || a.Height != c.h {
			t.Errorf("%s: %dx%d, want %dx%d", c.name, a.Width, a.Height, c.w, c.h)
			continue
		}
		if db := psnr(t, a, b); db < c.dB {
			t.Errorf("%s: %.1f dB from large_image's, want %g", c.name, db, c.dB)
		} else {
			t.Logf("%s: %.1f dB from large_image's", c.name, db)
		}
	}

	// Another area at 5× whose tiles a viewer has fetched: read from them,
	// nothing made but the region itself.
	produced = tiles.Stats().Produced
	left := 4.0
	if _, err := p.Region(ctx, loc, RegionRequest{Magnification: &mag5, Left: &left}); err != nil {
		t.Fatal(err)
	}
	if n := tiles.Stats().Produced - produced; n != 1 {
		t.Errorf("another area at 5×: %d productions, want 1 (the region)", n)
	}

	// A thumbnail comes from level 1 (277×370, the smallest holding
	// 191×256) through the zxy tiles of that level.
	th, err := p.Thumbnail(ctx, loc, ThumbnailRequest{Encode: png})
	if err != nil {
		t.Fatal(err)
	}
	thumb := toMode(decode(t, th.Data), modeRGB)
	exactThumb, err := newPipeline(t, nil).Thumbnail(ctx, loc, ThumbnailRequest{Encode: png})
	if err != nil {
		t.Fatal(err)
	}
	if db := psnr(t, thumb, toMode(decode(t, exactThumb.Data), modeRGB)); db < 40 {
		t.Errorf("thumbnail %.1f dB from large_image's", db)
	} else {
		t.Logf("thumbnail: %.1f dB from large_image's", db)
	}
	if tile, err := p.Tile(ctx, loc, TileRequest{Z: 1, X: 0, Y: 0}); err != nil || tile.CacheStatus != tilecache.StatusHitMemory {
		t.Errorf("tile 1/0/0 after the thumbnail: %v %v, want a memory hit", tile, err)
	}
}

// TestRegionsFromPyramidKeys: a server making regions from the pyramid and
// one making them as large_image does may share a tile cache: neither
// serves the other's pixels.
func TestRegionsFromPyramidKeys(t *testing.T) {
	ctx := context.Background()
	loc := cmuLoc(t)
	tiles, err := tilecache.New(tilecache.Config{Mode: tilecache.ModeMemory, MemoryBytes: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer tiles.Close()
	pyramid, exact := newPyramidPipeline(t, tiles), newPipeline(t, tiles)
	png := EncodeOptions{Encoding: "PNG"}
	for _, c := range []struct {
		name string
		get  func(p *Pipeline) (*Result, error)
	}{
		{"thumbnail", func(p *Pipeline) (*Result, error) {
			return p.Thumbnail(ctx, loc, ThumbnailRequest{Width: 300, Encode: png})
		}},
		{"DeepZoom tile", func(p *Pipeline) (*Result, error) {
			return p.DZITile(ctx, loc, DZIRequest{Level: 9, Encode: png})
		}},
		{"IIIF image", func(p *Pipeline) (*Result, error) {
			return p.Transform(ctx, loc, TransformRequest{W: 2220, H: 2967, Width: 222, Height: 297, Quality: QualityColor, Encode: png})
		}},
	} {
		a, err := c.get(pyramid)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		b, err := c.get(exact)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if b.CacheStatus != tilecache.StatusMiss {
			t.Errorf("%s as large_image makes it: %s after the pyramid's, want a miss", c.name, b.CacheStatus)
		}
		if string(a.Data) == string(b.Data) {
			t.Errorf("%s: the same bytes from the pyramid and as large_image makes it", c.name)
		}
		fresh, err := c.get(newPipeline(t, nil))
		if err != nil {
			t.Fatal(err)
		}
		if string(fresh.Data) != string(b.Data) {
			t.Errorf("%s: large_image's way through the shared cache differs from an uncached one", c.name)
		}
	}
}

// TestRegionsFromPyramidAnalysis: the analysis routes read as large_image
// does whatever the setting.
func TestRegionsFromPyramidAnalysis(t *testing.T) {
	ctx := context.Background()
	loc := cmuLoc(t)
	mag5 := 5.0
	req := HistogramRequest{Region: RegionRequest{Magnification: &mag5}}
	a, err := newPyramidPipeline(t, nil).Histogram(ctx, loc, req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newPipeline(t, nil).Histogram(ctx, loc, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("histograms: %d and %d bands", len(a), len(b))
	}
	for i := range a {
		if !equalFloats(a[i].Hist, b[i].Hist) {
			t.Errorf("band %d: the histogram at 5× depends on the setting", i)
		}
	}
}
