package encode

import (
	"errors"
	"math"
	"testing"
)

// quadrantJPEGs cuts four 256² tiles out of a real photo and stores them as
// JPEG (Q80), as a slide writer would.
func quadrantJPEGs(t testing.TB) [4][]byte {
	img := decodeFile(t, "libvips/world.jp2", "")
	var out [4][]byte
	for i := range out {
		tile := Crop(img, (i%2)*256, (i/2)*128, 256, 256)
		b, err := Encode(tile, Options{Encoding: "JPEG", JPEGQuality: 80})
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

// maxDiff is the largest absolute sample difference of two 8-bit images.
func maxDiff(a, b *Image) int {
	m := 0
	for i := range a.Pix {
		d := int(a.Pix[i]) - int(b.Pix[i])
		m = max(m, d, -d)
	}
	return m
}

func TestDecodeJPEGIntoMatchesLibvipsShrink(t *testing.T) {
	for _, q := range quadrantJPEGs(t) {
		want, err := Decode(q, "shrink=2")
		if err != nil {
			t.Fatal(err)
		}
		got := NewImage(want.Width+12, want.Height+8, 3, Uint8)
		if err := DecodeJPEGInto(q, 2, got, 10, 6); err != nil {
			t.Fatal(err)
		}
		sub := Crop(got, 10, 6, want.Width, want.Height)
		// Both are libjpeg's scaled IDCT; only the upsampling of chroma may
		// differ by a level or two.
		if d := maxDiff(sub, want); d > 3 {
			t.Fatalf("scaled decode differs from libvips' shrink-on-load by %d levels", d)
		}
		if got.Pix[0] != 0 || got.Pix[len(got.Pix)-1] != 0 {
			t.Fatal("decode wrote outside its rectangle")
		}
	}
}

// damageDQT returns a copy of a JPEG stream whose first quantisation
// table segment claims 12 bytes, as in openslide-python's unreadable.svs:
// libjpeg stops in the middle of its header.
func damageDQT(t *testing.T, jpg []byte) []byte {
	t.Helper()
	for i := 2; i+3 < len(jpg); {
		if jpg[i] != 0xFF {
			break
		}
		if jpg[i+1] == 0xDB {
			bad := append([]byte(nil), jpg...)
			bad[i+2], bad[i+3] = 0, 12
			return bad
		}
		i += 2 + int(jpg[i+2])<<8 | int(jpg[i+3])
	}
	t.Fatal("no DQT segment")
	return nil
}

// A damaged stream fails, and the handle that read it does not go back
// to the pool: libjpeg leaves it mid-header, and each later read on it
// failed ("Bogus DQT index"), good streams included.
func TestTurboHandlesSurviveDamagedStreams(t *testing.T) {
	q := quadrantJPEGs(t)
	bad := damageDQT(t, q[0])
	img := NewImage(256, 256, 3, Uint8)
	for range 3 * cap(decompressors.free) {
		if err := CheckJPEGHeader(bad); err == nil {
			t.Fatal("damaged header accepted")
		}
		if err := DecodeJPEGInto(bad, 1, img, 0, 0); err == nil {
			t.Fatal("damaged stream decoded")
		}
		if err := CheckJPEGHeader(q[1]); err != nil {
			t.Fatalf("good header after a damaged one: %v", err)
		}
		if err := DecodeJPEGInto(q[2], 2, img, 0, 0); err != nil {
			t.Fatalf("good stream after a damaged one: %v", err)
		}
	}
}

func TestDecodeJPEGIntoRefusesWhatDoesNotFit(t *testing.T) {
	q := quadrantJPEGs(t)[0]
	small := NewImage(100, 100, 3, Uint8)
	if err := DecodeJPEGInto(q, 2, small, 0, 0); !errors.Is(err, ErrTurboUnsupported) {
		t.Fatalf("128² into 100²: err = %v, want ErrTurboUnsupported", err)
	}
	grey := NewImage(256, 256, 1, Uint8)
	if err := DecodeJPEGInto(q, 1, grey, 0, 0); !errors.Is(err, ErrTurboUnsupported) {
		t.Fatalf("colour into grey: err = %v, want ErrTurboUnsupported", err)
	}
	if err := DecodeJPEGInto([]byte("not a jpeg"), 2, small, 0, 0); err == nil {
		t.Fatal("garbage decoded")
	}
}

func TestEncodeJPEGTurboRoundTrip(t *testing.T) {
	src := tile256(t)
	for _, sub := range []int{0, 2} {
		b, err := EncodeJPEGTurbo(src, 95, sub)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Decode(b, "")
		if err != nil {
			t.Fatal(err)
		}
		if back.Width != 256 || back.Height != 256 || back.Bands != 3 {
			t.Fatalf("decoded %dx%dx%d", back.Width, back.Height, back.Bands)
		}
		var se float64
		for i := range src.Pix {
			d := float64(src.Pix[i]) - float64(back.Pix[i])
			se += d * d
		}
		psnr := 10 * math.Log10(255*255/(se/float64(len(src.Pix))))
		if psnr < 35 {
			t.Fatalf("subsampling %d: PSNR %.1f dB after a Q95 round trip", sub, psnr)
		}
	}
	if _, err := EncodeJPEGTurbo(NewImage(8, 8, 4, Uint8), 90, 0); !errors.Is(err, ErrTurboUnsupported) {
		t.Fatalf("RGBA: err = %v, want ErrTurboUnsupported", err)
	}
}

// The two ways to make a tile of a level the file does not store from its
// four stored children: each child decoded at half size, pasted, encoded
// at large_image's defaults (Q95, 4:4:4).
func BenchmarkSynthesisLibvips(b *testing.B) {
	q := quadrantJPEGs(b)
	b.ReportAllocs()
	for b.Loop() {
		out := NewImage(256, 256, 3, Uint8)
		for i, d := range q {
			small, err := Decode(d, "shrink=2")
			if err != nil {
				b.Fatal(err)
			}
			for r := 0; r < small.Height; r++ {
				copy(out.Pix[((i/2)*128+r)*out.Stride()+(i%2)*128*3:], small.Pix[r*small.Stride():(r+1)*small.Stride()])
			}
		}
		if _, err := Encode(out, Options{Encoding: "JPEG"}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSynthesisTurbo(b *testing.B) {
	q := quadrantJPEGs(b)
	b.ReportAllocs()
	for b.Loop() {
		out := NewImage(256, 256, 3, Uint8)
		for i, d := range q {
			if err := DecodeJPEGInto(d, 2, out, (i%2)*128, (i/2)*128); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := EncodeJPEGTurbo(out, DefaultJPEGQuality, 0); err != nil {
			b.Fatal(err)
		}
	}
}
