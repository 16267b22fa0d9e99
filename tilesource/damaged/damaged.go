// Package damaged makes damaged and crafted slide files from real ones, for
// robustness tests and fuzz seed corpora: TIFF files whose declared sizes,
// strip and tile layouts, offsets and directory chains are wrong or hostile,
// DICOM files whose rows, columns and frame counts lie, and truncations of
// both. The output is deterministic for a given seed.
package damaged

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand"
	"path/filepath"
	"strings"
)

// File is one generated file.
type File struct {
	// Name is a file name that says what was done, e.g.
	// "grey10kx5k.tif.ifd0-rowsperstrip-0.tif".
	Name string
	Data []byte
}

// Source is a real file to mutate.
type Source struct {
	Name string
	Data []byte
	// Keep, when set, selects the mutations kept by name (costly
	// sources may keep only the cases that matter).
	Keep func(name string) bool
}

// Generate returns the mutations of every source: the systematic ones for
// its format (TIFF or DICOM, by content) and randomPerFile random ones drawn
// from a generator seeded with seed.
func Generate(sources []Source, seed int64, randomPerFile int) []File {
	rng := rand.New(rand.NewSource(seed))
	var out []File
	for _, s := range sources {
		var g *gen
		switch {
		case isTIFF(s.Data):
			g = &gen{src: s, rng: rng}
			g.tiff(randomPerFile)
		case len(s.Data) > 132 && string(s.Data[128:132]) == "DICM":
			g = &gen{src: s, rng: rng}
			g.dicom(randomPerFile)
		default:
			continue
		}
		g.truncations()
		for _, f := range g.out {
			if s.Keep == nil || s.Keep(f.Name) {
				out = append(out, f)
			}
		}
	}
	return out
}

type gen struct {
	src Source
	rng *rand.Rand
	out []File
}

func (g *gen) add(what string, data []byte) {
	ext := filepath.Ext(g.src.Name)
	base := strings.TrimSuffix(g.src.Name, ext)
	g.out = append(g.out, File{Name: fmt.Sprintf("%s.%s%s", base, what, ext), Data: data})
}

func (g *gen) clone() []byte { return bytes.Clone(g.src.Data) }

// truncations cut the file at a few fixed fractions of its length.
func (g *gen) truncations() {
	n := len(g.src.Data)
	for _, f := range []int{3, 10, 25, 50, 75, 95} {
		g.add(fmt.Sprintf("trunc%d", f), bytes.Clone(g.src.Data[:n*f/100]))
	}
}

func isTIFF(b []byte) bool {
	if len(b) < 8 {
		return false
	}
	h := string(b[:4])
	return h == "II*\x00" || h == "MM\x00*" || h == "II+\x00" || h == "MM\x00+"
}

// Tags the TIFF mutations touch.
const (
	tagImageWidth      = 256
	tagImageLength     = 257
	tagBitsPerSample   = 258
	tagCompression     = 259
	tagStripOffsets    = 273
	tagSamplesPerPixel = 277
	tagRowsPerStrip    = 278
	tagStripByteCounts = 279
	tagTileWidth       = 322
	tagTileLength      = 323
	tagTileOffsets     = 324
	tagTileByteCounts  = 325
	tagSubIFDs         = 330
	tagJPEGIFOffset    = 513
)

// layout locates the directories and entries of a TIFF file so that they
// can be rewritten in place.
type layout struct {
	bo    binary.ByteOrder
	big   bool
	ifds  []ifdLoc
	first int64 // position of the first-IFD offset in the header
}

type ifdLoc struct {
	off     int64 // directory offset
	next    int64 // position of its next-directory field
	entries []entryLoc
}

type entryLoc struct {
	pos   int64 // position of the entry
	tag   uint16
	typ   uint16
	count uint64
}

