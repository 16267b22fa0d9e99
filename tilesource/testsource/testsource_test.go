package testsource

import (
	"context"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/tileserver/tileserver/tilesource"
)

func metadataJSON(t *testing.T, s *Source) any {
	t.Helper()
	b, err := json.Marshal(tilesource.FrameMetadata(s.Info()))
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func mustJSON(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestDefaultMetadata(t *testing.T) {
	s, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := mustJSON(t, `{"levels": 10, "sizeX": 131072, "sizeY": 131072, "tileWidth": 256,
		"tileHeight": 256, "magnification": null, "mm_x": null, "mm_y": null, "dtype": "uint8",
		"bandCount": 3}`)
	if got := metadataJSON(t, s); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v", got)
	}
	if !reflect.DeepEqual(s.InternalMetadata(), map[string]any{"fractal": false, "monochrome": false}) {
		t.Errorf("internal metadata %v", s.InternalMetadata())
	}
}

func TestSpecExampleMetadata(t *testing.T) {
	s, err := New(map[string]string{"frames": "c=2,z=3", "sizeX": "10000", "sizeY": "5000"})
	if err != nil {
		t.Fatal(err)
	}
	want := mustJSON(t, `{"levels": 7, "sizeX": 10000, "sizeY": 5000, "tileWidth": 256, "tileHeight": 256,
 "magnification": null, "mm_x": null, "mm_y": null, "dtype": "uint8", "bandCount": 3,
 "frames": [
   {"IndexZ": 0, "IndexC": 0, "Frame": 0, "Index": 0},
   {"IndexZ": 0, "IndexC": 1, "Frame": 1, "Index": 0},
   {"IndexZ": 1, "IndexC": 0, "Frame": 2, "Index": 1},
   {"IndexZ": 1, "IndexC": 1, "Frame": 3, "Index": 1},
   {"IndexZ": 2, "IndexC": 0, "Frame": 4, "Index": 2},
   {"IndexZ": 2, "IndexC": 1, "Frame": 5, "Index": 2}],
 "IndexRange": {"IndexC": 2, "IndexZ": 3},
 "IndexStride": {"IndexC": 1, "IndexZ": 2}}`)
	if got := metadataJSON(t, s); !reflect.DeepEqual(got, want) {
		b, _ := json.Marshal(got)
		t.Errorf("got %s", b)
	}
}

func TestFramesForms(t *testing.T) {
	for spec, n := range map[string]int{"4": 4, "2,3": 6, "1,1,2": 2, "xy=2,t=2": 4} {
		s, err := New(map[string]string{"frames": spec})
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		if s.Info().FrameCount() != n {
			t.Errorf("frames=%s: %d frames, want %d", spec, s.Info().FrameCount(), n)
		}
	}
	s, _ := New(map[string]string{"frames": "1,1,2"})
	if !reflect.DeepEqual(s.Info().Frames[1], map[string]any{"IndexT": 1}) {
		t.Errorf("axes of count 1 must be omitted: %v", s.Info().Frames[1])
	}
	for _, bad := range []string{"x", "0", "a=b", "1,2,3,4,5"} {
		if _, err := New(map[string]string{"frames": bad}); err == nil {
			t.Errorf("frames=%s accepted", bad)
		}
	}
}

func TestBadInt(t *testing.T) {
	for _, name := range []string{"minLevel", "maxLevel", "tileWidth", "tileHeight", "sizeX", "sizeY"} {
		_, err := New(map[string]string{name: "1.3"})
		var e *tilesource.Error
		if !asErr(err, &e) || e.Status != 400 || e.Message != `"`+name+`" parameter is an incorrect type.` {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := New(map[string]string{"tileWidth": "100000"}); err == nil {
		t.Error("huge tile accepted")
	}
}

func asErr(err error, e **tilesource.Error) bool {
	te, ok := err.(*tilesource.Error)
	*e = te
	return ok
}

// expected computes the spec's colour formula independently.
func expected(x, y, z, levels, tw, th, sizeX, sizeY int, frameFrac float64) [3]int {
	step := math.Pow(2, float64(levels-1-z))
	xf := (float64(x) + 0.5) * float64(tw) * step / float64(sizeX)
	yf := (float64(y) + 0.5) * float64(th) * step / float64(sizeY)
	s := 0.3 + 0.7*yf
	if frameFrac >= 0 {
		s = 0.3 + 0.7*frameFrac
	}
	v := 0.3 + 0.7*yf
	h := xf - math.Floor(xf)
	i := int(h * 6)
	f := h*6 - float64(i)
	p, q, tt := v*(1-s), v*(1-s*f), v*(1-s*(1-f))
	var r, g, b float64
	switch i {
	case 0:
		r, g, b = v, tt, p
	case 1:
		r, g, b = q, v, p
	case 2:
		r, g, b = p, v, tt
	case 3:
		r, g, b = p, q, v
	case 4:
		r, g, b = tt, p, v
	default:
		r, g, b = v, p, q
	}
	return [3]int{int(r * 255), int(g * 255), int(b * 255)}
}

func TestTileColours(t *testing.T) {
	s, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range [][3]int{{0, 0, 0}, {1, 2, 3}, {5, 1, 3}, {300, 77, 9}, {7, 7, 3}} {
		x, y, z := c[0], c[1], c[2]
		tile, err := s.ReadTile(context.Background(), 0, z, x, y)
		if err != nil {
			t.Fatal(err)
		}
		img := tile.Pixels
		if img.Width != 256 || img.Height != 256 || img.Bands != 3 {
			t.Fatalf("tile size %dx%dx%d", img.Width, img.Height, img.Bands)
		}
		want := expected(x, y, z, 10, 256, 256, 131072, 131072, -1)
		for _, p := range [][2]int{{200, 200}, {250, 5}, {5, 250}} {
			o := (p[1]*256 + p[0]) * 3
			got := [3]int{int(img.Pix[o]), int(img.Pix[o+1]), int(img.Pix[o+2])}
			if got != want {
				t.Errorf("tile %v pixel %v = %v, want %v", c, p, got, want)
			}
		}
		// The label is drawn in black near the top-left corner.
		dark := 0
		for yy := 10; yy < 160; yy++ {
			for xx := 10; xx < 120; xx++ {
				o := (yy*256 + xx) * 3
				if img.Pix[o] < 40 && img.Pix[o+1] < 40 && img.Pix[o+2] < 40 {
					dark++
				}
			}
		}
		if dark < 300 {
			t.Errorf("tile %v: only %d dark label pixels", c, dark)
		}
	}
}

func TestFrameColourMonochromeAndMinLevel(t *testing.T) {
	s, err := New(map[string]string{"frames": "5", "monochrome": "true", "minLevel": "2"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Info().Bands != 1 {
		t.Fatal("monochrome must have 1 band")
	}
	tile, err := s.ReadTile(context.Background(), 2, 4, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	rgb := expected(3, 1, 4, 10, 256, 256, 131072, 131072, 0.5)
	want := (rgb[0]*299 + rgb[1]*587 + rgb[2]*114 + 500) / 1000
	if got := int(tile.Pixels.Pix[200*256+200]); got != want {
		t.Errorf("grey %d, want %d", got, want)
	}
	if _, err := s.ReadTile(context.Background(), 0, 1, 0, 0); err != tilesource.ErrZRange {
		t.Errorf("below minLevel: %v", err)
	}
}

func TestFractal(t *testing.T) {
	s, err := New(map[string]string{"fractal": "true"})
	if err != nil {
		t.Fatal(err)
	}
	tile, _ := s.ReadTile(context.Background(), 0, 0, 0, 0)
	img := tile.Pixels
	col := s.Color(0, 0, 0, 0)
	// At level 0 the largest square covers the middle half of the tile.
	o := (128*256 + 128) * 3
	if [3]uint8{img.Pix[o], img.Pix[o+1], img.Pix[o+2]} != col {
		t.Errorf("centre not in square colour")
	}
	o = 0 // no square ever covers the top-left pixel
	if !strings.EqualFold("ffffff", hex(img.Pix[o:o+3])) {
		t.Errorf("corner not white: %v", img.Pix[o:o+3])
	}
}

func hex(b []byte) string {
	const d = "0123456789abcdef"
	var sb strings.Builder
	for _, c := range b {
		sb.WriteByte(d[c>>4])
		sb.WriteByte(d[c&15])
	}
	return sb.String()
}
