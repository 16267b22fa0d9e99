package pipeline

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/tileserver/tileserver/tilecache"
)

func sharedLoc(t *testing.T, rel string) Locator {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(testdata, rel))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("test data missing:", err)
		}
		t.Skip("test data missing:", err)
	}
	return Locator{ID: filepath.Base(rel), Path: p, Version: "1"}
}

func memoryTiles(t *testing.T) *tilecache.Tiered {
	t.Helper()
	tc, err := tilecache.New(tilecache.Config{Mode: tilecache.ModeMemory, MemoryBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	return tc
}

// TestSynthesisedTileIndependentOfCache: a synthesised tile has the same
// bytes on a fresh server and on one whose cache already holds every stored
// tile in the zxy route's JPEG form (what warm-up and viewers leave there),
// for sources stored as JPEG, uncompressed and JPEG 2000. The production
// errors stay at zero (a child that is not a stored JPEG is no failure).
func TestSynthesisedTileIndependentOfCache(t *testing.T) {
	ctx := context.Background()
	for _, rel := range []string{"wsi-to-dicom-converter/raw.dicom", "wsi-to-dicom-converter/jpeg.dicom",
		"libvips/world.jp2", "libvips/CMU-1-Small-Region.svs", "libvips/subsampled.tif"} {
		t.Run(filepath.Base(rel), func(t *testing.T) {
			loc := sharedLoc(t, rel)
			fresh := newPipeline(t, memoryTiles(t))
			warmTiles := memoryTiles(t)
			warm := newPipeline(t, warmTiles)
			info, err := fresh.Metadata(ctx, loc)
			if err != nil {
				t.Fatal(err)
			}
			levels := info["levels"].(int)
			tw, th := info["tileWidth"].(int), info["tileHeight"].(int)
			sx, sy := info["sizeX"].(int), info["sizeY"].(int)
			for y := range (sy + th - 1) / th {
				for x := range (sx + tw - 1) / tw {
					if _, err := warm.Tile(ctx, loc, TileRequest{Z: levels - 1, X: x, Y: y, Encode: DefaultEncode}); err != nil {
						t.Fatal(err)
					}
				}
			}
			for z := range levels - 1 {
				for _, enc := range []string{"PNG", "JPEG"} {
					req := TileRequest{Z: z, Encode: EncodeOptions{Encoding: enc}}
					a, err := fresh.Tile(ctx, loc, req)
					if err != nil {
						t.Fatal(err)
					}
					b, err := warm.Tile(ctx, loc, req)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(a.Data, b.Data) {
						t.Errorf("level %d %s: fresh and warmed tiles differ (%d and %d bytes)", z, enc, len(a.Data), len(b.Data))
					}
				}
			}
			if n := warmTiles.Stats().ProduceErrors; n != 0 {
				t.Errorf("%d production errors", n)
			}
		})
	}
}