func parseLayout(b []byte) *layout {
	l := &layout{}
	if b[0] == 'I' {
		l.bo = binary.LittleEndian
	} else {
		l.bo = binary.BigEndian
	}
	l.big = l.bo.Uint16(b[2:]) == 43
	var off int64
	if l.big {
		if len(b) < 16 {
			return l
		}
		l.first = 8
		off = int64(l.bo.Uint64(b[8:]))
	} else {
		l.first = 4
		off = int64(l.bo.Uint32(b[4:]))
	}
	seen := map[int64]bool{}
	for off > 0 && off < int64(len(b)) && !seen[off] && len(l.ifds) < 64 {
		seen[off] = true
		var n, es, cs int64 = 0, 12, 2
		if l.big {
			es, cs = 20, 8
			if off+8 > int64(len(b)) {
				break
			}
			n = int64(l.bo.Uint64(b[off:]))
		} else {
			if off+2 > int64(len(b)) {
				break
			}
			n = int64(l.bo.Uint16(b[off:]))
		}
		end := off + cs + n*es
		if n > 4096 || end+cs/2*2 > int64(len(b)) {
			break
		}
		d := ifdLoc{off: off, next: end}
		for i := int64(0); i < n; i++ {
			p := off + cs + i*es
			e := entryLoc{pos: p, tag: l.bo.Uint16(b[p:]), typ: l.bo.Uint16(b[p+2:])}
			if l.big {
				e.count = l.bo.Uint64(b[p+4:])
			} else {
				e.count = uint64(l.bo.Uint32(b[p+4:]))
			}
			d.entries = append(d.entries, e)
		}
		l.ifds = append(l.ifds, d)
		if l.big {
			if end+8 > int64(len(b)) {
				break
			}
			off = int64(l.bo.Uint64(b[end:]))
		} else {
			if end+4 > int64(len(b)) {
				break
			}
			off = int64(l.bo.Uint32(b[end:]))
		}
	}
	return l
}

func (l *layout) find(d int, tag uint16) (entryLoc, bool) {
	for _, e := range l.ifds[d].entries {
		if e.tag == tag {
			return e, true
		}
	}
	return entryLoc{}, false
}

// setScalar makes the entry a single LONG (LONG8 in BigTIFF) holding v.
func (l *layout) setScalar(b []byte, e entryLoc, v uint64) {
	if l.big {
		l.bo.PutUint16(b[e.pos+2:], 16)
		l.bo.PutUint64(b[e.pos+4:], 1)
		l.bo.PutUint64(b[e.pos+12:], v)
		return
	}
	l.bo.PutUint16(b[e.pos+2:], 4)
	l.bo.PutUint32(b[e.pos+4:], 1)
	l.bo.PutUint32(b[e.pos+8:], uint32(v))
}

// setCount rewrites an entry's count (its value stays where it was).
func (l *layout) setCount(b []byte, e entryLoc, n uint64) {
	if l.big {
		l.bo.PutUint64(b[e.pos+4:], n)
	} else {
		l.bo.PutUint32(b[e.pos+4:], uint32(n))
	}
}

// retag turns the entry into another tag holding one value.
func (l *layout) retag(b []byte, e entryLoc, tag uint16, v uint64) {
	l.bo.PutUint16(b[e.pos:], tag)
	l.setScalar(b, e, v)
}

// values returns the integer values of an entry and a setter for value i.
func (l *layout) values(b []byte, e entryLoc) ([]uint64, func(i int, v uint64)) {
	size := map[uint16]int64{3: 2, 4: 4, 16: 8}[e.typ]
	if size == 0 || e.count == 0 || e.count > 1<<20 {
		return nil, nil
	}
	inline := int64(4)
	vpos := e.pos + 8
	if l.big {
		inline, vpos = 8, e.pos+12
	}
	start := vpos
	if int64(e.count)*size > inline {
		if l.big {
			start = int64(l.bo.Uint64(b[vpos:]))
		} else {
			start = int64(l.bo.Uint32(b[vpos:]))
		}
	}
	if start < 0 || start+int64(e.count)*size > int64(len(b)) {
		return nil, nil
	}
	vals := make([]uint64, e.count)
	for i := range vals {
		p := start + int64(i)*size
		switch size {
		case 2:
			vals[i] = uint64(l.bo.Uint16(b[p:]))
		case 4:
			vals[i] = uint64(l.bo.Uint32(b[p:]))
		default:
			vals[i] = l.bo.Uint64(b[p:])
		}
	}
	set := func(i int, v uint64) {
		p := start + int64(i)*size
		switch size {
		case 2:
			l.bo.PutUint16(b[p:], uint16(v))
		case 4:
			l.bo.PutUint32(b[p:], uint32(v))
		default:
			l.bo.PutUint64(b[p:], v)
		}
	}
	return vals, set
}

