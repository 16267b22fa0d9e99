package pipeline

import (
	"context"
	"testing"
)

// A level four or more times below the stored one is made as large_image's
// _getTileFromEmptyLevel makes it, LANCZOS over the children (here from
// children decoded at half size), not by a box-like DCT scaling: the
// expected pixels are large_image 1.35.2's (tiff source) for
// CMU-1-Small-Region.svs, within JPEG noise.
func TestDeepSynthesisAsLargeImage(t *testing.T) {
	ctx := context.Background()
	cmu := cmuLoc(t)
	p := newPipeline(t, memoryTiles(t))
	type px struct{ x, y, r, g, b int }
	check := func(name string, data []byte, want []px) {
		t.Helper()
		img := decode(t, data)
		for _, q := range want {
			i := (q.y*img.Width + q.x) * img.Bands
			for b, v := range []int{q.r, q.g, q.b} {
				if d := int(img.Pix[i+b]) - v; d > 4 || d < -4 {
					t.Errorf("%s at %d,%d: %v, large_image gives %d,%d,%d", name, q.x, q.y, img.Pix[i:i+3], q.r, q.g, q.b)
					break
				}
			}
		}
	}
	res, err := p.Tile(ctx, cmu, TileRequest{Z: 1, Encode: EncodeOptions{Encoding: "PNG"}})
	if err != nil {
		t.Fatal(err)
	}
	check("zxy/1/0/0", res.Data, []px{{4, 8, 120, 151, 172}, {160, 98, 52, 36, 69}, {51, 131, 176, 108, 148},
		{114, 163, 114, 75, 120}, {116, 203, 197, 104, 144}, {233, 239, 130, 146, 167}})
	res, err = p.Thumbnail(ctx, cmu, ThumbnailRequest{Encode: EncodeOptions{Encoding: "PNG"}})
	if err != nil {
		t.Fatal(err)
	}
	check("thumbnail", res.Data, []px{{0, 6, 165, 102, 139}, {97, 86, 159, 108, 153}, {88, 126, 194, 105, 144},
		{152, 170, 174, 86, 124}, {81, 211, 182, 108, 149}, {145, 255, 62, 51, 80}})
}
