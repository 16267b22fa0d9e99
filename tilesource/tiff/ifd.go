// Package tiff reads tiled and stripped TIFF and BigTIFF files (generic
// pyramids, Aperio SVS, OME-TIFF) with its own IFD parser. Raw tile bytes
// are read with ReadAt; JPEG tiles pass through without decoding and every
// other compression is decoded by libvips through package encode.
package tiff

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Limits that keep a hostile header from making the parser allocate or loop
// without bound.
const (
	maxIFDs         = 8192     // directories per file, SubIFDs included
	maxEntries      = 4096     // entries per directory
	maxSubIFDDepth  = 3        // nesting of SubIFDs
	maxValueBytes   = 64 << 20 // bytes of one tag's value
	maxTotalBytes   = 512 << 20
	maxLoadedFactor = 8 // total loaded values ≤ factor × file size (+1 MB)
)

// Tag numbers used by this package.
const (
	tagNewSubfileType   = 254
	tagImageWidth       = 256
	tagImageLength      = 257
	tagBitsPerSample    = 258
	tagCompression      = 259
	tagPhotometric      = 262
	tagFillOrder        = 266
	tagImageDescription = 270
	tagMake             = 271
	tagModel            = 272
	tagStripOffsets     = 273
	tagOrientation      = 274
	tagSamplesPerPixel  = 277
	tagRowsPerStrip     = 278
	tagStripByteCounts  = 279
	tagXResolution      = 282
	tagYResolution      = 283
	tagPlanarConfig     = 284
	tagResolutionUnit   = 296
	tagSoftware         = 305
	tagDateTime         = 306
	tagPredictor        = 317
	tagColorMap         = 320
	tagTileWidth        = 322
	tagTileLength       = 323
	tagTileOffsets      = 324
	tagTileByteCounts   = 325
	tagSubIFDs          = 330
	tagInkSet           = 332
	tagExtraSamples     = 338
	tagSampleFormat     = 339
	tagJPEGTables       = 347
	tagJPEGProc         = 512
	tagJPEGIFOffset     = 513
	tagYCbCrCoeffs      = 529
	tagYCbCrSubsampling = 530
	tagYCbCrPositioning = 531
	tagRefBlackWhite    = 532
	tagICCProfile       = 34675
)

// Field types.
const (
	typeByte      = 1
	typeASCII     = 2
	typeShort     = 3
	typeLong      = 4
	typeRational  = 5
	typeSByte     = 6
	typeUndefined = 7
	typeSShort    = 8
	typeSLong     = 9
	typeSRational = 10
	typeFloat     = 11
	typeDouble    = 12
	typeIFD       = 13
	typeLong8     = 16
	typeSLong8    = 17
	typeIFD8      = 18
)

// typeSize returns the byte size of one value of a field type, 0 if unknown.
func typeSize(t uint16) int {
	switch t {
	case typeByte, typeASCII, typeSByte, typeUndefined:
		return 1
	case typeShort, typeSShort:
		return 2
	case typeLong, typeSLong, typeFloat, typeIFD:
		return 4
	case typeRational, typeSRational, typeDouble, typeLong8, typeSLong8, typeIFD8:
		return 8
	}
	return 0
}

// errNotTIFF is the cause when the header is not a TIFF header.
var errNotTIFF = errors.New("not a TIFF file")

// File is a parsed TIFF structure: byte order, format and every directory.
type File struct {
	ByteOrder binary.ByteOrder
	BigTIFF   bool
	Size      int64
	// IFDs is the main IFD chain; SubIFDs hang off their parents.
	IFDs []*IFD
	// loaded counts value bytes held in memory (for MemoryEstimate).
	loaded int64
	count  int
}

// IFD is one image file directory.
type IFD struct {
	Offset  int64
	Entries map[uint16]*Entry
	SubIFDs []*IFD
}

// Entry is one tag: its type, count and value bytes (in file byte order).
type Entry struct {
	Tag   uint16
	Type  uint16
	Count uint64
	Data  []byte
	bo    binary.ByteOrder
}

