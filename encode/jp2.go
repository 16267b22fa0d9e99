package encode

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/tileserver/tileserver/tilesource/limits"
)

// libvips 8.14.1 (Debian bookworm) corrupts memory on two kinds of JPEG 2000
// input: palette JP2 files (it allocates one band, OpenJPEG writes three)
// and codestreams whose image origin is not (0, 0). A crash there would take
// the whole server down, so JPEG 2000 data is inspected in Go first:
// palette images are decoded from their bare codestream and the palette is
// applied here; non-zero origins are refused.

// ErrJ2KUnsupported marks JPEG 2000 input that is refused because the
// installed libvips cannot decode it safely.
var ErrJ2KUnsupported = errors.New("unsupported JPEG 2000 layout")

var (
	jp2Signature = []byte{0, 0, 0, 12, 'j', 'P', ' ', ' ', '\r', '\n', 0x87, '\n'}
	j2kSignature = []byte{0xFF, 0x4F, 0xFF, 0x51}
)

// jp2Palette is a JP2 pclr box with its cmap channel mapping.
type jp2Palette struct {
	entries [][]uint32 // [entry][column]
	bits    []int      // bit depth per column
	cmap    []jp2Map   // one per output channel
}

type jp2Map struct {
	cmp  int // codestream component
	mtyp int // 0 = direct, 1 = through the palette
	pcol int // palette column
}

// j2kLayout is what Decode must know about JPEG 2000 data before libvips
// sees it.
type j2kLayout struct {
	codestream int // offset of the codestream
	palette    *jp2Palette
	precision  []int // per component, from SIZ
}

// isJ2K reports whether data starts like a JP2 file or a J2K codestream.
func isJ2K(head []byte) bool {
	return bytes.HasPrefix(head, jp2Signature) || bytes.HasPrefix(head, j2kSignature)
}

// inspectJ2K parses the JP2 boxes and the SIZ marker in head (the start of
// the data; the boxes before the codestream and the SIZ marker must be in
// it). It returns an error wrapping ErrJ2KUnsupported for layouts libvips
// would crash on.
func inspectJ2K(head []byte) (*j2kLayout, error) {
	l := &j2kLayout{codestream: -1}
	if bytes.HasPrefix(head, j2kSignature) {
		l.codestream = 0
	} else if err := l.walkBoxes(head, 0, len(head)); err != nil {
		return nil, err
	}
	if l.codestream < 0 || l.codestream+42 > len(head) || !bytes.HasPrefix(head[l.codestream:], j2kSignature) {
		return nil, fmt.Errorf("%w: codestream not found", ErrJ2KUnsupported)
	}
	siz := head[l.codestream+4:]
	be := binary.BigEndian
	xo, yo := be.Uint32(siz[12:]), be.Uint32(siz[16:])
	if xo != 0 || yo != 0 {
		return nil, fmt.Errorf("%w: image origin (%d, %d) is not (0, 0)", ErrJ2KUnsupported, xo, yo)
	}
	nc := int(be.Uint16(siz[36:]))
	if nc == 0 || len(siz) < 38+3*nc {
		return nil, fmt.Errorf("%w: bad SIZ marker", ErrJ2KUnsupported)
	}
	bytesPerSample := int64(1)
	for c := range nc {
		l.precision = append(l.precision, int(siz[38+3*c]&0x7F)+1)
		if l.precision[c] > 8 {
			bytesPerSample = 2
		}
	}
	// OpenJPEG decodes a whole tile at a time (the whole image when it is
	// not tiled): the declared image and tile sizes bound what a decode
	// allocates, so check them before libvips sees the stream.
	w, h := int64(be.Uint32(siz[4:])), int64(be.Uint32(siz[8:]))
	if err := limits.CheckSide("JPEG 2000 image", w, h); err != nil {
		return nil, err
	}
	tw, th := min(int64(be.Uint32(siz[20:])), w), min(int64(be.Uint32(siz[24:])), h)
	if err := limits.CheckDecoded("JPEG 2000 tile", tw, th, int64(nc), bytesPerSample); err != nil {
		return nil, err
	}
	if p := l.palette; p != nil {
		for _, m := range p.cmap {
			if m.cmp >= nc || (m.mtyp == 1 && m.pcol >= len(p.bits)) {
				return nil, fmt.Errorf("%w: bad component mapping", ErrJ2KUnsupported)
			}
		}
	}
	return l, nil
}

// walkBoxes reads the JP2 boxes in head[from:to], descending into jp2h.
func (l *j2kLayout) walkBoxes(head []byte, from, to int) error {
	be := binary.BigEndian
	var pclr, cmap, cdef []byte
	for off := from; off+8 <= to; {
		size := int(be.Uint32(head[off:]))
		typ := string(head[off+4 : off+8])
		hdr := 8
		switch size {
		case 0:
			size = to - off
		case 1:
			if off+16 > to {
				return nil
			}
			hdr = 16
			size = int(min(be.Uint64(head[off+8:]), uint64(1<<40)))
		}
		if size < hdr {
			return fmt.Errorf("%w: bad box size", ErrJ2KUnsupported)
		}
		if typ == "jp2c" {
			l.codestream = off + hdr
			break
		}
		if off+size > to {
			break // box continues beyond what we read
		}
		body := head[off+hdr : off+size]
		switch typ {
		case "jp2h":
			if err := l.walkBoxes(head, off+hdr, off+size); err != nil {
				return err
			}
		case "pclr":
			pclr = body
		case "cmap":
			cmap = body
		case "cdef":
			cdef = body
		}
		off += size
	}
	if pclr != nil {
		p, err := parsePalette(pclr, cmap)
		if err != nil {
			return err
		}
		p.applyChannelDefinitions(cdef)
		l.palette = p
	}
	return nil
}

