package tiff

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilesource"
)

// testdata is the shared folder of real test images.
var testdata = filepath.Join("..", "..", "..", "shared", "testdata")

func tdPath(rel string) string { return filepath.Join(testdata, rel) }

// openT opens a test file as a *Source.
func openT(t testing.TB, rel string) *Source {
	t.Helper()
	s, err := Open(tdPath(rel))
	if err != nil {
		t.Fatalf("open %s: %v", rel, err)
	}
	t.Cleanup(func() { s.Close() })
	return s.(*Source)
}

// sample returns sample i of img as a float.
func sample(img *encode.Image, i int) float64 {
	sz := img.Format.Size()
	b := img.Pix[i*sz:]
	switch img.Format {
	case encode.Uint8:
		return float64(b[0])
	case encode.Int8:
		return float64(int8(b[0]))
	case encode.Uint16:
		return float64(nativeU16(b))
	case encode.Int16:
		return float64(int16(nativeU16(b)))
	}
	return math.NaN()
}

func nativeU16(b []byte) uint16 { return binary.NativeEndian.Uint16(b) }

// meanAbsDiff compares got with the same-size area of ref at (x, y); only
// pixels inside ref count. Band counts and formats must match.
func meanAbsDiff(t testing.TB, got, ref *encode.Image, x, y int) float64 {
	t.Helper()
	if got.Bands != ref.Bands || got.Format != ref.Format {
		t.Fatalf("layout: got %d bands %s, reference %d bands %s", got.Bands, got.Format.DType(), ref.Bands, ref.Format.DType())
	}
	var sum float64
	n := 0
	for r := 0; r < got.Height && y+r < ref.Height; r++ {
		for c := 0; c < got.Width && x+c < ref.Width; c++ {
			for b := 0; b < got.Bands; b++ {
				g := sample(got, (r*got.Width+c)*got.Bands+b)
				f := sample(ref, ((y+r)*ref.Width+x+c)*ref.Bands+b)
				sum += math.Abs(g - f)
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("no overlap to compare")
	}
	return sum / float64(n)
}

// pageImage decodes page n of a test file with libvips' own TIFF loader.
func pageImage(t testing.TB, rel string, page int) *encode.Image {
	t.Helper()
	b, err := os.ReadFile(tdPath(rel))
	if err != nil {
		t.Fatal(err)
	}
	opt := ""
	if page > 0 {
		opt = "page=" + strconv.Itoa(page)
	}
	img, err := encode.Decode(b, opt)
	if err != nil {
		t.Fatalf("libvips decode %s page %d: %v", rel, page, err)
	}
	return img
}

// tileImage reads and decodes one tile.
func tileImage(t testing.TB, s tilesource.Source, frame, z, x, y int) (*tilesource.Tile, *encode.Image) {
	t.Helper()
	tl, err := s.ReadTile(t.Context(), frame, z, x, y)
	if err != nil {
		t.Fatalf("ReadTile(%d, %d, %d, %d): %v", frame, z, x, y, err)
	}
	img, err := tl.Image()
	if err != nil {
		t.Fatalf("decode tile (%d, %d, %d, %d): %v", frame, z, x, y, err)
	}
	return tl, img
}
