package pipeline

import (
	"context"
	"testing"

	"github.com/tileserver/tileserver/tilecache"
)

// BenchmarkRegion measures regions of CMU-1-Small-Region.svs (20×, one
// stored level) with a warm tile cache holding the tiles but not the
// region itself: at 5× (a quarter of the width, made from a coarser
// level) against a full-resolution region of the same output size, and
// the whole-slide tile z=0. The pyramid/ cases make the regions at 5× with
// Config.RegionsFromPyramid: on an empty cache, once a viewer has fetched
// the zxy tiles of level 2 (from the origin and from mid-pixel), and
// another area after a first one.
func BenchmarkRegion(b *testing.B) {
	level2Tiles := func(p *Pipeline, ctx context.Context, loc Locator) error {
		for y := range 4 {
			for x := range 3 {
				if _, err := p.Tile(ctx, loc, TileRequest{Z: 2, X: x, Y: y}); err != nil {
					return err
				}
			}
		}
		return nil
	}
	mag5 := 5.0
	mag5At := func(left float64) func(p *Pipeline, ctx context.Context, loc Locator) error {
		return func(p *Pipeline, ctx context.Context, loc Locator) error {
			_, err := p.Region(ctx, loc, RegionRequest{Magnification: &mag5, Left: &left})
			return err
		}
	}
	for _, c := range []struct {
		name string
		// prime, when set, runs untimed on the fresh cache first.
		prime   func(p *Pipeline, ctx context.Context, loc Locator) error
		run     func(p *Pipeline, ctx context.Context, loc Locator) error
		pyramid bool
	}{
		{"mag5", nil, mag5At(0), false},
		// Another area at 5× once a first one was made: its full-resolution
		// tiles are in the cache, the region itself is not.
		{"mag5-after-mag5", mag5At(0), mag5At(4), false},
		{"full-same-size", nil, func(p *Pipeline, ctx context.Context, loc Locator) error {
			_, err := p.Region(ctx, loc, RegionRequest{Left: ptr(0.0), Top: ptr(0.0), Right: ptr(555.0), Bottom: ptr(741.0)})
			return err
		}, false},
		{"tile-z0", nil, func(p *Pipeline, ctx context.Context, loc Locator) error {
			_, err := p.Tile(ctx, loc, TileRequest{})
			return err
		}, false},
		{"pyramid/mag5", nil, mag5At(0), true},
		{"pyramid/mag5-after-tiles", level2Tiles, mag5At(0), true},
		{"pyramid/mag5-after-mag5", mag5At(0), mag5At(4), true},
		// Starting mid-pixel of level 2 (554.5 level pixels to 554): cut
		// on the grid all the same.
		{"pyramid/mag5-mid-pixel-after-tiles", level2Tiles, mag5At(2), true},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			loc := cmuLoc(b)
			for b.Loop() {
				// A fresh cache per iteration would measure the stored
				// tiles' reads; the region itself must not be a hit.
				b.StopTimer()
				tiles, err := tilecache.New(tilecache.Config{Mode: tilecache.ModeMemory, MemoryBytes: 256 << 20})
				if err != nil {
					b.Fatal(err)
				}
				p, err := New(Config{Tiles: tiles, RegionsFromPyramid: c.pyramid})
				if err != nil {
					b.Fatal(err)
				}
				if c.prime != nil {
					if err := c.prime(p, ctx, loc); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				if err := c.run(p, ctx, loc); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				tiles.Close()
				b.StartTimer()
			}
		})
	}
}
