package tiff

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/tileserver/tileserver/encode"
)

// TestSubIFDPyramid reads pyramids that libvips writes with --subifd (the
// layout of converter output and OME pyramids): levels come from SubIFDs.
// The files are made at test time from a real JPEG with the vips CLI.
func TestSubIFDPyramid(t *testing.T) {
	vips, err := exec.LookPath("vips")
	if err != nil {
		t.Fatal("the vips command (libvips-tools) is required")
	}
	for _, comp := range []string{"jpeg", "deflate"} {
		out := filepath.Join(t.TempDir(), "sub-"+comp+".tif")
		cmd := exec.Command(vips, "tiffsave", tdPath("libvips/sample.jpg"), out, "--tile", "--pyramid", "--subifd",
			"--compression", comp, "--tile-width", "64", "--tile-height", "64")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("vips tiffsave: %v\n%s", err, b)
		}
		s, err := Open(out)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		in := s.Info()
		// 290×442 with 64-pixel tiles: ceil(log2(442/64)) + 1 = 4 levels.
		if in.SizeX != 290 || in.SizeY != 442 || in.Levels != 4 || !slices.Equal(in.Stored, []bool{true, true, true, true}) {
			t.Fatalf("%s: %dx%d levels %d stored %v", comp, in.SizeX, in.SizeY, in.Levels, in.Stored)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		for z := 0; z < in.Levels; z++ {
			opt := ""
			if z < in.Levels-1 {
				opt = "subifd=" + strconv.Itoa(in.Levels-2-z)
			}
			ref, err := encode.Decode(data, opt)
			if err != nil {
				t.Fatal(err)
			}
			if w, h := in.LevelSize(z); ref.Width != w || ref.Height != h {
				t.Fatalf("%s level %d: libvips %dx%d, level size %dx%d", comp, z, ref.Width, ref.Height, w, h)
			}
			cols, rows := in.TileCount(z)
			x, y := cols-1, rows-1
			tl, img := tileImage(t, s, 0, z, x, y)
			if (tl.Encoding == "JPEG") != (comp == "jpeg") {
				t.Fatalf("%s level %d: encoding %q", comp, z, tl.Encoding)
			}
			if d := meanAbsDiff(t, img, ref, x*64, y*64); d > 1 {
				t.Fatalf("%s level %d tile %d,%d: mean abs diff %.2f", comp, z, x, y, d)
			}
		}
	}
}
