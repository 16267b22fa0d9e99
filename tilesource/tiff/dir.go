package tiff

import (
	"fmt"
	"strings"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/limits"
)

// TIFF compression codes this package handles.
const (
	compNone      = 1
	compLZW       = 5
	compOJPEG     = 6
	compJPEG      = 7
	compDeflate   = 8
	compPackBits  = 32773
	compDeflateZ  = 32946
	compJP2KYCbCr = 33003
	compJP2K      = 33004
	compJP2KRGB   = 33005
	compJP2KLossy = 34712
	compZstd      = 50000
	compWebP      = 50001
)

// supportedCompression lists the codes libvips' TIFF loader can decode.
var supportedCompression = map[int]bool{
	compNone: true, compLZW: true, compOJPEG: true, compJPEG: true, compDeflate: true,
	compPackBits: true, compDeflateZ: true, compJP2KYCbCr: true, compJP2K: true,
	compJP2KRGB: true, compJP2KLossy: true, compZstd: true, compWebP: true,
}

// Photometric interpretations.
const (
	photoMinIsWhite = 0
	photoMinIsBlack = 1
	photoRGB        = 2
	photoPalette    = 3
	photoSeparated  = 5
	photoYCbCr      = 6
)

// Caps on sizes derived from header values.
const (
	maxDimension  = 1 << 24   // pixels per side
	maxChunkBytes = 256 << 20 // one stored tile or strip
	maxChunks     = 1 << 24   // tiles or strips per directory
)

// dir is an image directory with the fields needed to read it.
type dir struct {
	ifd           *IFD
	page          int // index in the main chain, -1 for a SubIFD
	w, h          int
	tiled         bool
	tw, th        int // tile size; for strips, width × RowsPerStrip
	across, down  int // chunks per plane horizontally and vertically
	offsets       []uint64
	counts        []uint64
	compression   int
	photometric   int
	planar        int
	spp           int
	bps           int
	sampleFormat  int
	jpegTables    []byte
	subfile       uint64
	desc          string
	format        encode.Format
	bands         int
	passthrough   bool   // JPEG tiles that can be served as they are
	jpegPrefix    []byte // SOI, Adobe marker if added, tables: what precedes a tile's body
	jpegAdobe     bool   // jpegPrefix holds an inserted Adobe marker
	chunksPerTile int    // 1 for chunky data, spp for planar
	orient        orientation
}

