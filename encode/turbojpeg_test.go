package encode

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/tileserver/tileserver/tilesource/limits"
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
		i += 2 + (int(jpg[i+2])<<8 | int(jpg[i+3]))
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
		// The read itself, not CheckJPEGHeader, which remembers headers
		// it accepted and would not use a handle after the first round.
		if _, _, _, err := jpegHeader(q[1]); err != nil {
			t.Fatalf("good header after a damaged one: %v", err)
		}
		if err := DecodeJPEGInto(q[2], 2, img, 0, 0); err != nil {
			t.Fatalf("good stream after a damaged one: %v", err)
		}
	}
}

// TestKnownHeadersKeepLibjpegVerdicts checks that remembering accepted
// headers never changes CheckJPEGHeader's answer: every one-byte change
// in and just after the header of real streams gets the verdict of
// libjpeg's own read, whether or not the header was seen before.
func TestKnownHeadersKeepLibjpegVerdicts(t *testing.T) {
	knownHeaders.mu.Lock()
	clear(knownHeaders.m)
	knownHeaders.mu.Unlock()
	q := quadrantJPEGs(t)
	good := [][]byte{q[0], q[1], readTestFile(t, "libvips/sample.jpg")}
	for si, b := range append(good, damageDQT(t, q[2])) {
		n := jpegHeaderLen(b)
		_, _, _, direct := jpegHeader(b)
		if si < len(good) {
			// The walk ends right after an SOS segment.
			sos := bytes.LastIndex(b[:max(n, 0)], []byte{0xFF, 0xDA})
			if direct != nil || n < 100 || sos < 0 || sos+2+(int(b[sos+2])<<8|int(b[sos+3])) != n {
				t.Fatalf("stream %d: header length %d (libjpeg: %v)", si, n, direct)
			}
		} else if n != 0 || direct == nil {
			// A DQT length that runs into the next segment: no plain walk.
			t.Fatalf("damaged stream: header length %d (libjpeg: %v)", n, direct)
		}
		if got := CheckJPEGHeader(b); (got == nil) != (direct == nil) {
			t.Fatalf("stream %d: CheckJPEGHeader %v, libjpeg %v", si, got, direct)
		}
		if remembered := n > 0 && knownHeaders.has(b[:n]); remembered != (direct == nil && n <= maxKnownHeaderBytes) {
			t.Fatalf("stream %d (%d header bytes): remembered = %v", si, n, remembered)
		}
		for p := range min(max(n, 700)+32, len(b), 2000) {
			for _, v := range []byte{b[p] ^ 0x01, b[p] ^ 0x80, 0xFF, 0x00} {
				m := append([]byte(nil), b...)
				m[p] = v
				_, _, _, want := jpegHeader(m)
				for range 2 { // unknown, then possibly remembered
					if got := CheckJPEGHeader(m); (got == nil) != (want == nil) {
						t.Fatalf("stream %d, byte %d = %#x: CheckJPEGHeader %v, libjpeg %v", si, p, v, got, want)
					}
				}
			}
		}
	}
	// The set stays bounded.
	for i := range maxKnownHeaders + 10 {
		knownHeaders.add([]byte(fmt.Sprint(i)))
	}
	knownHeaders.mu.RLock()
	size := len(knownHeaders.m)
	knownHeaders.mu.RUnlock()
	if size > maxKnownHeaders || !knownHeaders.has([]byte(fmt.Sprint(maxKnownHeaders+9))) {
		t.Fatalf("%d headers known", size)
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

// FuzzJPEGHeader: remembering accepted headers never changes
// CheckJPEGHeader's verdict from libjpeg's own read, the header walk stays
// inside the data, and streams of components in no colour space (the seed
// corpus holds large_image's grey-and-alpha TIFF tile) decode or fail
// without crashing, within the size limits.
func FuzzJPEGHeader(f *testing.F) {
	// A header may declare any size: decoding hundreds of megapixels of
	// noise per input would only slow the fuzzing down.
	limits.Set(limits.Limits{MaxDecodedBytes: 4 << 20})
	f.Cleanup(func() { limits.Set(limits.Limits{}) })
	q := quadrantJPEGs(f)
	f.Add(q[0])
	sample := readTestFile(f, "libvips/sample.jpg")
	f.Add(sample[:min(len(sample), 4096)])
	f.Fuzz(func(t *testing.T, data []byte) {
		if n := jpegHeaderLen(data); n < 0 || n > len(data) {
			t.Fatalf("header length %d of %d bytes", n, len(data))
		}
		_, _, _, want := jpegHeader(data)
		for range 2 { // unknown, then possibly remembered
			if got := CheckJPEGHeader(data); (got == nil) != (want == nil) {
				t.Fatalf("CheckJPEGHeader %v, libjpeg %v", got, want)
			}
		}
		img, ok, err := decodeJPEGComponents(data)
		if ok && err == nil && (img.Bands < 1 || len(img.Pix) != img.Width*img.Height*img.Bands) {
			t.Fatalf("decoded %d×%d×%d into %d bytes", img.Width, img.Height, img.Bands, len(img.Pix))
		}
	})
}
