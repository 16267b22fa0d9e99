package encode

import (
	"bytes"
	"os"
	"testing"
)

func TestEmbedAndExtractICC(t *testing.T) {
	img := decodeFile(t, "libvips/sample.jpg", "")
	jpeg, err := Encode(img, Options{Encoding: "JPEG"})
	if err != nil {
		t.Fatal(err)
	}
	// A profile larger than one APP2 segment holds.
	profile := bytes.Repeat([]byte("icc-profile-bytes"), 9000)
	seg := ICCSegments(profile)
	out := EmbedICC(jpeg, seg)
	if len(out) != len(jpeg)+len(seg) || !bytes.Equal(ExtractICC(out), profile) {
		t.Fatalf("embedded %d bytes, extracted %d", len(out)-len(jpeg), len(ExtractICC(out)))
	}
	// JFIF's APP0 stays first, and pixels are untouched.
	if string(out[6:10]) != "JFIF" {
		t.Errorf("APP0 moved: % x", out[:12])
	}
	a, err := Decode(out, "")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Decode(jpeg, "")
	if !bytes.Equal(a.Pix, b.Pix) {
		t.Error("embedding a profile changed the decoded pixels")
	}
	if again := EmbedICC(out, seg); !bytes.Equal(again, out) {
		t.Error("a stream with a profile got a second one")
	}
}

func TestICCToSRGB(t *testing.T) {
	profile, err := os.ReadFile("/usr/share/color/icc/ghostscript/a98.icc")
	if err != nil {
		t.Skip("Adobe RGB profile missing:", err)
	}
	// A saturated Adobe RGB colour maps to a different sRGB colour; grey
	// stays (nearly) grey.
	img := &Image{Width: 2, Height: 1, Bands: 3, Format: Uint8, Pix: []byte{40, 160, 60, 128, 128, 128}}
	out, err := ICCToSRGB(img, profile, "")
	if err != nil {
		t.Fatal(err)
	}
	diff := 0
	for i := range 3 {
		diff = max(diff, abs(int(out.Pix[i])-int(img.Pix[i])))
	}
	if diff < 10 {
		t.Errorf("Adobe RGB %v became sRGB %v", img.Pix[:3], out.Pix[:3])
	}
	for _, v := range out.Pix[3:] {
		if v < 125 || v > 131 {
			t.Errorf("grey became %v", out.Pix[3:])
		}
	}
	if _, err := ICCToSRGB(&Image{Width: 1, Height: 1, Bands: 1, Format: Float32, Pix: make([]byte, 4)}, profile, ""); err == nil {
		t.Error("float samples were accepted")
	}
}

func abs(v int) int { return max(v, -v) }