// Parse reads the header and every directory of a TIFF file of the given
// size. It returns an error wrapping errNotTIFF when the header is not TIFF,
// and other errors for a structurally broken file. It never panics.
func Parse(r io.ReaderAt, size int64) (*File, error) {
	var hdr [16]byte
	if size < 8 {
		return nil, errNotTIFF
	}
	n := int64(16)
	if size < n {
		n = size
	}
	if _, err := r.ReadAt(hdr[:n], 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	f := &File{Size: size}
	switch string(hdr[:2]) {
	case "II":
		f.ByteOrder = binary.LittleEndian
	case "MM":
		f.ByteOrder = binary.BigEndian
	default:
		return nil, errNotTIFF
	}
	var first int64
	switch f.ByteOrder.Uint16(hdr[2:]) {
	case 42:
		first = int64(f.ByteOrder.Uint32(hdr[4:]))
	case 43:
		if size < 16 || f.ByteOrder.Uint16(hdr[4:]) != 8 || f.ByteOrder.Uint16(hdr[6:]) != 0 {
			return nil, fmt.Errorf("%w: bad BigTIFF header", errNotTIFF)
		}
		f.BigTIFF = true
		o := f.ByteOrder.Uint64(hdr[8:])
		if o > math.MaxInt64 {
			return nil, errors.New("first IFD offset out of range")
		}
		first = int64(o)
	default:
		return nil, errNotTIFF
	}
	visited := map[int64]bool{}
	off := first
	for off != 0 {
		if visited[off] {
			break // a loop: keep what was read
		}
		ifd, next, err := f.readIFD(r, off, visited, 0)
		if err != nil {
			if len(f.IFDs) == 0 {
				return nil, err
			}
			break // a truncated chain: keep the directories before it
		}
		f.IFDs = append(f.IFDs, ifd)
		off = next
	}
	if len(f.IFDs) == 0 {
		return nil, errors.New("no image directory")
	}
	return f, nil
}

// readIFD reads the directory at off and its SubIFDs; it returns the offset
// of the next directory in the chain.
func (f *File) readIFD(r io.ReaderAt, off int64, visited map[int64]bool, depth int) (*IFD, int64, error) {
	if f.count >= maxIFDs {
		return nil, 0, errors.New("too many directories")
	}
	countSize, entrySize, offSize := int64(2), int64(12), int64(4)
	if f.BigTIFF {
		countSize, entrySize, offSize = 8, 20, 8
	}
	if off < 8 || off > f.Size-countSize {
		return nil, 0, fmt.Errorf("directory offset %d out of range", off)
	}
	visited[off] = true
	f.count++
	var cb [8]byte
	if _, err := r.ReadAt(cb[:countSize], off); err != nil {
		return nil, 0, err
	}
	var n uint64
	if f.BigTIFF {
		n = f.ByteOrder.Uint64(cb[:])
	} else {
		n = uint64(f.ByteOrder.Uint16(cb[:]))
	}
	if n == 0 || n > maxEntries {
		return nil, 0, fmt.Errorf("bad directory entry count %d", n)
	}
	body := int64(n)*entrySize + offSize
	if off+countSize > f.Size-body {
		// Tolerate a missing next-offset field, but not missing entries.
		body -= offSize
		if off+countSize > f.Size-body {
			return nil, 0, errors.New("directory truncated")
		}
	}
	buf := make([]byte, body)
	if _, err := r.ReadAt(buf, off+countSize); err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, err
	}
	ifd := &IFD{Offset: off, Entries: make(map[uint16]*Entry, n)}
	for i := int64(0); i < int64(n); i++ {
		e := buf[i*entrySize : (i+1)*entrySize]
		ent, err := f.readEntry(r, e)
		if err != nil || ent == nil {
			continue // skip an unreadable tag; required tags are checked later
		}
		if _, dup := ifd.Entries[ent.Tag]; !dup {
			ifd.Entries[ent.Tag] = ent
		}
	}
	var next int64
	if int64(len(buf)) == int64(n)*entrySize+offSize {
		tail := buf[int64(n)*entrySize:]
		var v uint64
		if f.BigTIFF {
			v = f.ByteOrder.Uint64(tail)
		} else {
			v = uint64(f.ByteOrder.Uint32(tail))
		}
		if v <= uint64(f.Size) {
			next = int64(v)
		}
	}
	if e := ifd.Entries[tagSubIFDs]; e != nil && depth < maxSubIFDDepth {
		for _, so := range e.Uints() {
			o := int64(so)
			if so > uint64(f.Size) || visited[o] {
				continue
			}
			// A SubIFD may itself start a chain (rare); follow it.
			for o != 0 && !visited[o] {
				sub, nx, err := f.readIFD(r, o, visited, depth+1)
				if err != nil {
					break
				}
				ifd.SubIFDs = append(ifd.SubIFDs, sub)
				o = nx
			}
		}
	}
	return ifd, next, nil
}

// readEntry decodes one raw directory entry and loads its value.
func (f *File) readEntry(r io.ReaderAt, e []byte) (*Entry, error) {
	bo := f.ByteOrder
	ent := &Entry{Tag: bo.Uint16(e), Type: bo.Uint16(e[2:]), bo: bo}
	var inline []byte
	var inlineSize uint64
	if f.BigTIFF {
		ent.Count = bo.Uint64(e[4:])
		inline, inlineSize = e[12:20], 8
	} else {
		ent.Count = uint64(bo.Uint32(e[4:]))
		inline, inlineSize = e[8:12], 4
	}
	ts := typeSize(ent.Type)
	if ts == 0 {
		return nil, nil // unknown type: ignore the tag as readers must
	}
	if ent.Count > maxValueBytes/uint64(ts) {
		return nil, errors.New("tag value too large")
	}
	nb := ent.Count * uint64(ts)
	if nb <= inlineSize {
		ent.Data = append([]byte(nil), inline[:nb]...)
		return ent, nil
	}
	var vo uint64
	if f.BigTIFF {
		vo = bo.Uint64(inline)
	} else {
		vo = uint64(bo.Uint32(inline))
	}
	if vo > uint64(f.Size) || nb > uint64(f.Size)-vo {
		return nil, errors.New("tag value out of file")
	}
	limit := int64(maxLoadedFactor)*f.Size + 1<<20
	if f.loaded+int64(nb) > limit || f.loaded+int64(nb) > maxTotalBytes {
		return nil, errors.New("too much tag data")
	}
	ent.Data = make([]byte, nb)
	if _, err := r.ReadAt(ent.Data, int64(vo)); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	f.loaded += int64(nb)
	return ent, nil
}

