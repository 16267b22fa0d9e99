package tiff

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilesource"
)

// exercise parses data and builds a source from it, then reads the raw
// bytes of every level's first tile and builds what would be decoded,
// without calling libvips (whose C decoders are not under test here).
func exercise(data []byte) error {
	r := bytes.NewReader(data)
	if _, err := Parse(r, int64(len(data))); err != nil {
		return err
	}
	s, err := newSource(r, int64(len(data)), "fuzz.tif")
	if err != nil {
		var te *tilesource.Error
		if !errors.Is(err, tilesource.ErrNotRecognized) && !errors.As(err, &te) {
			return errors.New("open error of the wrong type: " + err.Error())
		}
		return nil
	}
	_ = s.Info().FrameCount()
	_ = s.InternalMetadata()
	_ = s.MemoryEstimate()
	for _, levels := range s.frame {
		for _, d := range levels {
			if d == nil {
				continue
			}
			chunks, err := s.readChunks(d, 0, 0)
			if err != nil {
				continue
			}
			if d.passthrough {
				encode.SpliceJPEG(d.jpegTables, chunks[0], d.photometric == photoRGB)
				continue
			}
			switch {
			case subsampledYCbCr(d) && int64(d.tw)*int64(d.th) <= 1<<22:
				decodeYCbCr(d, chunks[0], d.tw, d.th)
			case d.compression == compOJPEG && hasOJPEGTables(d):
				buildOJPEG(d, s.r, s.tf.Size, chunks[0], d.tw, d.th)
			default:
				buildMiniTIFF(d, s.tf.ByteOrder, d.tw, d.th, d.tw, d.th, d.tiled, chunks)
			}
		}
	}
	return nil
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("II*\x00\x08\x00\x00\x00"))
	f.Add([]byte("MM\x00+\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00\x10"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tm := time.AfterFunc(10*time.Second, func() { panic("input took over 10s") })
		defer tm.Stop()
		if err := exercise(data); err != nil && err.Error() == "" {
			t.Fatal("empty error")
		}
	})
}

// TestTruncatedFiles opens every prefix length class of real files: no
// panic, and either a source or an error.
func TestTruncatedFiles(t *testing.T) {
	for _, f := range []string{cmu, "openslide-python/boxes.tiff", "libvips/multi-channel-z-series.ome.tif", "large_image/yb10kx5k.zstd.tiff"} {
		b, err := os.ReadFile(tdPath(f))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{0, 1, 7, 8, 15, 16, 100, 1000, len(b) / 3, len(b) / 2, len(b) - 100, len(b) - 1} {
			if n < 0 || n > len(b) {
				continue
			}
			exercise(b[:n])
		}
	}
}

// le builds little-endian classic TIFF bytes from directory entries.
type rawEntry struct {
	tag, typ uint16
	count    uint32
	value    uint32
}

func buildTIFF(ifdOff uint32, entries []rawEntry, next uint32, size int) []byte {
	b := make([]byte, max(size, int(ifdOff)+2+12*len(entries)+4))
	copy(b, "II*\x00")
	le := binary.LittleEndian
	le.PutUint32(b[4:], ifdOff)
	le.PutUint16(b[ifdOff:], uint16(len(entries)))
	p := ifdOff + 2
	for _, e := range entries {
		le.PutUint16(b[p:], e.tag)
		le.PutUint16(b[p+2:], e.typ)
		le.PutUint32(b[p+4:], e.count)
		le.PutUint32(b[p+8:], e.value)
		p += 12
	}
	le.PutUint32(b[p:], next)
	return b
}

func TestHostileHeaders(t *testing.T) {
	base := []rawEntry{
		{tagImageWidth, typeLong, 1, 64}, {tagImageLength, typeLong, 1, 64},
		{tagTileWidth, typeShort, 1, 64}, {tagTileLength, typeShort, 1, 64},
		{tagTileOffsets, typeLong, 1, 8}, {tagTileByteCounts, typeLong, 1, 4},
	}
	// An IFD chain that points back to itself is read once.
	loop := buildTIFF(8, base, 8, 0)
	f, err := Parse(bytes.NewReader(loop), int64(len(loop)))
	if err != nil || len(f.IFDs) != 1 {
		t.Fatalf("loop: %v %v", f, err)
	}
	// A count of 2^32-1 LONGs is refused without allocating.
	huge := append([]rawEntry{}, base...)
	huge[4] = rawEntry{tagTileOffsets, typeLong, 0xFFFFFFFF, 8}
	b := buildTIFF(8, huge, 0, 0)
	f, err = Parse(bytes.NewReader(b), int64(len(b)))
	if err != nil || f.IFDs[0].Entries[tagTileOffsets] != nil {
		t.Fatalf("huge count: %v", err)
	}
	if _, err := newSource(bytes.NewReader(b), int64(len(b)), "huge.tif"); err == nil {
		t.Fatal("huge count: opened without tile offsets")
	}
	// Dimensions beyond the cap are refused with a public message.
	big := append([]rawEntry{}, base...)
	big[0] = rawEntry{tagImageWidth, typeLong, 1, 0xFFFFFFFF}
	b = buildTIFF(8, big, 0, 0)
	_, err = newSource(bytes.NewReader(b), int64(len(b)), "big.tif")
	var te *tilesource.Error
	if !errors.As(err, &te) || te.Message != "big.tif: invalid image width 4294967295" {
		t.Fatalf("big: %v", err)
	}
	// A tile offset beyond the end of the file is a read error, not a panic.
	far := append([]rawEntry{}, base...)
	far[4] = rawEntry{tagTileOffsets, typeLong, 1, 1 << 30}
	b = buildTIFF(8, far, 0, 0)
	s, err := newSource(bytes.NewReader(b), int64(len(b)), "far.tif")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadTile(t.Context(), 0, 0, 0, 0); !errors.As(err, &te) || te.Message != "Internal I/O failure: cannot read tile 0, 0" {
		t.Fatalf("far: %v", err)
	}
	// Directory offsets past the end, and the next-IFD pointer past the end.
	b = buildTIFF(8, base, 1<<31, 0)
	if f, err := Parse(bytes.NewReader(b), int64(len(b))); err != nil || len(f.IFDs) != 1 {
		t.Fatalf("far next: %v", err)
	}
	b = []byte("II*\x00\xff\xff\xff\x7f")
	if _, err := Parse(bytes.NewReader(b), int64(len(b))); err == nil {
		t.Fatal("first IFD past the end accepted")
	}
}