func (l *layout) putOffset(b []byte, pos int64, v uint64) {
	if l.big {
		l.bo.PutUint64(b[pos:], v)
	} else {
		l.bo.PutUint32(b[pos:], uint32(v))
	}
}

// tiff adds the TIFF mutations of g.src.
func (g *gen) tiff(randomPerFile int) {
	l := parseLayout(g.src.Data)
	if len(l.ifds) == 0 {
		return
	}
	size := uint64(len(g.src.Data))
	// Mutate the first directory and the last one (the full-resolution
	// image, the smallest level or an associated image).
	dirs := []int{0}
	if n := len(l.ifds); n > 1 {
		dirs = append(dirs, n-1)
	}
	huge := []uint64{0, 100000, 1<<20 + 1, 0xFFFFFFFF}
	for _, d := range dirs {
		p := fmt.Sprintf("ifd%d-", d)
		mut := func(what string, fn func(b []byte) bool) {
			// The last directory is usually a small level or an
			// associated image, with an intact pyramid beside it: only
			// the mutations that stress it differently are kept.
			if d != 0 && !lastDirMutation(what) {
				return
			}
			b := g.clone()
			if fn(b) {
				g.add(p+what, b)
			}
		}
		scalar := func(tag uint16, v uint64) func(b []byte) bool {
			return func(b []byte) bool {
				e, ok := l.find(d, tag)
				if ok {
					l.setScalar(b, e, v)
				}
				return ok
			}
		}
		for _, v := range huge {
			mut(fmt.Sprintf("width-%d", v), scalar(tagImageWidth, v))
			mut(fmt.Sprintf("height-%d", v), scalar(tagImageLength, v))
		}
		_, tiled := l.find(d, tagTileWidth)
		_, stripped := l.find(d, tagRowsPerStrip)
		// Both sides 100000 (or 1<<20), keeping the chunk count that the
		// offsets arrays hold so that the layout still looks complete.
		for _, side := range []uint64{100000, 1 << 20} {
			mut(fmt.Sprintf("square-%d", side), func(b []byte) bool {
				ew, ok1 := l.find(d, tagImageWidth)
				eh, ok2 := l.find(d, tagImageLength)
				if !ok1 || !ok2 {
					return false
				}
				l.setScalar(b, ew, side)
				l.setScalar(b, eh, side)
				return true
			})
			if tiled {
				mut(fmt.Sprintf("square-%d-bigtiles", side), func(b []byte) bool {
					ew, _ := l.find(d, tagImageWidth)
					eh, _ := l.find(d, tagImageLength)
					etw, ok1 := l.find(d, tagTileWidth)
					eth, ok2 := l.find(d, tagTileLength)
					eo, ok3 := l.find(d, tagTileOffsets)
					if !ok1 || !ok2 || !ok3 {
						return false
					}
					// As many tiles across and down as the file stores.
					n := uint64(1)
					for n*n*4 <= eo.count {
						n *= 2
					}
					t := (side + n - 1) / n
					t = (t + 15) / 16 * 16
					l.setScalar(b, ew, side)
					l.setScalar(b, eh, side)
					l.setScalar(b, etw, t)
					l.setScalar(b, eth, t)
					return true
				})
			}
			if stripped {
				mut(fmt.Sprintf("square-%d-bigstrips", side), func(b []byte) bool {
					ew, _ := l.find(d, tagImageWidth)
					eh, _ := l.find(d, tagImageLength)
					er, _ := l.find(d, tagRowsPerStrip)
					eo, ok := l.find(d, tagStripOffsets)
					if !ok || eo.count == 0 {
						return false
					}
					l.setScalar(b, ew, side)
					l.setScalar(b, eh, side)
					l.setScalar(b, er, (side+eo.count-1)/eo.count)
					return true
				})
			}
		}
		if stripped {
			for _, v := range []uint64{0, 1, 0xFFFFFFFF} {
				mut(fmt.Sprintf("rowsperstrip-%d", v), scalar(tagRowsPerStrip, v))
			}
		}
		if tiled {
			for _, v := range []uint64{0, 16, 65536, 0xFFFFFFFF} {
				mut(fmt.Sprintf("tilewidth-%d", v), scalar(tagTileWidth, v))
				mut(fmt.Sprintf("tilelength-%d", v), scalar(tagTileLength, v))
			}
			mut("tiles-65536", func(b []byte) bool {
				return scalar(tagTileWidth, 65536)(b) && scalar(tagTileLength, 65536)(b)
			})
		}
		for _, v := range []uint64{0, 64, 65535} {
			mut(fmt.Sprintf("spp-%d", v), scalar(tagSamplesPerPixel, v))
		}
		for _, v := range []uint64{0, 12, 64} {
			mut(fmt.Sprintf("bps-%d", v), scalar(tagBitsPerSample, v))
		}
		for _, v := range []uint64{6, 7, 99, 34712} {
			mut(fmt.Sprintf("compression-%d", v), scalar(tagCompression, v))
		}
		// Old-style JPEG with huge dimensions, with and without a JPEG
		// interchange stream pointing at the start of the file.
		for _, side := range []uint64{65000, 1 << 20} {
			mut(fmt.Sprintf("ojpeg-%d", side), func(b []byte) bool {
				return scalar(tagCompression, 6)(b) && scalar(tagImageWidth, side)(b) && scalar(tagImageLength, side)(b)
			})
		}
		mut("ojpeg-ifoffset", func(b []byte) bool {
			ok := scalar(tagCompression, 6)(b)
			if e, ok2 := l.find(d, 305); ok && ok2 { // Software → JPEGInterchangeFormat
				l.retag(b, e, tagJPEGIFOffset, 8)
			}
			return ok
		})
		for _, pair := range [][2]uint16{{tagStripOffsets, tagStripByteCounts}, {tagTileOffsets, tagTileByteCounts}} {
			eo, ok1 := l.find(d, pair[0])
			ec, ok2 := l.find(d, pair[1])
			if !ok1 || !ok2 {
				continue
			}
			name := map[uint16]string{tagStripOffsets: "strip", tagTileOffsets: "tile"}[pair[0]]
			mut(name+"offsets-count1", func(b []byte) bool { l.setCount(b, eo, 1); return true })
			mut(name+"counts-count1", func(b []byte) bool { l.setCount(b, ec, 1); return true })
			mut(name+"offsets-count0", func(b []byte) bool { l.setCount(b, eo, 0); return true })
			mut(name+"offsets-counthuge", func(b []byte) bool { l.setCount(b, eo, 0x3FFFFFFF); return true })
			for _, v := range []uint64{size - 1, 0xFFFFFFF0} {
				mut(fmt.Sprintf("%soffsets-all-%d", name, v), func(b []byte) bool {
					vals, set := l.values(b, eo)
					for i := range vals {
						set(i, v)
					}
					return set != nil
				})
				mut(fmt.Sprintf("%scounts-all-%d", name, v), func(b []byte) bool {
					vals, set := l.values(b, ec)
					for i := range vals {
						set(i, v)
					}
					return set != nil
				})
			}
			mut(name+"counts-double", func(b []byte) bool {
				vals, set := l.values(b, ec)
				for i, v := range vals {
					set(i, v*2+size)
				}
				return set != nil
			})
		}
		// Directory chain: loops, out of range, huge entry counts.
		mut("next-self", func(b []byte) bool { l.putOffset(b, l.ifds[d].next, uint64(l.ifds[d].off)); return true })
		mut("next-first", func(b []byte) bool { l.putOffset(b, l.ifds[d].next, uint64(l.ifds[0].off)); return true })
		mut("next-eof", func(b []byte) bool { l.putOffset(b, l.ifds[d].next, size+8); return true })
		mut("next-mid", func(b []byte) bool { l.putOffset(b, l.ifds[d].next, size/2); return true })
		mut("entries-huge", func(b []byte) bool {
			if l.big {
				l.bo.PutUint64(b[l.ifds[d].off:], 1<<40)
			} else {
				l.bo.PutUint16(b[l.ifds[d].off:], 0xFFFF)
			}
			return true
		})
		mut("entries-0", func(b []byte) bool {
			if l.big {
				l.bo.PutUint64(b[l.ifds[d].off:], 0)
			} else {
				l.bo.PutUint16(b[l.ifds[d].off:], 0)
			}
			return true
		})
		// A SubIFD pointing back at its own directory and at the first.
		for _, target := range []string{"self", "first"} {
			mut("subifd-"+target, func(b []byte) bool {
				es := l.ifds[d].entries
				if len(es) == 0 {
					return false
				}
				e := es[len(es)-1]
				v := uint64(l.ifds[d].off)
				if target == "first" {
					v = uint64(l.ifds[0].off)
				}
				l.retag(b, e, tagSubIFDs, v)
				return true
			})
		}
	}
	mut := func(what string, fn func(b []byte)) {
		b := g.clone()
		fn(b)
		g.add(what, b)
	}
	mut("first-eof", func(b []byte) { l.putOffset(b, l.first, size+100) })
	mut("first-zero", func(b []byte) { l.putOffset(b, l.first, 0) })
	// Every directory's next pointer at the first: a long loop.
	mut("chain-loop", func(b []byte) {
		for _, d := range l.ifds {
			l.putOffset(b, d.next, uint64(l.ifds[0].off))
		}
	})
	for i := range randomPerFile {
		g.add(fmt.Sprintf("random%d", i), g.randomTIFF(l))
	}
}

