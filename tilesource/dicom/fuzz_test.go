package dicom

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/tileserver/tileserver/tilesource"
)

// exercise parses data as a DICOM file, builds a source and reads up to 64
// tiles, decoding the frames whose decoders are pure Go (uncompressed,
// RLE, JPEG-LS); libvips' C decoders are not under test here.
func exercise(t *testing.T, data []byte) {
	r := bytes.NewReader(data)
	in, err := openInstance(r, int64(len(data)))
	if err != nil {
		if err.Error() == "" {
			t.Fatal("empty error")
		}
		return
	}
	s, err := NewSource("fuzz.dcm", []*Instance{in})
	if err != nil {
		var te *tilesource.Error
		if !errors.As(err, &te) {
			t.Fatalf("open error of the wrong type: %v", err)
		}
		return
	}
	_ = s.InternalMetadata()
	_ = s.MemoryEstimate()
	_ = s.AssociatedNames()
	info := s.Info()
	n := 0
	for z := range info.Levels {
		if !info.Stored[z] {
			continue
		}
		cols, rows := info.TileCount(z)
		for y := 0; y < rows && n < 64; y++ {
			for x := 0; x < cols && n < 64; x++ {
				n++
				for _, p := range s.levels[z] {
					i, ok := p.frameOf(0, 0, x, y)
					if !ok {
						continue
					}
					b, ts, err := p.in.frames.ReadFrame(t.Context(), i)
					if err != nil || isJPEG(ts) || !supportedTS(ts) || ts[len(ts)-2:] == "90" || ts[len(ts)-2:] == "91" || len(ts) > 22 {
						continue
					}
					p.in.decodeFrame(b, ts)
				}
			}
		}
	}
	ParseJSON(data)
}

func FuzzParse(f *testing.F) {
	f.Add(append(make([]byte, 128), "DICM"...))
	f.Fuzz(func(t *testing.T, data []byte) {
		tm := time.AfterFunc(10*time.Second, func() { panic("input took over 10s") })
		defer tm.Stop()
		exercise(t, data)
	})
}

// FuzzJPEGLS feeds the JPEG-LS decoder; the seeds are the frames of the
// test files.
func FuzzJPEGLS(f *testing.F) {
	for _, p := range []string{td("highdicom/sm_image_jpegls.dcm"), "testdata/jls_line.dcm", "testdata/jls_none.dcm", "testdata/jls_near2.dcm", "testdata/jls_gray16.dcm"} {
		b := readFile(f, p)
		in, err := openInstance(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			f.Fatal(err)
		}
		fr, _, err := in.frames.ReadFrame(f.Context(), 0)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(fr)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := decodeJPEGLS(data, 1<<20)
		if err == nil && len(img.Pix) != img.Width*img.Height*img.PixelSize() {
			t.Fatal("bad image size")
		}
	})
}
