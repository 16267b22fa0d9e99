package tiff

import (
	"os"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilesource"
)

// qptiffPath is a QPTIFF written by testdata/qptiff/make_qptiff.py with
// Debian's python3-tifffile, in the layout of Akoya/PerkinElmer files: three
// full-resolution channel pages, a thumbnail, two reduced levels of three
// pages each, an overview and a label.
const qptiffPath = "testdata/qptiff/fluorescence.qptiff"

func TestQPTIFF(t *testing.T) {
	so, err := Open(qptiffPath)
	if err != nil {
		t.Fatal(err)
	}
	defer so.Close()
	s := so.(*Source)
	in := s.Info()
	if in.SizeX != 512 || in.SizeY != 384 || in.TileWidth != 128 || in.TileHeight != 128 || in.Levels != 3 ||
		!slices.Equal(in.Stored, []bool{true, true, true}) || in.Bands != 1 || in.Format != encode.Uint8 || in.SourceName != "tiff" {
		t.Fatalf("info %+v", in)
	}
	// What large_image 1.35.2 answers for this file, but for the
	// magnification: the objective's 20, where large_image derives
	// 0.01/mm_x = 20.140998046875 from the resolution tags.
	m := tilesource.FrameMetadata(in)
	want := map[string]any{
		"IndexRange":  map[string]any{"IndexC": 3},
		"IndexStride": map[string]any{"IndexC": 1},
		"channels":    []string{"DAPI", "CD8", "PanCK"},
		"channelmap":  map[string]any{"DAPI": 0, "CD8": 1, "PanCK": 2},
	}
	for k, v := range want {
		if !reflect.DeepEqual(m[k], v) {
			t.Errorf("%s = %#v, want %#v", k, m[k], v)
		}
	}
	frames := m["frames"].([]any)
	if len(frames) != 3 || !reflect.DeepEqual(frames[1], map[string]any{"Frame": 1, "Index": 0, "IndexC": 1, "Channel": "CD8"}) {
		t.Errorf("frames %v", frames)
	}
	if in.Magnification == nil || *in.Magnification != 20 || in.MMX == nil || *in.MMX < 0.00049649 || *in.MMX > 0.0004965 {
		t.Errorf("magnification %v mm %v", in.Magnification, in.MMX)
	}
	if got := s.AssociatedNames(); !slices.Equal(got, []string{"label", "macro", "thumbnail"}) {
		t.Errorf("associated %v", got)
	}
	data, err := os.ReadFile(qptiffPath)
	if err != nil {
		t.Fatal(err)
	}
	// Associated images are the Thumbnail, Overview and Label pages.
	for name, page := range map[string]int{"thumbnail": 3, "macro": 10, "label": 11} {
		img, err := s.Associated(name)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := encode.Decode(data, "page="+strconv.Itoa(page))
		if err != nil {
			t.Fatal(err)
		}
		if img.Width != ref.Width || img.Height != ref.Height || meanAbsDiff(t, img, ref, 0, 0) != 0 {
			t.Errorf("%s differs from page %d", name, page)
		}
	}
	// Each channel's levels are its own pages: level z of frame c is page
	// c at full resolution, then 4+c and 7+c.
	for c := range 3 {
		for z, page := range []int{7 + c, 4 + c, c} {
			ref, err := encode.Decode(data, "page="+strconv.Itoa(page))
			if err != nil {
				t.Fatal(err)
			}
			cols, rows := in.TileCount(z)
			_, img := tileImage(t, s, c, z, cols-1, rows-1)
			if d := meanAbsDiff(t, img, ref, (cols-1)*128, (rows-1)*128); d != 0 {
				t.Errorf("frame %d level %d: mean abs diff %.3f from page %d", c, z, d, page)
			}
		}
	}
}
