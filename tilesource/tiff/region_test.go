package tiff_test

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/pipeline"
)

// TestOrientationRegion is large_image's own orientation test
// (test/test_source_tiff.py testOrientations): a region of at most 100×100
// of every test_orient file, sampled at 8 points near the corners and edge
// middles. The expected values are large_image's; the in-between values
// (133, 141, 143) sit on an edge, where resampling filters may differ.
func TestOrientationRegion(t *testing.T) {
	cases := []struct {
		w, h   int
		pixels [8]float64
	}{
		{66, 100, [8]float64{0, 0, 0, 255, 0, 255, 0, 255}},
		{66, 100, [8]float64{0, 0, 0, 255, 0, 255, 0, 255}},
		{66, 100, [8]float64{0, 0, 133, 0, 0, 255, 255, 0}},
		{66, 100, [8]float64{255, 0, 143, 0, 255, 0, 0, 0}},
		{66, 100, [8]float64{0, 255, 0, 255, 255, 0, 0, 0}},
		{100, 66, [8]float64{0, 0, 0, 255, 0, 255, 0, 255}},
		{100, 66, [8]float64{0, 255, 0, 255, 141, 0, 0, 0}},
		{100, 66, [8]float64{255, 0, 255, 0, 143, 0, 0, 0}},
		{100, 66, [8]float64{0, 0, 255, 0, 0, 255, 255, 0}},
	}
	p, err := pipeline.New(pipeline.Config{})
	if err != nil {
		t.Fatal(err)
	}
	hundred := 100
	for orient, c := range cases {
		name := fmt.Sprintf("test_orient%d.tif", orient)
		path, err := filepath.Abs(filepath.Join("..", "..", "..", "shared", "testdata", "large_image", name))
		if err != nil {
			t.Fatal(err)
		}
		res, err := p.Region(t.Context(), pipeline.Locator{ID: name, Path: path, Version: "1"}, pipeline.RegionRequest{
			Width: &hundred, Height: &hundred, Encode: pipeline.EncodeOptions{Encoding: "PNG"},
		})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		img, err := encode.Decode(res.Data, "")
		if err != nil {
			t.Fatal(err)
		}
		if img.Width != c.w || img.Height != c.h {
			t.Errorf("%s: %dx%d, want %dx%d", name, img.Width, img.Height, c.w, c.h)
			continue
		}
		w, h := img.Width, img.Height
		at := [8][2]int{{11, 11}, {w - 11, 11}, {11, h / 2}, {w - 11, h / 2}, {w / 2, 11}, {w / 2, h - 11}, {11, h - 11}, {w - 11, h - 11}}
		for i, xy := range at {
			got := float64(img.Pix[(xy[1]*w+xy[0])*img.Bands])
			tol := 8.0
			if c.pixels[i] != 0 && c.pixels[i] != 255 {
				tol = 40
			}
			if math.Abs(got-c.pixels[i]) > tol {
				t.Errorf("%s: pixel %d at %v = %v, want %v", name, i, xy, got, c.pixels[i])
			}
		}
	}
}

// TestDefaultResolutionRefusesMM: boxes.tiff's 28.3 px/cm is a default
// large_image ignores, so a region in mm is refused as large_image refuses
// it; sample.tif's 118.11 px/cm is trusted.
func TestDefaultResolutionRefusesMM(t *testing.T) {
	p, err := pipeline.New(pipeline.Config{})
	if err != nil {
		t.Fatal(err)
	}
	zero, one := 0.0, 1.0
	for _, c := range []struct {
		file   string
		status int
	}{{"openslide-python/boxes.tiff", 400}, {"libvips/sample.tif", 0}} {
		path, err := filepath.Abs(filepath.Join("..", "..", "..", "shared", "testdata", c.file))
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Region(t.Context(), pipeline.Locator{ID: c.file, Path: path, Version: "1"}, pipeline.RegionRequest{
			Left: &zero, Top: &zero, Right: &one, Bottom: &one, Units: "mm", Encode: pipeline.EncodeOptions{Encoding: "PNG"},
		})
		var te *tilesource.Error
		switch {
		case c.status == 0 && err != nil:
			t.Errorf("%s: %v", c.file, err)
		case c.status != 0 && (!errors.As(err, &te) || te.Status != c.status || te.Message != "Value Error: No mm_x or mm_y to use for units"):
			t.Errorf("%s: %v, want %d", c.file, err, c.status)
		}
	}
}
