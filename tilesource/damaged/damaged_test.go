package damaged

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestGenerateDeterministic(t *testing.T) {
	var srcs []Source
	for _, p := range []string{"large_image/grey10kx5k.tif", "openslide-python/boxes_0.dcm"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "testdata", p))
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, Source{Name: filepath.Base(p), Data: b})
	}
	a, b := Generate(srcs, 1, 3), Generate(srcs, 1, 3)
	if len(a) != len(b) || len(a) < 50 {
		t.Fatalf("%d and %d files", len(a), len(b))
	}
	names := map[string]bool{}
	for i := range a {
		if a[i].Name != b[i].Name || !bytes.Equal(a[i].Data, b[i].Data) {
			t.Fatalf("file %d differs between runs", i)
		}
		if names[a[i].Name] {
			t.Fatalf("duplicate name %s", a[i].Name)
		}
		names[a[i].Name] = true
	}
	// The exact case of the report: grey10kx5k.tif with RowsPerStrip 0.
	for _, f := range a {
		if f.Name == "grey10kx5k.ifd0-rowsperstrip-0.tif" {
			return
		}
	}
	t.Fatal("no grey10kx5k.ifd0-rowsperstrip-0.tif")
}