// lastDirMutation reports whether a mutation is also made to the last
// directory.
func lastDirMutation(what string) bool {
	for _, p := range []string{"width-1048577", "height-1048577", "square-", "rowsperstrip-0", "tilewidth-65536",
		"tiles-65536", "next-", "subifd-", "entries-huge", "ojpeg-1048576", "stripoffsets-all-4294967280",
		"tileoffsets-all-4294967280"} {
		if strings.HasPrefix(what, p) {
			return true
		}
	}
	return false
}

// randomTIFF rewrites a few randomly chosen entries with hostile values and
// flips a few bytes in the directories.
func (g *gen) randomTIFF(l *layout) []byte {
	b := g.clone()
	vals := []uint64{0, 1, 2, 255, 256, 65535, 65536, 100000, 1 << 20, uint64(len(b)), uint64(len(b)) + 1, 0x7FFFFFFF, 0xFFFFFFFF}
	for range 1 + g.rng.Intn(4) {
		d := l.ifds[g.rng.Intn(len(l.ifds))]
		if len(d.entries) == 0 {
			continue
		}
		e := d.entries[g.rng.Intn(len(d.entries))]
		switch g.rng.Intn(3) {
		case 0:
			l.setScalar(b, e, vals[g.rng.Intn(len(vals))])
		case 1:
			l.setCount(b, e, vals[g.rng.Intn(len(vals))])
		default:
			if v, set := l.values(b, e); set != nil {
				set(g.rng.Intn(len(v)), vals[g.rng.Intn(len(vals))])
			}
		}
	}
	for range g.rng.Intn(4) {
		d := l.ifds[g.rng.Intn(len(l.ifds))]
		span := d.next - d.off
		if span > 0 {
			b[d.off+g.rng.Int63n(span)] ^= byte(1 << g.rng.Intn(8))
		}
	}
	return b
}

