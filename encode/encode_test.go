package encode

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"
)

func TestMIME(t *testing.T) {
	for enc, want := range map[string]string{
		"JPEG": "image/jpeg", "JFIF": "image/jpeg", "PNG": "image/png",
		"TIFF": "image/tiff", "WEBP": "image/webp",
	} {
		got, err := MIME(enc)
		if err != nil || got != want {
			t.Errorf("MIME(%q) = %q, %v; want %q", enc, got, err, want)
		}
	}
	for _, enc := range []string{"jpeg", "Png", "", "BOGUS"} {
		_, err := MIME(enc)
		want := `Invalid encoding "` + enc + `"`
		if err == nil || err.Error() != want {
			t.Errorf("MIME(%q) error = %v; want %s", enc, err, want)
		}
	}
	_, err := Encode(NewImage(4, 4, 3, Uint8), Options{Encoding: "jpg"})
	if err == nil || err.Error() != `Invalid encoding "jpg"` {
		t.Errorf("Encode with jpg: %v", err)
	}
}

func TestDecodeFormats(t *testing.T) {
	cases := []struct {
		file           string
		w, h, bands    int
		format         Format
		meanLo, meanHi float64 // plausible mean of band 0, to catch garbage
	}{
		{"libvips/sample.jpg", 290, 442, 3, Uint8, 20, 235},
		{"libvips/sample.tif", 290, 442, 3, Uint16, 20 * 257, 235 * 257},
		{"libvips/world.jp2", 800, 400, 3, Uint8, 10, 245},
		{"libvips/issue412.jp2", 256, 100, 3, Uint8, 1, 254},

		{"libvips/multi-channel-z-series.ome.tif", 439, 167, 1, Int8, -127, 127},
		{"large_image/rgba_geotiff.tiff", 600, 600, 4, Uint8, 0, 255},
	}
	for _, c := range cases {
		img := decodeFile(t, c.file, "")
		if img.Width != c.w || img.Height != c.h || img.Bands != c.bands || img.Format != c.format {
			t.Errorf("%s: %dx%d %d bands %s; want %dx%d %d %s", c.file, img.Width, img.Height, img.Bands,
				img.Format.DType(), c.w, c.h, c.bands, c.format.DType())
			continue
		}
		var sum float64
		for y := 0; y < img.Height; y += 7 {
			for x := 0; x < img.Width; x += 7 {
				sum += sample(img, x, y, 0)
			}
		}
		n := float64(((img.Height + 6) / 7) * ((img.Width + 6) / 7))
		if m := sum / n; m < c.meanLo || m > c.meanHi {
			t.Errorf("%s: band 0 mean %.1f outside [%v, %v]", c.file, m, c.meanLo, c.meanHi)
		}
	}
}

