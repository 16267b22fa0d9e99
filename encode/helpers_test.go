package encode

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// testdata is the shared folder of real images beside the repository.
var testdata = filepath.Join("..", "..", "shared", "testdata")

func readTestFile(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdata, rel))
	if err != nil {
		t.Fatalf("test image missing: %v", err)
	}
	return b
}

func decodeFile(t testing.TB, rel, options string) *Image {
	t.Helper()
	img, err := Decode(readTestFile(t, rel), options)
	if err != nil {
		t.Fatalf("Decode(%s): %v", rel, err)
	}
	return img
}

// sample returns the sample at (x, y, band) as float64.
func sample(img *Image, x, y, b int) float64 {
	i := (y*img.Width+x)*img.Bands + b
	ne := binary.NativeEndian
	switch img.Format {
	case Uint8:
		return float64(img.Pix[i])
	case Int8:
		return float64(int8(img.Pix[i]))
	case Uint16:
		return float64(ne.Uint16(img.Pix[2*i:]))
	case Int16:
		return float64(int16(ne.Uint16(img.Pix[2*i:])))
	case Uint32:
		return float64(ne.Uint32(img.Pix[4*i:]))
	case Int32:
		return float64(int32(ne.Uint32(img.Pix[4*i:])))
	case Float32:
		return float64(math.Float32frombits(ne.Uint32(img.Pix[4*i:])))
	case Float64:
		return math.Float64frombits(ne.Uint64(img.Pix[8*i:]))
	}
	return 0
}

// diff returns the mean and maximum absolute sample difference of two
// images of the same shape, comparing the first `bands` bands.
func diff(t testing.TB, a, b *Image, bands int) (mean, maxd float64) {
	t.Helper()
	if a.Width != b.Width || a.Height != b.Height {
		t.Fatalf("size %dx%d != %dx%d", a.Width, a.Height, b.Width, b.Height)
	}
	if a.Bands < bands || b.Bands < bands {
		t.Fatalf("bands %d, %d < %d", a.Bands, b.Bands, bands)
	}
	var sum float64
	for y := range a.Height {
		for x := range a.Width {
			for c := range bands {
				d := math.Abs(sample(a, x, y, c) - sample(b, x, y, c))
				sum += d
				maxd = math.Max(maxd, d)
			}
		}
	}
	return sum / float64(a.Width*a.Height*bands), maxd
}
