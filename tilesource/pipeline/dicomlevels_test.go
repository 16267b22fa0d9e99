package pipeline

import (
	"context"
	"testing"

	"github.com/tileserver/tileserver/encode"
)

// large_image's DICOM reader makes a missing level's tile from the whole
// zero-padded block of the finer level resized by Pillow's BICUBIC, and its
// regions read the level they need (every DICOM level counts as populated).
// The expected pixels are large_image 1.35.2's answers for raw.dicom
// (PNG, so exact), whatever the cache held before.
func TestDICOMLevelsAsLargeImage(t *testing.T) {
	ctx := context.Background()
	loc := sharedLoc(t, "wsi-to-dicom-converter/raw.dicom")
	type px struct{ x, y, r, g, b int }
	check := func(name string, res *Result, w, h int, want []px) {
		t.Helper()
		img, err := encode.Decode(res.Data, "")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if img.Width != w || img.Height != h {
			t.Fatalf("%s: %d×%d, want %d×%d", name, img.Width, img.Height, w, h)
		}
		for _, p := range want {
			i := (p.y*img.Width + p.x) * img.Bands
			got := [3]int{int(img.Pix[i]), int(img.Pix[i+1]), int(img.Pix[i+2])}
			if got != [3]int{p.r, p.g, p.b} {
				t.Errorf("%s at %d,%d: %v, large_image gives %v", name, p.x, p.y, got, [3]int{p.r, p.g, p.b})
			}
		}
	}
	for _, warm := range []bool{false, true} {
		p := newPipeline(t, memoryTiles(t))
		if warm {
			// The stored level's tiles already cached must not change
			// how the lower levels are made.
			for y := range 3 {
				for x := range 4 {
					if _, err := p.Tile(ctx, loc, TileRequest{Z: 2, X: x, Y: y, Encode: DefaultEncode}); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		res, err := p.Tile(ctx, loc, TileRequest{Z: 0, Encode: EncodeOptions{Encoding: "PNG"}})
		if err != nil {
			t.Fatal(err)
		}
		check("zxy/0/0/0", res, 256, 256, []px{{0, 0, 76, 106, 194}, {10, 20, 117, 162, 202},
			{120, 90, 83, 127, 190}, {238, 177, 94, 127, 212}, {239, 178, 27, 36, 44}, {200, 50, 194, 210, 216}})
		mag := 0.2979205148066496 // half the native magnification
		res, err = p.Region(ctx, loc, RegionRequest{Magnification: &mag, Encode: EncodeOptions{Encoding: "PNG"}})
		if err != nil {
			t.Fatal(err)
		}
		check("region at half magnification", res, 478, 357, []px{{0, 0, 89, 118, 213}, {100, 100, 53, 88, 186},
			{477, 356, 143, 194, 249}, {250, 30, 81, 120, 206}, {30, 300, 216, 214, 225}})
	}
}
