package encode

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

func TestHandleRegion(t *testing.T) {
	for _, name := range []string{"libvips/sample.jpg", "libvips/sample.tif", "libvips/world.jp2", "large_image/rgba_geotiff.tiff"} {
		whole := decodeFile(t, name, "")
		h, err := OpenFile(filepath.Join(testdata, name), "")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if h.Width() != whole.Width || h.Height() != whole.Height || h.Bands() != whole.Bands || h.Format() != whole.Format {
			t.Errorf("%s: header %dx%d %d %s", name, h.Width(), h.Height(), h.Bands(), h.Format().DType())
		}
		// Inside, straddling the right/bottom edges, and fully outside.
		boxes := [][4]int{{10, 20, 64, 50}, {whole.Width - 30, whole.Height - 40, 256, 256}, {-5, -5, 20, 20}, {whole.Width, 0, 8, 8}}
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				b := boxes[i%len(boxes)]
				got, err := h.Region(b[0], b[1], b[2], b[3])
				if err != nil {
					t.Errorf("%s %v: %v", name, b, err)
					return
				}
				want := Pad(NewImage(0, 0, whole.Bands, whole.Format), b[2], b[3], nil)
				if c := Crop(whole, b[0], b[1], b[2], b[3]); c.Width > 0 {
					// Paste the inside part where it belongs.
					ps := c.PixelSize()
					dx, dy := max(-b[0], 0), max(-b[1], 0)
					for r := range c.Height {
						copy(want.Pix[(dy+r)*want.Stride()+dx*ps:], c.Pix[r*c.Stride():(r+1)*c.Stride()])
					}
				}
				if got.Width != b[2] || got.Height != b[3] || !bytes.Equal(got.Pix, want.Pix) {
					t.Errorf("%s %v: region differs from Decode", name, b)
				}
			})
		}
		wg.Wait()
		if got := h.Field("vips-loader"); got == "" {
			t.Errorf("%s: no vips-loader field", name)
		}
		if !slices.Contains(h.Fields(), "width") {
			t.Errorf("%s: fields %v", name, h.Fields())
		}
		if h.Field("no-such-field") != "" {
			t.Error("absent field not empty")
		}
		h.Close()
		if _, err := h.Region(0, 0, 1, 1); err == nil {
			t.Error("read after Close succeeded")
		}
		h.Close()
	}
	if _, err := OpenFile(filepath.Join(testdata, "histolab/broken.svs"), ""); err == nil {
		t.Error("broken.svs opened")
	}
	if _, err := OpenFile(filepath.Join(testdata, "no/such/file.tif"), ""); err == nil {
		t.Error("missing file opened")
	}
}

func TestOpenSlideHandle(t *testing.T) {
	path := filepath.Join(testdata, "libvips/CMU-1-Small-Region.svs")
	h, err := OpenFileWith("openslideload", path, "level=0")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if h.Width() != 2220 || h.Height() != 2967 || h.Bands() != 4 {
		t.Errorf("slide: %dx%d %d bands", h.Width(), h.Height(), h.Bands())
	}
	for k, want := range map[string]string{"openslide.mpp-x": "0.499", "openslide.level-count": "1", "slide-associated-images": "label, macro, thumbnail"} {
		if got := h.Field(k); got != want {
			t.Errorf("%s = %q; want %q", k, got, want)
		}
	}
	// libvips 8.14.1 crashes reading associated images: refused, and
	// read through OpenSlide instead.
	if _, err := OpenFileWith("openslideload", path, "associated=label"); err == nil {
		t.Error("associated= accepted")
	}
	lab, err := ReadOpenSlideAssociated(path, "label")
	if err != nil {
		t.Fatal(err)
	}
	if lab.Width != 387 || lab.Height != 463 || lab.Bands != 4 || lab.Pix[3] != 255 {
		t.Errorf("label %dx%d %d bands", lab.Width, lab.Height, lab.Bands)
	}
	if _, err := ReadOpenSlideAssociated(path, "nope"); err == nil {
		t.Error("missing associated image read")
	}
	if _, err := ReadOpenSlideAssociated(filepath.Join(testdata, "libvips/sample.jpg"), "label"); err == nil {
		t.Error("associated image of a JPEG read")
	}
	if _, err := OpenFileWith("openslideload", filepath.Join(testdata, "libvips/sample.jpg"), ""); err == nil {
		t.Error("openslide claimed a JPEG")
	}
	if _, err := OpenFileWith("openslideload", path, "level=7"); err == nil {
		t.Error("level 7 opened")
	}
}

// aperioTile returns the JPEGTables and the first tile of the first IFD of
// a little-endian classic TIFF.
func aperioTile(t *testing.T, data []byte) (tables, tile []byte) {
	t.Helper()
	le := binary.LittleEndian
	if string(data[:4]) != "II*\x00" {
		t.Fatal("not a little-endian TIFF")
	}
	ifd := le.Uint32(data[4:])
	n := int(le.Uint16(data[ifd:]))
	var off, cnt uint32
	for i := range n {
		e := data[int(ifd)+2+12*i:]
		tag, count, val := le.Uint16(e), le.Uint32(e[4:]), le.Uint32(e[8:])
		switch tag {
		case 324: // TileOffsets (LONG array)
			off = le.Uint32(data[val:])
		case 325: // TileByteCounts
			cnt = le.Uint32(data[val:])
		case 347: // JPEGTables (UNDEFINED)
			tables = data[val : val+count]
		}
	}
	return tables, data[off : off+cnt]
}

func TestDecodeAperioRGBJPEG(t *testing.T) {
	path := filepath.Join(testdata, "libvips/CMU-1-Small-Region.svs")
	tables, tile := aperioTile(t, readTestFile(t, "libvips/CMU-1-Small-Region.svs"))
	adobe := []byte{0xFF, 0xEE, 0, 14, 'A', 'd', 'o', 'b', 'e', 0, 100, 0, 0, 0, 0, 0} // transform 0
	splice := func(marker []byte) []byte {
		var b []byte
		b = append(b, 0xFF, 0xD8)
		b = append(b, marker...)
		b = append(b, tables[2:len(tables)-2]...) // without SOI and EOI
		return append(b, tile[2:]...)             // without SOI
	}
	h, err := OpenFileWith("openslideload", path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ref, err := h.Region(0, 0, 240, 240)
	if err != nil {
		t.Fatal(err)
	}
	img, err := Decode(splice(adobe), "")
	if err != nil {
		t.Fatal(err)
	}
	if img.Width != 240 || img.Height != 240 || img.Bands != 3 {
		t.Fatalf("tile %dx%d %d bands", img.Width, img.Height, img.Bands)
	}
	if mean, _ := diff(t, img, ref, 3); mean > 1 {
		t.Errorf("RGB-coded tile differs from OpenSlide by %.2f", mean)
	}
	// Without the marker libjpeg assumes YCbCr: the colours must be off,
	// which shows the marker is what makes the difference.
	wrong, err := Decode(splice(nil), "")
	if err != nil {
		t.Fatal(err)
	}
	if mean, _ := diff(t, wrong, ref, 3); mean < 10 {
		t.Errorf("tile without Adobe marker is close to OpenSlide (%.2f)", mean)
	}
}
