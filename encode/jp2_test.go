package encode

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
)

func TestDecodePaletteJP2(t *testing.T) {
	data := readTestFile(t, "libvips/issue412.jp2")
	img, err := Decode(data, "")
	if err != nil {
		t.Fatal(err)
	}
	if img.Width != 256 || img.Height != 100 || img.Bands != 3 || img.Format != Uint8 {
		t.Fatalf("issue412: %dx%d %d bands %s", img.Width, img.Height, img.Bands, img.Format.DType())
	}
	// The indices come from the bare codestream; the colours must be the
	// palette entries of the pclr box, read here independently.
	idx, err := Decode(data[bytes.Index(data, j2kSignature):], "")
	if err != nil || idx.Bands != 1 {
		t.Fatalf("codestream: %v", err)
	}
	// Its cdef box associates palette column 0 with green, 1 with blue and
	// 2 with red, so red is column 2 (OpenJPEG's opj_jp2_apply_cdef).
	col := [3]int{2, 0, 1}
	p := bytes.Index(data, []byte("pclr")) + 4 + 6 // NE(2) NPC(1) B(3)
	for _, xy := range [][2]int{{0, 0}, {128, 50}, {255, 99}, {17, 83}} {
		i := int(idx.Pix[xy[1]*256+xy[0]])
		for c := range 3 {
			if got, want := sample(img, xy[0], xy[1], c), float64(data[p+3*i+col[c]]); got != want {
				t.Errorf("(%d,%d) band %d = %v; want palette[%d][%d] = %v", xy[0], xy[1], c, got, i, col[c], want)
			}
		}
	}
	// What opj_decompress and large_image give at (30, 50).
	for c, want := range []float64{236, 238, 8} {
		if got := sample(img, 30, 50, c); got != want {
			t.Errorf("(30,50) band %d = %v, want %v", c, got, want)
		}
	}
	h, err := OpenFile(filepath.Join(testdata, "libvips/issue412.jp2"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	r, err := h.Region(200, 80, 64, 64)
	if err != nil {
		t.Fatal(err)
	}
	want := Pad(Crop(img, 200, 80, 64, 64), 64, 64, nil)
	if !bytes.Equal(r.Pix, want.Pix) {
		t.Error("palette JP2 handle region differs from Decode")
	}
}

func TestJ2KOriginRefused(t *testing.T) {
	// Bretagne2_4.j2k has its image origin at (150, 300); libvips 8.14.1
	// writes out of bounds decoding it, so it must be refused, not crash.
	_, err := Decode(readTestFile(t, "libvips/Bretagne2_4.j2k"), "")
	if !errors.Is(err, ErrJ2KUnsupported) {
		t.Errorf("Decode: %v; want ErrJ2KUnsupported", err)
	}
	_, err = OpenFile(filepath.Join(testdata, "libvips/Bretagne2_4.j2k"), "")
	if !errors.Is(err, ErrJ2KUnsupported) {
		t.Errorf("OpenFile: %v; want ErrJ2KUnsupported", err)
	}
	// Truncated headers are errors, not panics.
	for n := range 60 {
		_, _ = inspectJ2K(readTestFile(t, "libvips/world.jp2")[:n])
	}
}
