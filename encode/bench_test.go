package encode

import "testing"

func tile256(b testing.TB) *Image {
	img := decodeFile(b, "libvips/sample.jpg", "")
	return Crop(img, 0, 0, 256, 256)
}

func BenchmarkEncodeJPEG256(b *testing.B) {
	img := tile256(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(img, Options{Encoding: "JPEG"}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodePNG256(b *testing.B) {
	img := tile256(b)
	for b.Loop() {
		if _, err := Encode(img, Options{Encoding: "PNG"}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeJPEG256(b *testing.B) {
	data, err := Encode(tile256(b), Options{Encoding: "JPEG"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(data, ""); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeJPEG256Random(b *testing.B) {
	data, err := Encode(tile256(b), Options{Encoding: "JPEG"})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Decode(data, "access=random"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkResizeHalf512(b *testing.B) {
	img := Pad(tile256(b), 512, 512, nil)
	for b.Loop() {
		if _, err := Resize(img, 256, 256, Lanczos3); err != nil {
			b.Fatal(err)
		}
	}
}
