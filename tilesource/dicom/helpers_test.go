package dicom

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilesource"
)

// td returns the path of a file in the shared test data folder.
func td(name string) string {
	return filepath.Join("..", "..", "..", "shared", "testdata", name)
}

func mustOpen(t testing.TB, path string) tilesource.Source {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func tileImage(t testing.TB, s tilesource.Source, frame, z, x, y int) *encode.Image {
	t.Helper()
	tl, err := s.ReadTile(t.Context(), frame, z, x, y)
	if err != nil {
		t.Fatalf("tile %d/%d/%d: %v", z, x, y, err)
	}
	img, err := tl.Image()
	if err != nil {
		t.Fatalf("decode tile %d/%d/%d: %v", z, x, y, err)
	}
	return img
}

// diff returns the mean and maximum absolute sample difference of two
// 8-bit images of the same shape.
func diff(t testing.TB, a, b *encode.Image) (float64, int) {
	t.Helper()
	if a.Width != b.Width || a.Height != b.Height || a.Bands != b.Bands || a.Format != b.Format {
		t.Fatalf("shapes differ: %dx%dx%d/%v vs %dx%dx%d/%v", a.Width, a.Height, a.Bands, a.Format, b.Width, b.Height, b.Bands, b.Format)
	}
	sum, mx := 0, 0
	for i := range a.Pix {
		d := int(a.Pix[i]) - int(b.Pix[i])
		if d < 0 {
			d = -d
		}
		sum += d
		mx = max(mx, d)
	}
	return float64(sum) / float64(len(a.Pix)), mx
}

// compareAll compares every stored tile of two sources of the same
// geometry: exactly (maxMean 0) or within a tolerance.
func compareAll(t *testing.T, a, b tilesource.Source, maxMean float64, maxAbs int) {
	t.Helper()
	ia, ib := a.Info(), b.Info()
	if ia.SizeX != ib.SizeX || ia.SizeY != ib.SizeY || ia.Levels != ib.Levels {
		t.Fatalf("geometry differs: %+v vs %+v", ia, ib)
	}
	for z := range ia.Levels {
		if !ia.Stored[z] {
			continue
		}
		cols, rows := ia.TileCount(z)
		for y := range rows {
			for x := range cols {
				m, mx := diff(t, tileImage(t, a, 0, z, x, y), tileImage(t, b, 0, z, x, y))
				if m > maxMean || mx > maxAbs {
					t.Errorf("tile %d/%d/%d: mean diff %.2f, max %d (limits %.2f, %d)", z, x, y, m, mx, maxMean, maxAbs)
				}
			}
		}
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeTemp writes b to a file named name in a temporary directory.
func writeTemp(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