func TestDecodeOptionsAndErrors(t *testing.T) {
	// A pyramid page of a Zstd BigTIFF, picked by loader option.
	img := decodeFile(t, "large_image/yb10kx5k.zstd.tiff", "page=4")
	if img.Width != 625 || img.Height != 312 {
		t.Errorf("yb10kx5k page 4 is %dx%d; want 625x312", img.Width, img.Height)
	}
	for _, bad := range [][]byte{nil, []byte("not an image at all"), readTestFile(t, "histolab/broken.svs")} {
		if _, err := Decode(bad, ""); err == nil {
			t.Errorf("Decode(%q…) succeeded", bad[:min(len(bad), 10)])
		}
	}
	jpg := readTestFile(t, "libvips/sample.jpg")
	if _, err := Decode(jpg[:len(jpg)/2], "fail_on=truncated"); err == nil {
		t.Error("truncated JPEG with fail_on=truncated decoded without error")
	}
	if _, err := Decode(jpg, "nosuchoption=3"); err == nil {
		t.Error("unknown loader option accepted")
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	src := decodeFile(t, "libvips/sample.jpg", "")
	rgba := addAlpha(src)
	cases := []struct {
		name      string
		img       *Image
		opt       Options
		bands     int
		mean, max float64
	}{
		{"jpeg444", src, Options{Encoding: "JPEG"}, 3, 1.5, 40},
		{"jpeg420", src, Options{Encoding: "JPEG", JPEGSubsampling: 2, JPEGQuality: 80}, 3, 4, 120},
		{"jfif", src, Options{Encoding: "JFIF"}, 3, 1.5, 40},
		{"jpeg-rgba", rgba, Options{Encoding: "JPEG"}, 3, 1.5, 40},
		{"png", src, Options{Encoding: "PNG"}, 3, 0, 0},
		{"png-rgba", rgba, Options{Encoding: "PNG"}, 4, 0, 0},
		{"webp", src, Options{Encoding: "WEBP"}, 3, 6, 160},
		{"webp-rgba", rgba, Options{Encoding: "WEBP"}, 4, 6, 160},
		{"tiff", src, Options{Encoding: "TIFF"}, 3, 0, 0},
		{"tiff-lzw", src, Options{Encoding: "TIFF", TIFFCompression: "lzw"}, 3, 0, 0},
		{"tiff-deflate", rgba, Options{Encoding: "TIFF", TIFFCompression: "tiff_adobe_deflate"}, 4, 0, 0},
		{"tiff-jpeg", src, Options{Encoding: "TIFF", TIFFCompression: "jpeg"}, 3, 5, 160},
		{"tiff-packbits", src, Options{Encoding: "TIFF", TIFFCompression: "packbits"}, 3, 0, 0},
		{"tiff-zstd", rgba, Options{Encoding: "TIFF", TIFFCompression: "zstd"}, 4, 0, 0},
		{"tiled-as-plain-tiff", src, Options{Encoding: "TILED"}, 3, 0, 0},
	}
	for _, c := range cases {
		b, err := Encode(c.img, c.opt)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		got, err := Decode(b, "")
		if err != nil {
			t.Errorf("%s: decode back: %v", c.name, err)
			continue
		}
		if got.Bands != c.bands || got.Format != Uint8 {
			t.Errorf("%s: decoded %d bands %s; want %d uint8", c.name, got.Bands, got.Format.DType(), c.bands)
			continue
		}
		mean, maxd := diff(t, got, c.img, c.bands)
		if mean > c.mean || maxd > c.max {
			t.Errorf("%s: mean diff %.2f max %.0f; want ≤ %.1f, ≤ %.0f", c.name, mean, maxd, c.mean, c.max)
		}
	}
}

func addAlpha(img *Image) *Image {
	out := NewImage(img.Width, img.Height, 4, Uint8)
	for i := range img.Width * img.Height {
		copy(out.Pix[4*i:], img.Pix[3*i:3*i+3])
		out.Pix[4*i+3] = uint8(i)
	}
	return out
}

// jpegSampling returns the luma sampling factors byte of a baseline JPEG.
func jpegSampling(t *testing.T, b []byte) byte {
	t.Helper()
	i := bytes.Index(b, []byte{0xFF, 0xC0})
	if i < 0 || len(b) < i+12 {
		t.Fatal("no SOF0 marker")
	}
	return b[i+11]
}

func TestEncodeJPEGDetails(t *testing.T) {
	src := decodeFile(t, "libvips/sample.jpg", "")
	// large_image passes jpegSubsampling to Pillow: 0 = 4:4:4, 1 = 4:2:2
	// (luma 2×1), 2 = 4:2:0 (luma 2×2).
	for sub, want := range map[int]byte{-1: 0x11, 0: 0x11, 1: 0x21, 2: 0x22} {
		b, err := Encode(src, Options{Encoding: "JPEG", JPEGSubsampling: sub})
		if err != nil {
			t.Fatal(err)
		}
		if got := jpegSampling(t, b); got != want {
			t.Errorf("subsampling %d: luma factors %#x; want %#x", sub, got, want)
		}
		if !bytes.HasPrefix(b, []byte("\xFF\xD8\xFF\xE0\x00\x10JFIF\x00")) {
			t.Errorf("subsampling %d: no JFIF header: % x", sub, b[:12])
		}
	}
	lo, _ := Encode(src, Options{Encoding: "JPEG", JPEGQuality: 10})
	hi, _ := Encode(src, Options{Encoding: "JPEG", JPEGQuality: 100})
	if len(lo) >= len(hi)/2 {
		t.Errorf("quality 10 gives %d bytes, quality 100 %d", len(lo), len(hi))
	}
	// Grey plus alpha encodes as grey.
	la := NewImage(8, 8, 2, Uint8)
	for i := range 64 {
		la.Pix[2*i], la.Pix[2*i+1] = 200, 10
	}
	b, err := Encode(la, Options{Encoding: "JPEG"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b, "")
	if err != nil || got.Bands != 1 || math.Abs(sample(got, 3, 3, 0)-200) > 2 {
		t.Errorf("LA as JPEG: %+v %v", got, err)
	}
}

func TestEncodeEmptyAndInvalid(t *testing.T) {
	for _, img := range []*Image{nil, NewImage(0, 10, 3, Uint8), NewImage(10, 0, 1, Uint16)} {
		for _, enc := range []string{"JPEG", "PNG", "WEBP", "TIFF", "JFIF"} {
			b, err := Encode(img, Options{Encoding: enc})
			if err != nil || b == nil || len(b) != 0 {
				t.Errorf("empty %s: %d bytes, %v", enc, len(b), err)
			}
		}
	}
	bad := &Image{Width: 10, Height: 10, Bands: 3, Pix: make([]byte, 20)}
	if _, err := Encode(bad, Options{Encoding: "PNG"}); err == nil {
		t.Error("short Pix accepted")
	}
	if _, err := Encode(NewImage(2, 2, 3, Uint8), Options{Encoding: "TIFF", TIFFCompression: "bogus"}); err == nil {
		t.Error("unknown TIFF compression accepted")
	}
}

func TestEncodeSixteenBit(t *testing.T) {
	// Non-uint8 images are encoded through To8Bit: PNG of the 16-bit sample
	// TIFF must equal the high bytes.
	img := decodeFile(t, "libvips/sample.tif", "")
	b, err := Encode(img, Options{Encoding: "PNG"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b, "")
	if err != nil {
		t.Fatal(err)
	}
	if got.Format != Uint8 {
		t.Fatalf("PNG decoded as %s", got.Format.DType())
	}
	for _, p := range [][2]int{{0, 0}, {100, 200}, {289, 441}} {
		for c := range 3 {
			want := float64(uint16(sample(img, p[0], p[1], c)) >> 8)
			if g := sample(got, p[0], p[1], c); g != want {
				t.Errorf("(%d,%d,%d) = %v; want %v", p[0], p[1], c, g, want)
			}
		}
	}
}

func TestTo8Bit(t *testing.T) {
	ne := binary.NativeEndian
	mk := func(f Format, put func(b []byte, i int)) *Image {
		img := NewImage(4, 1, 1, f)
		for i := range 4 {
			put(img.Pix[i*f.Size():], i)
		}
		return img
	}
	cases := []struct {
		img  *Image
		want []uint8
	}{
		{mk(Uint16, func(b []byte, i int) { ne.PutUint16(b, []uint16{0, 255, 256, 65535}[i]) }), []uint8{0, 0, 1, 255}},
		{mk(Int16, func(b []byte, i int) { ne.PutUint16(b, uint16([]int16{-32768, -1, 0, 32767}[i])) }), []uint8{0, 127, 128, 255}},
		{mk(Uint32, func(b []byte, i int) { ne.PutUint32(b, []uint32{0, 1 << 24, 1<<24 - 1, math.MaxUint32}[i]) }), []uint8{0, 1, 0, 255}},
		{mk(Int32, func(b []byte, i int) { ne.PutUint32(b, uint32([]int32{math.MinInt32, -1, 0, math.MaxInt32}[i])) }), []uint8{0, 127, 128, 255}},
		{mk(Int8, func(b []byte, i int) { b[0] = uint8([]int8{-128, -1, 0, 127}[i]) }), []uint8{0, 127, 128, 255}},
		{mk(Float32, func(b []byte, i int) {
			ne.PutUint32(b, math.Float32bits([]float32{float32(math.NaN()), -5, 12.9, 300}[i]))
		}), []uint8{0, 0, 12, 255}},
		{mk(Float64, func(b []byte, i int) { ne.PutUint64(b, math.Float64bits([]float64{0.5, 254.99, 255, math.Inf(1)}[i])) }), []uint8{0, 254, 255, 255}},
	}
	for _, c := range cases {
		got := To8Bit(c.img)
		if got.Format != Uint8 || got.Bands != 1 || !bytes.Equal(got.Pix, c.want) {
			t.Errorf("%s: got %v %s; want %v", c.img.Format.DType(), got.Pix, got.Format.DType(), c.want)
		}
	}
	// Five bands keep the first three.
	five := NewImage(2, 1, 5, Uint8)
	copy(five.Pix, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	if got := To8Bit(five); got.Bands != 3 || !bytes.Equal(got.Pix, []byte{1, 2, 3, 6, 7, 8}) {
		t.Errorf("5 bands: %v", got.Pix)
	}
	u8 := NewImage(2, 2, 3, Uint8)
	if To8Bit(u8) != u8 {
		t.Error("uint8 image copied")
	}
}

func TestCropPad(t *testing.T) {
	img := NewImage(3, 2, 2, Uint16)
	for i := range 12 {
		binary.NativeEndian.PutUint16(img.Pix[2*i:], uint16(i+1))
	}
	c := Crop(img, 1, 1, 5, 5)
	if c.Width != 2 || c.Height != 1 || sample(c, 0, 0, 0) != 9 || sample(c, 1, 0, 1) != 12 {
		t.Errorf("Crop: %dx%d %v", c.Width, c.Height, c.Pix)
	}
	if e := Crop(img, 5, 0, 2, 2); e.Width != 0 || e.Height != 0 {
		t.Errorf("Crop outside: %dx%d", e.Width, e.Height)
	}
	p := Pad(img, 4, 3, []float64{7, 70000})
	if p.Width != 4 || p.Height != 3 {
		t.Fatalf("Pad size %dx%d", p.Width, p.Height)
	}
	for _, k := range []struct {
		x, y, b int
		want    float64
	}{{0, 0, 0, 1}, {2, 1, 1, 12}, {3, 0, 0, 7}, {3, 0, 1, 65535}, {0, 2, 0, 7}} {
		if g := sample(p, k.x, k.y, k.b); g != k.want {
			t.Errorf("Pad (%d,%d,%d) = %v; want %v", k.x, k.y, k.b, g, k.want)
		}
	}
	if z := Pad(img, 2, 1, nil); z.Width != 2 || sample(z, 1, 0, 1) != 4 {
		t.Errorf("Pad smaller: %v", z.Pix)
	}
}

func TestResize(t *testing.T) {
	src := decodeFile(t, "libvips/sample.jpg", "")
	for _, k := range []Kernel{Lanczos3, Cubic, Linear, Nearest} {
		for _, sz := range [][2]int{{145, 221}, {256, 256}, {1, 1}, {291, 443}, {73, 111}, {600, 900}, {97, 13}} {
			got, err := Resize(src, sz[0], sz[1], k)
			if err != nil {
				t.Fatalf("kernel %d %v: %v", k, sz, err)
			}
			if got.Width != sz[0] || got.Height != sz[1] || got.Bands != 3 || got.Format != Uint8 || got.check() != nil {
				t.Errorf("kernel %d %v: %dx%d %d %s", k, sz, got.Width, got.Height, got.Bands, got.Format.DType())
			}
		}
	}
	// Halving must look like a 2×2 box average of the original.
	half, err := Resize(src, 145, 221, Lanczos3)
	if err != nil {
		t.Fatal(err)
	}
	box := NewImage(145, 221, 3, Uint8)
	for y := range 221 {
		for x := range 145 {
			for c := range 3 {
				s := sample(src, 2*x, 2*y, c) + sample(src, 2*x+1, 2*y, c) + sample(src, 2*x, 2*y+1, c) + sample(src, 2*x+1, 2*y+1, c)
				box.Pix[(y*145+x)*3+c] = uint8(s/4 + 0.5)
			}
		}
	}
	if mean, _ := diff(t, half, box, 3); mean > 4 {
		t.Errorf("half size differs from box average by %.2f", mean)
	}
	// 16-bit stays 16-bit with values in the same range.
	tif := decodeFile(t, "libvips/sample.tif", "")
	r16, err := Resize(tif, 100, 150, Linear)
	if err != nil {
		t.Fatal(err)
	}
	if r16.Format != Uint16 || r16.Width != 100 || r16.Height != 150 {
		t.Fatalf("16-bit resize: %dx%d %s", r16.Width, r16.Height, r16.Format.DType())
	}
	c := sample(r16, 50, 75, 1)
	ref := sample(tif, 145, 221, 1)
	if math.Abs(c-ref) > 0.1*65535 {
		t.Errorf("16-bit centre %v vs original %v", c, ref)
	}
	if _, err := Resize(src, 0, 10, Linear); err == nil {
		t.Error("resize to width 0 accepted")
	}
}
