package encode

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// TestJPEGBytesAsPillow: the same pixels give the same JPEG bytes as
// Pillow's encoder (large_image's), quality and subsampling as large_image
// passes them. The references are Pillow 9.4's output for a 64×64 crop of
// libvips/sample.jpg and its grey conversion (testdata/pillow-64*): with
// TurboJPEG's default fast DCT, a tenth of the samples decode up to 14
// levels apart.
func TestJPEGBytesAsPillow(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, c := range []struct {
		png, jpeg            string
		quality, subsampling int
	}{
		{"pillow-64.png", "pillow-64-q95-444.jpg", 95, 0},
		{"pillow-64.png", "pillow-64-q80-420.jpg", 80, 2},
		{"pillow-64-grey.png", "pillow-64-grey-q95.jpg", 95, 0},
	} {
		img, err := Decode(read(c.png), "")
		if err != nil {
			t.Fatal(err)
		}
		got, err := Encode(img, Options{Encoding: "JPEG", JPEGQuality: c.quality, JPEGSubsampling: c.subsampling})
		if err != nil {
			t.Fatal(err)
		}
		if want := read(c.jpeg); !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes differ from Pillow's %d", c.jpeg, len(got), len(want))
		}
	}
}

// TestWebPBytesAsPillow: WebP at Pillow's defaults (large_image passes no
// options), with the metadata libvips adds stripped, is Pillow's file byte
// for byte, with and without alpha (testdata/pillow-64*.webp, Pillow 9.4).
func TestWebPBytesAsPillow(t *testing.T) {
	for _, name := range []string{"pillow-64", "pillow-64-rgba"} {
		src, err := os.ReadFile(filepath.Join("testdata", name+".png"))
		if err != nil {
			t.Fatal(err)
		}
		img, err := Decode(src, "")
		if err != nil {
			t.Fatal(err)
		}
		got, err := Encode(img, Options{Encoding: "WEBP"})
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join("testdata", name+".webp"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes differ from Pillow's %d (% x…)", name, len(got), len(want), got[:min(40, len(got))])
		}
	}
	// A stream that is not RIFF chunks is left alone.
	for _, b := range [][]byte{nil, []byte("RIFF\x04\x00\x00\x00WEBPVP8X\xff"), []byte("not webp")} {
		if got := stripWebPMetadata(b); !bytes.Equal(got, b) {
			t.Errorf("stripWebPMetadata(%q) = %q", b, got)
		}
	}
}

// FuzzStripWebPMetadata: any bytes give no panic, and a result that
// differs from the input is a RIFF WebP whose size field matches.
func FuzzStripWebPMetadata(f *testing.F) {
	for _, name := range []string{"pillow-64.webp", "pillow-64-rgba.webp"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("RIFF\x0e\x00\x00\x00WEBPVP8X\x02\x00\x00\x00\x08\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out := stripWebPMetadata(b)
		if bytes.Equal(out, b) {
			return
		}
		if len(out) < 12 || string(out[:4]) != "RIFF" || int(binary.LittleEndian.Uint32(out[4:8])) != len(out)-8 {
			t.Fatalf("stripped stream % x", out[:min(16, len(out))])
		}
	})
}
