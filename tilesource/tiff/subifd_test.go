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

// TestOMESubIFDPyramid re-saves the real OME-TIFF as a tiled pyramid with
// SubIFDs per plane (libvips keeps the OME XML in the first page), the
// layout of pyramidal OME-TIFF.
func TestOMESubIFDPyramid(t *testing.T) {
	vips, err := exec.LookPath("vips")
	if err != nil {
		t.Fatal("the vips command (libvips-tools) is required")
	}
	// libvips shrinks int8 pyramids to uint8 levels, so cast first.
	tmp := filepath.Join(t.TempDir(), "planes.v")
	out := filepath.Join(t.TempDir(), "pyr.ome.tif")
	for _, args := range [][]string{
		{"cast", tdPath("libvips/multi-channel-z-series.ome.tif") + "[n=-1]", tmp, "uchar"},
		{"tiffsave", tmp, out, "--tile", "--pyramid", "--subifd", "--tile-width", "64", "--tile-height", "64", "--page-height", "167"},
	} {
		if b, err := exec.Command(vips, args...).CombinedOutput(); err != nil {
			t.Fatalf("vips %s: %v\n%s", args[0], err, b)
		}
	}
	s, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	in := s.Info()
	if in.SourceName != "ometiff" || in.FrameCount() != 15 || in.Levels != 4 || !slices.Equal(in.Stored, []bool{true, true, true, true}) {
		t.Fatalf("source %s frames %d levels %d stored %v", in.SourceName, in.FrameCount(), in.Levels, in.Stored)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// Frames are in file order: frame 6 is page 6 (C=1, Z=1).
	differs := false
	for z := 0; z < in.Levels; z++ {
		opt := "page=6"
		if z < in.Levels-1 {
			opt += ",subifd=" + strconv.Itoa(in.Levels-2-z)
		}
		ref, err := encode.Decode(data, opt)
		if err != nil {
			t.Fatal(err)
		}
		cols, rows := in.TileCount(z)
		_, img := tileImage(t, s, 6, z, cols-1, rows-1)
		if d := meanAbsDiff(t, img, ref, (cols-1)*64, (rows-1)*64); d != 0 {
			t.Fatalf("level %d: mean abs diff %.3f", z, d)
		}
		// A different frame has different pixels somewhere.
		_, other := tileImage(t, s, 0, z, cols-1, rows-1)
		differs = differs || meanAbsDiff(t, other, ref, (cols-1)*64, (rows-1)*64) != 0
	}
	if !differs {
		t.Fatal("frame 0 equals frame 6 at every level")
	}
}
