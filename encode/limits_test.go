package encode

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/tileserver/tileserver/tilesource/limits"
)

// withSIZ returns a copy of a JPEG 2000 file whose SIZ marker declares
// another image size (and tile size).
func withSIZ(t testing.TB, data []byte, w, h, tw, th uint32) []byte {
	t.Helper()
	out := bytes.Clone(data)
	i := bytes.Index(out, j2kSignature)
	if i < 0 {
		t.Fatal("no codestream")
	}
	siz := out[i+4:]
	be := binary.BigEndian
	be.PutUint32(siz[4:], w)
	be.PutUint32(siz[8:], h)
	be.PutUint32(siz[20:], tw)
	be.PutUint32(siz[24:], th)
	return out
}

// TestJ2KDeclaredSizes: a JPEG 2000 stream declaring an image or a tile
// over the limits is refused before libvips decodes it.
func TestJ2KDeclaredSizes(t *testing.T) {
	world := readTestFile(t, "libvips/world.jp2")
	for _, c := range []struct {
		w, h, tw, th uint32
	}{
		{1<<20 + 1, 100, 100, 100},       // side over MaxImageSide
		{100000, 100000, 100000, 100000}, // one tile of 30 GB
		{0, 100, 100, 100},
	} {
		_, err := Decode(withSIZ(t, world, c.w, c.h, c.tw, c.th), "")
		if !errors.Is(err, limits.ErrTooLarge) {
			t.Errorf("%dx%d tiles %dx%d: %v", c.w, c.h, c.tw, c.th, err)
		}
	}
	// The real file is within the limits and decodes.
	if _, err := Decode(world, ""); err != nil {
		t.Fatal(err)
	}
}

// TestDecodeChecksHeaderSize: Decode refuses an image whose header declares
// more than the decode limit, before allocating it.
func TestDecodeChecksHeaderSize(t *testing.T) {
	defer limits.Set(limits.Limits{})
	jpeg := readTestFile(t, "libvips/sample.jpg")
	img, err := Decode(jpeg, "")
	if err != nil {
		t.Fatal(err)
	}
	limits.Set(limits.Limits{MaxDecodedBytes: int64(len(img.Pix)) - 1})
	if _, err := Decode(jpeg, ""); !errors.Is(err, limits.ErrTooLarge) {
		t.Fatalf("a JPEG one byte over the limit: %v", err)
	}
}

// FuzzInspectJ2K: the JPEG 2000 header inspection never panics and never
// accepts a header whose declared sizes are over the limits.
func FuzzInspectJ2K(f *testing.F) {
	for _, rel := range []string{"libvips/world.jp2", "libvips/issue412.jp2", "libvips/Bretagne2_4.j2k"} {
		b := readTestFile(f, rel)
		f.Add(b[:min(len(b), 4096)])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := inspectJ2K(data)
		if err != nil {
			return
		}
		siz := data[l.codestream+4:]
		w, h := int64(binary.BigEndian.Uint32(siz[4:])), int64(binary.BigEndian.Uint32(siz[8:]))
		if limits.CheckSide("image", w, h) != nil {
			t.Fatalf("accepted a %dx%d image", w, h)
		}
	})
}
