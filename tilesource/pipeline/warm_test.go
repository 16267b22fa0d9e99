package pipeline

import (
	"context"
	"testing"

	"github.com/tileserver/tileserver/tilecache"
)

// TestWarmFillsLowLevels warms the CMU slide (levels of 1, 4, 12, 35 and
// 130 tiles) and checks that the levels of at most 64 tiles and the default
// thumbnail and associated images are then memory hits for requests with
// the routes' defaults.
func TestWarmFillsLowLevels(t *testing.T) {
	tiles, err := tilecache.New(tilecache.Config{Mode: tilecache.ModeMemory, MemoryBytes: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer tiles.Close()
	p := newPipeline(t, tiles)
	loc := cmuLoc(t)
	ctx := context.Background()
	names, err := p.AssociatedNames(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	var calls, waits int
	pr, err := p.Warm(ctx, loc, WarmOptions{Wait: func(context.Context) error { waits++; return nil }},
		func(WarmProgress) { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	want := 1 + (1 + 4 + 12 + 35) + len(names)
	if pr.Levels != 4 || pr.Total != want || pr.Done != want || pr.Failed != 0 || pr.Produced != want || calls != want || waits != want {
		t.Fatalf("progress %+v (calls %d, waits %d), want %d units over 4 levels", pr, calls, waits, want)
	}
	for z, n := range []int{1, 2, 3, 5} { // columns per level
		rows := []int{1, 2, 4, 7}[z]
		for y := range rows {
			for x := range n {
				// What the zxy route asks for with no parameters.
				req := TileRequest{Z: z, X: x, Y: y, Encode: EncodeOptions{JPEGQuality: 95}}
				res, err := p.Tile(ctx, loc, req)
				if err != nil {
					t.Fatal(err)
				}
				if res.CacheStatus != tilecache.StatusHitMemory {
					t.Fatalf("tile %d/%d/%d after warm-up: %s", z, x, y, res.CacheStatus)
				}
			}
		}
	}
	res, err := p.Thumbnail(ctx, loc, ThumbnailRequest{Encode: EncodeOptions{JPEGQuality: 95}})
	if err != nil || res.CacheStatus != tilecache.StatusHitMemory {
		t.Fatalf("default thumbnail after warm-up: %v %v", res, err)
	}
	for _, name := range names {
		// What the images/{key} route asks for with no parameters.
		req := AssociatedRequest{Key: name, Encode: EncodeOptions{JPEGQuality: 95}}
		res, err := p.Associated(ctx, loc, req)
		if err != nil || res == nil || res.CacheStatus != tilecache.StatusHitMemory {
			t.Fatalf("associated image %q after warm-up: %v %v", name, res, err)
		}
	}
	// A second warm-up finds everything cached.
	pr, err = p.Warm(ctx, loc, WarmOptions{}, nil)
	if err != nil || pr.Produced != 0 || pr.Cached != want {
		t.Errorf("second warm-up %+v %v", pr, err)
	}
	// MaxTiles bounds the levels.
	pr, err = p.Warm(ctx, loc, WarmOptions{MaxTiles: 4}, nil)
	if err != nil || pr.Levels != 2 || pr.Total != 1+1+4+len(names) {
		t.Errorf("MaxTiles 4: %+v %v", pr, err)
	}
	// A cancelled warm-up stops with the context's error.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.Warm(cctx, loc, WarmOptions{Wait: func(ctx context.Context) error { return ctx.Err() }}, nil); err == nil {
		t.Error("cancelled warm-up succeeded")
	}
}
