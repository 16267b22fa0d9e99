package pipeline

import (
	"bytes"
	"context"
	"testing"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilecache"
)

// A region at 5× of the 20× single-level CMU slide is read from
// synthesised level-2 tiles, not from full resolution: its pixels stay
// close to large_image's LANCZOS resample of the full-resolution region,
// its bytes do not depend on what the cache held, and repeats, in any
// units, are tile-cache hits.
func TestRegionLevelAsLargeImageCached(t *testing.T) {
	ctx := context.Background()
	cmu := cmuLoc(t)
	mag := 5.0
	req := RegionRequest{Magnification: &mag, Encode: EncodeOptions{Encoding: "PNG"}}

	cold, err := newPipeline(t, nil).Region(ctx, cmu, req)
	if err != nil {
		t.Fatal(err)
	}
	got := decode(t, cold.Data)
	if got.Width != 555 || got.Height != 741 {
		t.Fatalf("region %dx%d, want 555x741", got.Width, got.Height)
	}
	full, err := newPipeline(t, nil).Region(ctx, cmu, RegionRequest{Encode: EncodeOptions{Encoding: "PNG"}})
	if err != nil {
		t.Fatal(err)
	}
	want, ok := pilResize(rgbOf(decode(t, full.Data)), 555, 741, pilLanczos)
	if !ok {
		t.Fatal("not resized")
	}
	// large_image's getPreferredLevel reads full resolution here (no
	// level is stored within three levels below it) and resizes with
	// LANCZOS; so do we, exactly.
	if g := rgbOf(got); !bytes.Equal(g.Pix, want.Pix) {
		t.Errorf("region at 5× differs from LANCZOS of full resolution by %.2f", meanAbsDiff(t, g, want))
	}

	tiles, err := tilecache.New(tilecache.Config{Mode: tilecache.ModeMemory, MemoryBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer tiles.Close()
	p := newPipeline(t, tiles)
	// Level-2 tiles and stored tiles already cached must not change the
	// bytes.
	if _, err := p.Tile(ctx, cmu, TileRequest{Z: 2, X: 1, Y: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Tile(ctx, cmu, TileRequest{Z: 4, X: 3, Y: 3}); err != nil {
		t.Fatal(err)
	}
	first, err := p.Region(ctx, cmu, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.CacheStatus != tilecache.StatusMiss || !bytes.Equal(first.Data, cold.Data) {
		t.Errorf("first region: %s, same bytes as without a cache: %v", first.CacheStatus, bytes.Equal(first.Data, cold.Data))
	}
	// The same area and size in fractions of the image.
	zero, one, w := 0.0, 1.0, 555
	again, err := p.Region(ctx, cmu, RegionRequest{Left: &zero, Top: &zero, Right: &one, Bottom: &one,
		Units: "fraction", Width: &w, Encode: EncodeOptions{Encoding: "PNG"}})
	if err != nil {
		t.Fatal(err)
	}
	if again.CacheStatus != tilecache.StatusHitMemory || !bytes.Equal(again.Data, cold.Data) {
		t.Errorf("repeat in fractions: %s, same bytes: %v", again.CacheStatus, bytes.Equal(again.Data, cold.Data))
	}
	// Another encoding is another entry.
	jpeg, err := p.Region(ctx, cmu, RegionRequest{Magnification: &mag})
	if err != nil {
		t.Fatal(err)
	}
	if jpeg.CacheStatus != tilecache.StatusMiss || jpeg.MIME != "image/jpeg" {
		t.Errorf("JPEG region: %s %s", jpeg.CacheStatus, jpeg.MIME)
	}
	if img, err := encode.Decode(jpeg.Data, ""); err != nil || img.Width != 555 {
		t.Errorf("JPEG region: %v", err)
	}
}

// rgbOf drops the (opaque) alpha band a region PNG may carry.
func rgbOf(img *encode.Image) *encode.Image {
	if img.Bands != 4 {
		return img
	}
	rgb := encode.NewImage(img.Width, img.Height, 3, encode.Uint8)
	for i := range img.Width * img.Height {
		copy(rgb.Pix[3*i:3*i+3], img.Pix[4*i:4*i+3])
	}
	return rgb
}
