package pipeline

import (
	"testing"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/limits"
)

func TestMaxTransformPixels(t *testing.T) {
	defer limits.Set(limits.Limits{})
	const maxRegionPixels = 1 << 26
	limits.Set(limits.Limits{MaxOutputPixels: maxRegionPixels})
	for _, c := range []struct {
		name   string
		stored []bool
		want   int64
	}{
		// Every level stored: the level read is at most twice as fine.
		{"full pyramid", []bool{true, true, true, true, true}, maxRegionPixels / 4},
		// Aperio-like 4× steps: one level finer still.
		{"every other level", []bool{true, false, true, false, true}, maxRegionPixels / 16},
		// Full resolution only: synthesis spans at most two levels more.
		{"one level", []bool{false, false, false, false, true}, maxRegionPixels / 64},
	} {
		info := &tilesource.Info{Levels: len(c.stored), Stored: c.stored}
		if got := MaxTransformPixels(info); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}

func TestMirrorRotateLuma(t *testing.T) {
	// 3×2, one band: 1 2 3 / 4 5 6.
	img := &encode.Image{Width: 3, Height: 2, Bands: 1, Format: encode.Uint8, Pix: []byte{1, 2, 3, 4, 5, 6}}
	for _, c := range []struct {
		name string
		got  *encode.Image
		w, h int
		pix  []byte
	}{
		{"mirror", mirror(img), 3, 2, []byte{3, 2, 1, 6, 5, 4}},
		{"90", rotate(img, 90), 2, 3, []byte{4, 1, 5, 2, 6, 3}},
		{"180", rotate(img, 180), 3, 2, []byte{6, 5, 4, 3, 2, 1}},
		{"270", rotate(img, 270), 2, 3, []byte{3, 6, 2, 5, 1, 4}},
	} {
		if c.got.Width != c.w || c.got.Height != c.h || string(c.got.Pix) != string(c.pix) {
			t.Errorf("%s: %d×%d %v, want %d×%d %v", c.name, c.got.Width, c.got.Height, c.got.Pix, c.w, c.h, c.pix)
		}
	}
	rgba := &encode.Image{Width: 2, Height: 1, Bands: 4, Format: encode.Uint8,
		Pix: []byte{255, 0, 0, 255, 0, 200, 0, 10}}
	if g := luma(rgba, false); string(g.Pix) != string([]byte{76, 117}) || g.Bands != 1 {
		t.Errorf("luma %v", g.Pix)
	}
	if g := luma(rgba, true); string(g.Pix) != string([]byte{0, 0}) {
		t.Errorf("bitonal %v", g.Pix)
	}
}
