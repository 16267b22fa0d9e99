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

	// The whole slide at 5× is level 2 (555×741 of 240-pixel tiles) as it
	// stands: no scaling.
	res, err := p.Region(ctx, loc, RegionRequest{Magnification: &mag5, Encode: png})
	if err != nil {
		t.Fatal(err)
	}
	got := decode(t, res.Data)
	if got.Width != 555 || got.Height != 741 {
		t.Fatalf("region at 5×: %dx%d", got.Width, got.Height)
	}
	produced := tiles.Stats().Produced
	want := encode.NewImage(555, 741, 3, encode.Uint8)
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
	rgb := toMode(got, modeRGB)
	for i, v := range rgb.Pix {
		if v != want.Pix[i] {
			t.Fatalf("region at 5× differs from the zxy tiles of level 2 at pixel %d: %d, want %d", i/3, v, want.Pix[i])
		}
	}

	// large_image's answer, from full resolution, for an area on level
	// 2's pixel grid (the slide's 2967 rows are 741.75 of level 2: the
	// whole slide is cut on that grid, as large_image cuts any level a
	// file stores, and drifts by up to 3/4 of a pixel from the
	// full-resolution answer).
	grid := RegionRequest{Magnification: &mag5, Right: ptr(2220.0), Bottom: ptr(2960.0), Encode: png}
	exact, err := newPipeline(t, nil).Region(ctx, loc, grid)
	if err != nil {
		t.Fatal(err)
	}
	onGrid, err := p.Region(ctx, loc, grid)
	if err != nil {
		t.Fatal(err)
	}
	li, ours := toMode(decode(t, exact.Data), modeRGB), toMode(decode(t, onGrid.Data), modeRGB)
	if db := psnr(t, ours, li); db < 38 {
		t.Errorf("region at 5× is %.1f dB from large_image's", db)
	} else {
		t.Logf("region at 5×: %.1f dB from large_image's", db)
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