func parsePalette(pclr, cmap []byte) (*jp2Palette, error) {
	bad := fmt.Errorf("%w: bad palette", ErrJ2KUnsupported)
	if len(pclr) < 3 {
		return nil, bad
	}
	ne, npc := int(binary.BigEndian.Uint16(pclr)), int(pclr[2])
	if ne == 0 || npc == 0 || len(pclr) < 3+npc {
		return nil, bad
	}
	p := &jp2Palette{}
	width := 0
	for c := range npc {
		b := pclr[3+c]
		if b&0x80 != 0 || b&0x7F >= 16 {
			return nil, fmt.Errorf("%w: signed or deep palette", ErrJ2KUnsupported)
		}
		p.bits = append(p.bits, int(b&0x7F)+1)
		width += (int(b&0x7F) + 8) / 8
	}
	data := pclr[3+npc:]
	if len(data) < ne*width {
		return nil, bad
	}
	for range ne {
		row := make([]uint32, npc)
		for c := range npc {
			n := (p.bits[c] + 7) / 8
			var v uint32
			for _, x := range data[:n] {
				v = v<<8 | uint32(x)
			}
			row[c], data = v, data[n:]
		}
		p.entries = append(p.entries, row)
	}
	if len(cmap) == 0 || len(cmap)%4 != 0 {
		// Without cmap every column is driven by component 0.
		for c := range npc {
			p.cmap = append(p.cmap, jp2Map{cmp: 0, mtyp: 1, pcol: c})
		}
		return p, nil
	}
	for i := 0; i < len(cmap); i += 4 {
		p.cmap = append(p.cmap, jp2Map{
			cmp:  int(binary.BigEndian.Uint16(cmap[i:])),
			mtyp: int(cmap[i+2]),
			pcol: int(cmap[i+3]),
		})
	}
	return p, nil
}

// applyChannelDefinitions reorders the output channels as a cdef box
// says, the way OpenJPEG's opj_jp2_apply_cdef does (and so opj_decompress
// and large_image): each colour channel moves to the position of the
// colour it is associated with (1 = red, 2 = green, …), and later entries
// follow the swapped channels. Opacity and unassociated channels stay.
func (p *jp2Palette) applyChannelDefinitions(cdef []byte) {
	if len(cdef) < 2 {
		return
	}
	be := binary.BigEndian
	n := int(be.Uint16(cdef))
	if len(cdef) < 2+6*n {
		return
	}
	type def struct{ cn, typ, asoc int }
	defs := make([]def, n)
	for i := range defs {
		e := cdef[2+6*i:]
		defs[i] = def{int(be.Uint16(e)), int(be.Uint16(e[2:])), int(be.Uint16(e[4:]))}
	}
	nc := len(p.cmap)
	for i, d := range defs {
		if d.typ != 0 || d.asoc == 0 || d.asoc == 0xFFFF || d.cn >= nc || d.asoc > nc {
			continue
		}
		acn := d.asoc - 1
		if d.cn == acn {
			continue
		}
		p.cmap[d.cn], p.cmap[acn] = p.cmap[acn], p.cmap[d.cn]
		for j := i + 1; j < n; j++ {
			switch defs[j].cn {
			case d.cn:
				defs[j].cn = acn
			case acn:
				defs[j].cn = d.cn
			}
		}
	}
}

// applyPalette maps the decoded codestream components through the palette.
// libvips left-justifies components shallower than their sample type, so
// the shift is undone before indexing.
func (l *j2kLayout) applyPalette(comp *Image) (*Image, error) {
	p := l.palette
	if comp.Bands != len(l.precision) || (comp.Format != Uint8 && comp.Format != Uint16) {
		return nil, fmt.Errorf("%w: palette components decoded as %d %s bands", ErrJ2KUnsupported, comp.Bands,
			comp.Format.DType())
	}
	deep := false
	for _, b := range p.bits {
		deep = deep || b > 8
	}
	for _, m := range p.cmap {
		deep = deep || (m.mtyp == 0 && comp.Format == Uint16)
	}
	of := Uint8
	if deep {
		of = Uint16
	}
	out := NewImage(comp.Width, comp.Height, len(p.cmap), of)
	ne := binary.NativeEndian
	typeBits := 8 * comp.Format.Size()
	n := comp.Width * comp.Height
	for i := range n {
		for ch, m := range p.cmap {
			j := i*comp.Bands + m.cmp
			var v uint32
			if comp.Format == Uint8 {
				v = uint32(comp.Pix[j])
			} else {
				v = uint32(ne.Uint16(comp.Pix[2*j:]))
			}
			bits := typeBits
			if m.mtyp == 1 {
				v >>= max(typeBits-l.precision[m.cmp], 0)
				v = p.entries[min(int(v), len(p.entries)-1)][m.pcol]
				bits = p.bits[m.pcol]
			}
			k := i*out.Bands + ch
			if of == Uint8 {
				out.Pix[k] = uint8(v << max(8-bits, 0) >> max(bits-8, 0))
			} else {
				ne.PutUint16(out.Pix[2*k:], uint16(v<<max(16-bits, 0)))
			}
		}
	}
	return out, nil
}