// newDir validates a directory's geometry and layout. Errors here describe
// the problem for a public message.
func newDir(d *IFD, page int) (*dir, error) {
	w, h := d.Uint(tagImageWidth, 0), d.Uint(tagImageLength, 0)
	if w == 0 || w > maxDimension {
		return nil, damagedf("invalid image width %d", w)
	}
	if h == 0 || h > maxDimension {
		return nil, damagedf("invalid image height %d", h)
	}
	if err := limits.CheckSide("image", int64(w), int64(h)); err != nil {
		return nil, err
	}
	r := &dir{ifd: d, page: page, w: int(w), h: int(h)}
	r.compression = int(d.Uint(tagCompression, 1))
	r.photometric = int(d.Uint(tagPhotometric, photoMinIsBlack))
	r.planar = int(d.Uint(tagPlanarConfig, 1))
	r.spp = int(d.Uint(tagSamplesPerPixel, 1))
	if r.spp < 1 || r.spp > 64 {
		return nil, damagedf("invalid samples per pixel %d", r.spp)
	}
	bps := d.Uints(tagBitsPerSample)
	r.bps = 1
	if len(bps) > 0 {
		r.bps = int(min(bps[0], 1024))
	}
	for _, b := range bps {
		if int(b) != r.bps {
			return nil, fmt.Errorf("mixed bits per sample")
		}
	}
	r.sampleFormat = int(d.Uint(tagSampleFormat, 1))
	r.subfile = d.Uint(tagNewSubfileType, 0)
	r.desc = d.String(tagImageDescription)
	r.jpegTables = d.Bytes(tagJPEGTables)
	var err error
	if r.format, err = sampleFormat(r.bps, r.sampleFormat); err != nil {
		return nil, err
	}
	r.bands = r.spp
	switch r.photometric {
	case photoPalette:
		r.bands = 3
	case photoYCbCr:
		if r.spp >= 3 {
			r.bands = r.spp
		}
	}
	if d.Entries[tagTileWidth] != nil || d.Entries[tagTileOffsets] != nil {
		r.tiled = true
		r.tw, r.th = int(d.Uint(tagTileWidth, 0)), int(d.Uint(tagTileLength, 0))
		if r.tw <= 0 || r.th <= 0 || r.tw > 1<<16 || r.th > 1<<16 {
			return nil, damagedf("invalid tile size %dx%d", r.tw, r.th)
		}
		r.offsets, r.counts = d.Uints(tagTileOffsets), d.Uints(tagTileByteCounts)
	} else {
		r.tw = r.w
		// libtiff refuses RowsPerStrip 0 and keeps the default (the whole
		// image); a value beyond the height means the same.
		rps := d.Uint(tagRowsPerStrip, h)
		if rps == 0 || rps > h {
			rps = h
		}
		r.th = int(rps)
		r.offsets, r.counts = d.Uints(tagStripOffsets), d.Uints(tagStripByteCounts)
	}
	r.across = (r.w + r.tw - 1) / r.tw
	r.down = (r.h + r.th - 1) / r.th
	r.chunksPerTile = 1
	if r.planar == 2 {
		r.chunksPerTile = r.spp
	}
	// One tile or strip is decoded at a time: its declared size bounds what
	// a decode allocates, so a file whose chunks are over the limit is
	// refused here rather than on every request.
	what := "tile"
	if !r.tiled {
		what = "strip"
	}
	if err := limits.CheckDecoded(what, int64(r.tw), int64(r.th), int64(max(r.spp, r.bands)), sampleBytes(r.bps)); err != nil {
		return nil, err
	}
	if r.compression == compOJPEG && (r.tw > 0xFFFF || r.th > 0xFFFF) {
		// A JPEG frame header holds 16-bit sizes.
		return nil, damagedf("old-style JPEG %s of %dx%d is larger than JPEG allows", what, r.tw, r.th)
	}
	need := r.across * r.down * r.chunksPerTile
	if need > maxChunks {
		return nil, damagedf("too many tiles")
	}
	if len(r.offsets) < need || len(r.counts) < need {
		return nil, damagedf("missing tile or strip offsets")
	}
	r.orient = newOrientation(d.Uint(tagOrientation, 1))
	r.passthrough = r.orient.stored() && r.tiled && r.compression == compJPEG && r.bps == 8 &&
		(r.spp == 1 || r.spp == 3) && r.planar == 1 &&
		(r.photometric == photoRGB || r.photometric == photoYCbCr || r.photometric == photoMinIsBlack)
	if r.passthrough {
		// Splicing an empty tile body yields SOI + [Adobe] + tables + EOI.
		full := encode.SpliceJPEG(r.jpegTables, nil, r.photometric == photoRGB)
		r.jpegPrefix = full[:len(full)-2]
		r.jpegAdobe = r.photometric == photoRGB && len(r.jpegPrefix) >= 6 && r.jpegPrefix[3] == 0xEE &&
			!encode.HasAdobe(trimJPEGSOI(r.jpegTables))
		if len(r.jpegPrefix) < 2 {
			r.passthrough = false
		}
	}
	return r, nil
}

func trimJPEGSOI(b []byte) []byte {
	if len(b) >= 2 && b[0] == 0xFF && b[1] == 0xD8 {
		return b[2:]
	}
	return b
}

// sampleFormat maps BitsPerSample and SampleFormat to a pixel format.
func sampleFormat(bps, sf int) (encode.Format, error) {
	switch {
	case bps <= 8:
		if sf == 2 && bps == 8 {
			return encode.Int8, nil
		}
		return encode.Uint8, nil
	case bps == 16 && sf == 2:
		return encode.Int16, nil
	case bps == 16 && sf != 3:
		return encode.Uint16, nil
	case bps == 32 && sf == 3:
		return encode.Float32, nil
	case bps == 32 && sf == 2:
		return encode.Int32, nil
	case bps == 32:
		return encode.Uint32, nil
	case bps == 64 && sf == 3:
		return encode.Float64, nil
	}
	return 0, fmt.Errorf("unsupported sample format %d with %d bits per sample", sf, bps)
}

// damagedError marks an error as a sign of a damaged file rather than of a
// feature this reader lacks: detection then gives the file to no other
// reader.
type damagedError struct{ error }

func (damagedError) Is(target error) bool { return target == tilesource.ErrDamaged }

func damagedf(format string, args ...any) error { return damagedError{fmt.Errorf(format, args...)} }

// sampleBytes is the decoded size of one sample of bps bits.
func sampleBytes(bps int) int64 {
	switch {
	case bps <= 8:
		return 1
	case bps <= 16:
		return 2
	case bps <= 32:
		return 4
	}
	return 8
}

// chunkIndex returns the index of chunk (tile or strip) col,row of plane p.
func (d *dir) chunkIndex(col, row, p int) int {
	return p*d.across*d.down + row*d.across + col
}

// isLabel and isMacro recognise associated images by description.
// Long descriptions (OME XML, Aperio main image) are not names, so only
// short ones count.
func (d *dir) isLabel() bool {
	return len(d.desc) < 256 && strings.Contains(strings.ToLower(d.desc), "label")
}

func (d *dir) isMacro() bool {
	return len(d.desc) < 256 && strings.Contains(strings.ToLower(d.desc), "macro")
}
