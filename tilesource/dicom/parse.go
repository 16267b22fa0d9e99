package dicom

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Transfer syntaxes this reader knows.
const (
	tsImplicitLE    = "1.2.840.10008.1.2"
	tsExplicitLE    = "1.2.840.10008.1.2.1"
	tsDeflated      = "1.2.840.10008.1.2.1.99"
	tsExplicitBE    = "1.2.840.10008.1.2.2"
	tsJPEGBaseline  = "1.2.840.10008.1.2.4.50"
	tsJPEGExtended  = "1.2.840.10008.1.2.4.51"
	tsJPEGLSLossles = "1.2.840.10008.1.2.4.80"
	tsJPEGLSNear    = "1.2.840.10008.1.2.4.81"
	tsJ2KLossless   = "1.2.840.10008.1.2.4.90"
	tsJ2K           = "1.2.840.10008.1.2.4.91"
	tsHTJ2KLossless = "1.2.840.10008.1.2.4.201"
	tsHTJ2KRPCL     = "1.2.840.10008.1.2.4.202"
	tsHTJ2K         = "1.2.840.10008.1.2.4.203"
	tsRLE           = "1.2.840.10008.1.2.5"
)

// Bounds that keep hostile files from costing memory or time.
const (
	maxDepth     = 12       // nesting of sequences
	maxKeptValue = 1 << 20  // larger values are skipped, except these:
	maxICC       = 16 << 20 // ICC profiles may be large
	maxFragments = 1 << 24
	maxFrames    = 1 << 24
	maxDimension = 1 << 22 // pixels on a side of a total pixel matrix
	maxFrameSide = 1 << 14 // pixels on a side of one frame
	// maxFramePixels bounds one frame's decoded size (4096² pixels).
	maxFramePixels = 1 << 24
	maxOffsetList  = 1 << 24 // entries of an offset table
)

var (
	errNotDICOM  = errors.New("no DICM preamble")
	errTruncated = errors.New("file is truncated")
)

// fragment is one item of encapsulated pixel data: where its bytes are.
type fragment struct {
	off, n int64
}

// pixelData says where the pixel data of a file is.
type pixelData struct {
	present      bool
	encapsulated bool
	off, n       int64 // native data
	bot          []uint32
	frags        []fragment
}

// File is a parsed DICOM file: its meta information, the dataset up to the
// pixel data, and the location of the pixel data.
type File struct {
	Meta  *Dataset
	DS    *Dataset
	TS    string
	pixel pixelData
}

// reader reads a byte stream, counting the offset.
type reader struct {
	ra       io.ReaderAt
	br       *bufio.Reader
	off      int64
	size     int64
	implicit bool
	// headerOnly stops at the pixel data without indexing it.
	headerOnly bool
}

func (r *reader) read(n int) ([]byte, error) {
	if n < 0 || int64(n) > r.size-r.off {
		return nil, errTruncated
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r.br, b); err != nil {
		return nil, errTruncated
	}
	r.off += int64(n)
	return b, nil
}

func (r *reader) skip(n int64) error {
	if n < 0 || n > r.size-r.off {
		return errTruncated
	}
	if n <= int64(r.br.Buffered()) {
		d, err := r.br.Discard(int(n))
		r.off += int64(d)
		if err != nil {
			return errTruncated
		}
		return nil
	}
	// Jump rather than read through large values.
	r.off += n
	r.br.Reset(io.NewSectionReader(r.ra, r.off, r.size-r.off))
	return nil
}

func (r *reader) u16() (uint16, error) {
	b, err := r.read(2)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(b), nil
}

