package dicom

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tileserver/tileserver/tilesource/damaged"
)

// TestDamagedDeclaredSizes: DICOM files whose rows, columns, total pixel
// matrix or frame count lie are refused at open with the reason, and the
// others read their frames without a panic.
func TestDamagedDeclaredSizes(t *testing.T) {
	b, err := os.ReadFile(td("openslide-python/boxes_0.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range damaged.Generate([]damaged.Source{{Name: filepath.Base("boxes_0.dcm"), Data: b}}, 1, 0) {
		files[f.Name] = f.Data
	}
	for name, want := range map[string]string{
		"boxes_0.rowscols-65535.dcm":      "missing or invalid image dimensions",
		"boxes_0.total-100000.dcm":        "cannot tile a 100000x100000 matrix",
		"boxes_0.totalcols-1048576.dcm":   "1 frames cannot tile a 1048576x16 matrix",
		"boxes_0.frames-2147483648.dcm":   "missing or invalid image dimensions",
		"boxes_0.pixellen-2147483632.dcm": "file is truncated",
	} {
		data := files[name]
		if data == nil {
			t.Fatalf("%s not generated", name)
		}
		in, err := openInstance(bytes.NewReader(data), int64(len(data)))
		if err == nil {
			_, err = NewSource(name, []*Instance{in})
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, want)
		}
	}
}