// Uints returns the values of an integer (or offset) tag; other types give
// nil. Signed values are converted as two's complement.
func (e *Entry) Uints() []uint64 {
	if e == nil {
		return nil
	}
	bo, d := e.bo, e.Data
	switch e.Type {
	case typeByte, typeUndefined:
		out := make([]uint64, len(d))
		for i, b := range d {
			out[i] = uint64(b)
		}
		return out
	case typeSByte:
		out := make([]uint64, len(d))
		for i, b := range d {
			out[i] = uint64(int64(int8(b)))
		}
		return out
	case typeShort, typeSShort:
		out := make([]uint64, len(d)/2)
		for i := range out {
			v := bo.Uint16(d[2*i:])
			if e.Type == typeSShort {
				out[i] = uint64(int64(int16(v)))
			} else {
				out[i] = uint64(v)
			}
		}
		return out
	case typeLong, typeSLong, typeIFD:
		out := make([]uint64, len(d)/4)
		for i := range out {
			v := bo.Uint32(d[4*i:])
			if e.Type == typeSLong {
				out[i] = uint64(int64(int32(v)))
			} else {
				out[i] = uint64(v)
			}
		}
		return out
	case typeLong8, typeSLong8, typeIFD8:
		out := make([]uint64, len(d)/8)
		for i := range out {
			out[i] = bo.Uint64(d[8*i:])
		}
		return out
	}
	return nil
}

// Floats returns the values of any numeric tag as float64.
func (e *Entry) Floats() []float64 {
	if e == nil {
		return nil
	}
	bo, d := e.bo, e.Data
	switch e.Type {
	case typeRational, typeSRational:
		out := make([]float64, len(d)/8)
		for i := range out {
			n, m := bo.Uint32(d[8*i:]), bo.Uint32(d[8*i+4:])
			if e.Type == typeSRational {
				if m != 0 {
					out[i] = float64(int32(n)) / float64(int32(m))
				}
			} else if m != 0 {
				out[i] = float64(n) / float64(m)
			}
		}
		return out
	case typeFloat:
		out := make([]float64, len(d)/4)
		for i := range out {
			out[i] = float64(math.Float32frombits(bo.Uint32(d[4*i:])))
		}
		return out
	case typeDouble:
		out := make([]float64, len(d)/8)
		for i := range out {
			out[i] = math.Float64frombits(bo.Uint64(d[8*i:]))
		}
		return out
	case typeSByte, typeSShort, typeSLong, typeSLong8:
		u := e.Uints()
		out := make([]float64, len(u))
		for i, v := range u {
			out[i] = float64(int64(v))
		}
		return out
	}
	u := e.Uints()
	out := make([]float64, len(u))
	for i, v := range u {
		out[i] = float64(v)
	}
	return out
}

// String returns an ASCII tag's text up to its first NUL.
func (e *Entry) String() string {
	if e == nil {
		return ""
	}
	d := e.Data
	for i, b := range d {
		if b == 0 {
			d = d[:i]
			break
		}
	}
	return string(d)
}

// Uint returns the first value of tag t, or def when absent.
func (d *IFD) Uint(t uint16, def uint64) uint64 {
	if v := d.Entries[t].Uints(); len(v) > 0 {
		return v[0]
	}
	return def
}

// Uints returns the integer values of tag t.
func (d *IFD) Uints(t uint16) []uint64 { return d.Entries[t].Uints() }

// Float returns the first value of tag t as a float, or def.
func (d *IFD) Float(t uint16, def float64) float64 {
	if v := d.Entries[t].Floats(); len(v) > 0 {
		return v[0]
	}
	return def
}

// String returns an ASCII tag's text, "" when absent.
func (d *IFD) String(t uint16) string {
	e := d.Entries[t]
	if e == nil || (e.Type != typeASCII && e.Type != typeByte && e.Type != typeUndefined) {
		return ""
	}
	return e.String()
}

// Bytes returns the raw value bytes of tag t.
func (d *IFD) Bytes(t uint16) []byte {
	if e := d.Entries[t]; e != nil {
		return e.Data
	}
	return nil
}

// walk calls fn for every directory of the file, depth first.
func (f *File) walk(fn func(d *IFD, chainIndex int, parent *IFD)) {
	var rec func(d *IFD, idx int, parent *IFD)
	rec = func(d *IFD, idx int, parent *IFD) {
		fn(d, idx, parent)
		for _, s := range d.SubIFDs {
			rec(s, -1, d)
		}
	}
	for i, d := range f.IFDs {
		rec(d, i, nil)
	}
}