// dicomElem is the header of an explicit-VR little-endian element.
func dicomElem(group, elem uint16, vr string) []byte {
	b := make([]byte, 6)
	binary.LittleEndian.PutUint16(b, group)
	binary.LittleEndian.PutUint16(b[2:], elem)
	copy(b[4:], vr)
	return b
}

// findElem returns the position of the first element with that header
// after the preamble, or -1. A byte search is enough for the top-level
// attributes mutated here.
func findElem(b []byte, group, elem uint16, vr string) int {
	i := bytes.Index(b[132:], dicomElem(group, elem, vr))
	if i < 0 {
		return -1
	}
	return 132 + i
}

// setDicomUint rewrites a US or UL value in place.
func setDicomUint(b []byte, group, elem uint16, vr string, v uint32) bool {
	p := findElem(b, group, elem, vr)
	if p < 0 || p+8 > len(b) {
		return false
	}
	n := int(binary.LittleEndian.Uint16(b[p+6:]))
	if p+8+n > len(b) {
		return false
	}
	switch {
	case vr == "US" && n >= 2:
		binary.LittleEndian.PutUint16(b[p+8:], uint16(v))
	case vr == "UL" && n >= 4:
		binary.LittleEndian.PutUint32(b[p+8:], v)
	default:
		return false
	}
	return true
}