func (r *reader) u32() (uint32, error) {
	b, err := r.read(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (r *reader) tag() (Tag, error) {
	g, err := r.u16()
	if err != nil {
		return 0, err
	}
	e, err := r.u16()
	return Tag(uint32(g)<<16 | uint32(e)), err
}

// longVRs have a 2-byte reserved field and a 4-byte length in explicit VR.
var longVRs = map[string]bool{"OB": true, "OD": true, "OF": true, "OL": true, "OV": true,
	"OW": true, "SQ": true, "UC": true, "UR": true, "UT": true, "UN": true, "SV": true, "UV": true}

const undefinedLength = 0xFFFFFFFF

// header reads an element header after its tag: VR and length.
func (r *reader) header(t Tag) (string, uint32, error) {
	if t>>16 == 0xFFFE || r.implicit {
		n, err := r.u32()
		vr := implicitVR[t]
		if vr == "" {
			vr = "UN"
		}
		return vr, n, err
	}
	b, err := r.read(2)
	if err != nil {
		return "", 0, err
	}
	vr := string(b)
	if vr[0] < 'A' || vr[0] > 'Z' || vr[1] < 'A' || vr[1] > 'Z' {
		return "", 0, fmt.Errorf("bad VR at offset %d", r.off-2)
	}
	if longVRs[vr] {
		if err := r.skip(2); err != nil {
			return "", 0, err
		}
		n, err := r.u32()
		return vr, n, err
	}
	n, err := r.u16()
	return vr, uint32(n), err
}

// Parse reads a DICOM file up to and including the index of its pixel data.
// It reads no pixel bytes except the basic offset table.
func Parse(ra io.ReaderAt, size int64) (*File, error) { return parse(ra, size, false) }

func parse(ra io.ReaderAt, size int64, headerOnly bool) (*File, error) {
	if size < 132 {
		return nil, errNotDICOM
	}
	var magic [4]byte
	if _, err := ra.ReadAt(magic[:], 128); err != nil || string(magic[:]) != "DICM" {
		return nil, errNotDICOM
	}
	r := &reader{ra: ra, br: bufio.NewReaderSize(io.NewSectionReader(ra, 132, size-132), 16<<10), off: 132, size: size, headerOnly: headerOnly}
	f := &File{Meta: &Dataset{}}
	for {
		b, err := r.br.Peek(2)
		if err != nil || binary.LittleEndian.Uint16(b) != 0x0002 {
			break
		}
		t, err := r.tag()
		if err != nil {
			return nil, err
		}
		if err := r.element(f.Meta, t, 0, f); err != nil {
			return nil, err
		}
	}
	f.TS = f.Meta.Str(tagTransferSyntax)
	switch f.TS {
	case "":
		return nil, errors.New("no transfer syntax in the file meta information")
	case tsImplicitLE:
		r.implicit = true
	case tsExplicitBE, tsDeflated:
		return nil, fmt.Errorf("unsupported transfer syntax %s", f.TS)
	}
	ds, err := r.dataset(-1, 0, f)
	if err != nil {
		return nil, err
	}
	f.DS = ds
	return f, nil
}

// dataset reads elements until end (an absolute offset), an item
// delimiter, or (at the top level) the end of the data or the pixel data.
func (r *reader) dataset(end int64, depth int, f *File) (*Dataset, error) {
	if depth > maxDepth {
		return nil, errors.New("sequences nested too deeply")
	}
	ds := &Dataset{}
	for {
		if end >= 0 && r.off >= end {
			if r.off > end {
				return nil, errors.New("item overruns its length")
			}
			return ds, nil
		}
		if end < 0 && depth == 0 && r.off >= r.size {
			return ds, nil
		}
		t, err := r.tag()
		if err != nil {
			return nil, err
		}
		if t == tagItemDelim {
			_, err := r.u32()
			return ds, err
		}
		if t == tagPixelData && depth == 0 {
			if r.headerOnly {
				f.pixel.present = true
				return ds, nil
			}
			if err := r.pixels(f); err != nil {
				return nil, err
			}
			return ds, nil
		}
		if err := r.element(ds, t, depth, f); err != nil {
			return nil, err
		}
	}
}

// element reads the element with tag t (already read) into ds.
func (r *reader) element(ds *Dataset, t Tag, depth int, f *File) error {
	vr, n, err := r.header(t)
	if err != nil {
		return err
	}
	if t>>16 == 0xFFFE {
		return fmt.Errorf("unexpected delimiter (%04X,%04X)", t>>16, t&0xFFFF)
	}
	if vr == "SQ" || n == undefinedLength {
		// An undefined-length UN is a sequence in implicit VR (PS3.5 6.2.2).
		implicit := r.implicit
		if vr == "UN" {
			r.implicit = true
		}
		items, err := r.sequence(n, depth, f)
		r.implicit = implicit
		if err != nil {
			return err
		}
		ds.add(&Element{Tag: t, VR: "SQ", Items: items})
		return nil
	}
	limit := int64(maxKeptValue)
	if t == tagICCProfile {
		limit = maxICC
	}
	if int64(n) > limit {
		return r.skip(int64(n))
	}
	raw, err := r.read(int(n))
	if err != nil {
		return err
	}
	e := &Element{Tag: t, VR: vr}
	decodeValue(e, raw)
	ds.add(e)
	return nil
}

// sequence reads the items of a sequence of length n.
func (r *reader) sequence(n uint32, depth int, f *File) ([]*Dataset, error) {
	end := int64(-1)
	if n != undefinedLength {
		end = r.off + int64(n)
		if end > r.size {
			return nil, errTruncated
		}
	}
	var items []*Dataset
	for end < 0 || r.off < end {
		t, err := r.tag()
		if err != nil {
			return nil, err
		}
		l, err := r.u32()
		if err != nil {
			return nil, err
		}
		switch t {
		case tagSeqDelim:
			return items, nil
		case tagItem:
		default:
			return nil, fmt.Errorf("bad item tag (%04X,%04X) in a sequence", t>>16, t&0xFFFF)
		}
		itemEnd := int64(-1)
		if l != undefinedLength {
			itemEnd = r.off + int64(l)
			if itemEnd > r.size || (end >= 0 && itemEnd > end) {
				return nil, errTruncated
			}
		}
		it, err := r.dataset(itemEnd, depth+1, f)
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	if r.off != end {
		return nil, errors.New("sequence overruns its length")
	}
	return items, nil
}

// pixels indexes the pixel data element (its tag already read).
func (r *reader) pixels(f *File) error {
	_, n, err := r.header(tagPixelData)
	if err != nil {
		return err
	}
	p := &f.pixel
	p.present = true
	if n != undefinedLength {
		p.off, p.n = r.off, int64(n)
		if p.off+p.n > r.size {
			return errTruncated
		}
		return nil
	}
	p.encapsulated = true
	// Items are read with ReadAt: a walk over the fragments of a large file
	// touches only their 8-byte headers.
	off := r.off
	var hdr [8]byte
	first := true
	for {
		if off+8 > r.size {
			return errTruncated
		}
		if _, err := r.ra.ReadAt(hdr[:], off); err != nil {
			return errTruncated
		}
		t := Tag(uint32(binary.LittleEndian.Uint16(hdr[0:]))<<16 | uint32(binary.LittleEndian.Uint16(hdr[2:])))
		l := binary.LittleEndian.Uint32(hdr[4:])
		off += 8
		if t == tagSeqDelim {
			break
		}
		if t != tagItem || l == undefinedLength || int64(l) > r.size-off {
			if t == tagItem && l != undefinedLength {
				return errTruncated
			}
			return fmt.Errorf("bad pixel data item (%04X,%04X)", t>>16, t&0xFFFF)
		}
		if first {
			first = false
			if l%4 != 0 || l/4 > maxOffsetList {
				return errors.New("bad basic offset table")
			}
			b := make([]byte, l)
			if _, err := r.ra.ReadAt(b, off); err != nil {
				return errTruncated
			}
			p.bot = make([]uint32, l/4)
			for i := range p.bot {
				p.bot[i] = binary.LittleEndian.Uint32(b[4*i:])
			}
			off += int64(l)
			continue
		}
		if len(p.frags) >= maxFragments {
			return errors.New("too many pixel data fragments")
		}
		p.frags = append(p.frags, fragment{off: off, n: int64(l)})
		off += int64(l)
	}
	if first {
		return errors.New("encapsulated pixel data without items")
	}
	return nil
}
