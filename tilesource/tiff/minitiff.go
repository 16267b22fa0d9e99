package tiff

import (
	"encoding/binary"
	"errors"
	"sort"
)

// copiedTags are the tags that describe how stored samples decode; they are
// copied verbatim into a mini-TIFF.
var copiedTags = []uint16{
	tagBitsPerSample, tagPhotometric, tagFillOrder, tagPredictor, tagColorMap,
	tagInkSet, tagExtraSamples, tagSampleFormat, tagJPEGTables, tagYCbCrCoeffs,
	tagYCbCrSubsampling, tagYCbCrPositioning, tagRefBlackWhite,
}

// miniEntry is one tag of a mini-TIFF being written.
type miniEntry struct {
	tag, typ uint16
	count    uint32
	data     []byte
}

// buildMiniTIFF writes a classic TIFF, in the source's byte order, with one
// directory of w×h pixels whose data are the given chunks: tiles of cw×ch
// when tiled, else strips of ch rows, in the source's chunk order. libvips
// can then decode one stored chunk (w = cw, h = ch) or a whole small
// directory without reading the rest of the file.
func buildMiniTIFF(d *dir, bo binary.ByteOrder, w, h, cw, ch int, tiled bool, chunks [][]byte) ([]byte, error) {
	total := 0
	for _, c := range chunks {
		total += len(c)
	}
	if total > maxChunkBytes*4 {
		return nil, errors.New("chunk too large")
	}
	u16 := func(v ...uint16) []byte {
		b := make([]byte, 2*len(v))
		for i, x := range v {
			bo.PutUint16(b[2*i:], x)
		}
		return b
	}
	u32 := func(v ...uint32) []byte {
		b := make([]byte, 4*len(v))
		for i, x := range v {
			bo.PutUint32(b[4*i:], x)
		}
		return b
	}
	// Data first, right after the 8-byte header.
	offs := make([]uint32, len(chunks))
	lens := make([]uint32, len(chunks))
	pos := uint32(8)
	for i, c := range chunks {
		offs[i], lens[i] = pos, uint32(len(c))
		pos += uint32(len(c))
		pos += pos & 1 // word alignment
	}
	ents := []miniEntry{
		{tagImageWidth, typeLong, 1, u32(uint32(w))},
		{tagImageLength, typeLong, 1, u32(uint32(h))},
		{tagCompression, typeShort, 1, u16(uint16(d.compression))},
		{tagSamplesPerPixel, typeShort, 1, u16(uint16(d.spp))},
		{tagPlanarConfig, typeShort, 1, u16(uint16(d.planar))},
	}
	n := uint32(len(chunks))
	if tiled {
		ents = append(ents,
			miniEntry{tagTileWidth, typeLong, 1, u32(uint32(cw))},
			miniEntry{tagTileLength, typeLong, 1, u32(uint32(ch))},
			miniEntry{tagTileOffsets, typeLong, n, u32(offs...)},
			miniEntry{tagTileByteCounts, typeLong, n, u32(lens...)})
	} else {
		ents = append(ents,
			miniEntry{tagRowsPerStrip, typeLong, 1, u32(uint32(ch))},
			miniEntry{tagStripOffsets, typeLong, n, u32(offs...)},
			miniEntry{tagStripByteCounts, typeLong, n, u32(lens...)})
	}
	for _, t := range copiedTags {
		e := d.ifd.Entries[t]
		if e == nil {
			continue
		}
		switch e.Type {
		case typeLong8, typeSLong8, typeIFD8:
			vals := e.Uints()
			v32 := make([]uint32, len(vals))
			for i, v := range vals {
				v32[i] = uint32(v)
			}
			ents = append(ents, miniEntry{t, typeLong, uint32(len(v32)), u32(v32...)})
		default:
			ents = append(ents, miniEntry{t, e.Type, uint32(e.Count), e.Data})
		}
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].tag < ents[j].tag })

	ifdOff := pos
	extra := ifdOff + 2 + uint32(len(ents))*12 + 4
	size := extra
	for _, e := range ents {
		if len(e.data) > 4 {
			size += uint32(len(e.data)) + uint32(len(e.data)&1)
		}
	}
	out := make([]byte, size)
	if bo == binary.BigEndian {
		copy(out, "MM")
	} else {
		copy(out, "II")
	}
	bo.PutUint16(out[2:], 42)
	bo.PutUint32(out[4:], ifdOff)
	for i, c := range chunks {
		copy(out[offs[i]:], c)
	}
	p := ifdOff
	bo.PutUint16(out[p:], uint16(len(ents)))
	p += 2
	for _, e := range ents {
		bo.PutUint16(out[p:], e.tag)
		bo.PutUint16(out[p+2:], e.typ)
		bo.PutUint32(out[p+4:], e.count)
		if len(e.data) <= 4 {
			copy(out[p+8:p+12], e.data)
		} else {
			bo.PutUint32(out[p+8:], extra)
			copy(out[extra:], e.data)
			extra += uint32(len(e.data)) + uint32(len(e.data)&1)
		}
		p += 12
	}
	// next IFD offset stays 0
	return out, nil
}