// setDicomString replaces a short string value (IS, DS, …), resizing the
// element.
func setDicomString(b []byte, group, elem uint16, vr, s string) ([]byte, bool) {
	p := findElem(b, group, elem, vr)
	if p < 0 || p+8 > len(b) {
		return nil, false
	}
	n := int(binary.LittleEndian.Uint16(b[p+6:]))
	if p+8+n > len(b) {
		return nil, false
	}
	if len(s)%2 == 1 {
		s += " "
	}
	out := append([]byte(nil), b[:p+6]...)
	out = binary.LittleEndian.AppendUint16(out, uint16(len(s)))
	out = append(out, s...)
	return append(out, b[p+8+n:]...), true
}

// dicom adds the DICOM mutations of g.src.
func (g *gen) dicom(randomPerFile int) {
	uints := []struct {
		name        string
		group, elem uint16
		vr          string
		vals        []uint32
	}{
		{"rows", 0x0028, 0x0010, "US", []uint32{0, 1, 65535}},
		{"cols", 0x0028, 0x0011, "US", []uint32{0, 1, 65535}},
		{"spp", 0x0028, 0x0002, "US", []uint32{0, 3, 4, 255}},
		{"bits", 0x0028, 0x0100, "US", []uint32{0, 1, 12, 16, 32, 64}},
		{"totalcols", 0x0048, 0x0006, "UL", []uint32{0, 1, 100000, 1 << 20, 0xFFFFFFFF}},
		{"totalrows", 0x0048, 0x0007, "UL", []uint32{0, 1, 100000, 1 << 20, 0xFFFFFFFF}},
	}
	for _, u := range uints {
		for _, v := range u.vals {
			b := g.clone()
			if setDicomUint(b, u.group, u.elem, u.vr, v) {
				g.add(fmt.Sprintf("%s-%d", u.name, v), b)
			}
		}
	}
	// Rows and columns both at the largest value: a 4-gigapixel frame.
	b := g.clone()
	if setDicomUint(b, 0x0028, 0x0010, "US", 65535) && setDicomUint(b, 0x0028, 0x0011, "US", 65535) {
		g.add("rowscols-65535", b)
	}
	b = g.clone()
	if setDicomUint(b, 0x0048, 0x0006, "UL", 100000) && setDicomUint(b, 0x0048, 0x0007, "UL", 100000) {
		g.add("total-100000", b)
	}
	for _, s := range []string{"0", "-1", "2", "1000", "100000", "2147483648", "99999999999", "x"} {
		if b, ok := setDicomString(g.src.Data, 0x0028, 0x0008, "IS", s); ok {
			g.add("frames-"+s, b)
		}
	}
	// Pixel data: a length past the end, and the value cut short.
	for _, vr := range []string{"OB", "OW"} {
		p := findElem(g.src.Data, 0x7FE0, 0x0010, vr)
		if p < 0 || p+12 > len(g.src.Data) {
			continue
		}
		for _, v := range []uint32{0, 2, 0x7FFFFFF0, uint32(len(g.src.Data))} {
			b := g.clone()
			binary.LittleEndian.PutUint32(b[p+8:], v)
			g.add(fmt.Sprintf("pixellen-%d", v), b)
		}
		g.add("pixel-cut", bytes.Clone(g.src.Data[:p+12+(len(g.src.Data)-p-12)/3]))
	}
	for i := range randomPerFile {
		b := g.clone()
		for range 1 + g.rng.Intn(8) {
			p := 132 + g.rng.Intn(len(b)-132)
			b[p] ^= byte(1 << g.rng.Intn(8))
		}
		g.add(fmt.Sprintf("random%d", i), b)
	}
}
