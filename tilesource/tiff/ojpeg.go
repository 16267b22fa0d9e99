package tiff

import (
	"errors"
	"io"
)

// Old-style JPEG (compression 6) stores the quantisation and Huffman tables
// in tags and the bare scan in each chunk. libvips refuses it, so a chunk is
// rebuilt here as a baseline JPEG stream and decoded as such.

const (
	tagJPEGRestart  = 515
	tagJPEGQTables  = 519
	tagJPEGDCTables = 520
	tagJPEGACTables = 521
)

// hasOJPEGTables reports whether d carries the per-component table tags.
func hasOJPEGTables(d *dir) bool {
	n := len(d.ifd.Uints(tagJPEGQTables))
	return n > 0 && len(d.ifd.Uints(tagJPEGDCTables)) > 0 && len(d.ifd.Uints(tagJPEGACTables)) > 0 &&
		(d.spp == 1 || d.spp == 3) && d.bps == 8 && d.planar == 1
}

// buildOJPEG wraps one chunk's scan data, w×h pixels, in a JPEG stream made
// from the table tags. A chunk that already is a JPEG stream is returned.
// The stream carries an Adobe transform-0 marker so that the decoder returns
// Y, Cb and Cr untouched: libtiff converts old-style JPEG with the file's
// ReferenceBlackWhite, which a JPEG decoder would ignore.
func buildOJPEG(d *dir, r io.ReaderAt, size int64, chunk []byte, w, h int) ([]byte, error) {
	if len(chunk) >= 2 && chunk[0] == 0xFF && chunk[1] == 0xD8 {
		return chunk, nil
	}
	read := func(off uint64, n int) ([]byte, error) {
		if off > uint64(size) || uint64(n) > uint64(size)-off {
			return nil, errors.New("JPEG table outside the file")
		}
		b := make([]byte, n)
		_, err := r.ReadAt(b, int64(off))
		if err == io.EOF {
			err = nil
		}
		return b, err
	}
	pick := func(v []uint64, i int) uint64 { return v[min(i, len(v)-1)] }
	q, dc, ac := d.ifd.Uints(tagJPEGQTables), d.ifd.Uints(tagJPEGDCTables), d.ifd.Uints(tagJPEGACTables)
	nc := d.spp
	out := []byte{0xFF, 0xD8}
	if nc == 3 {
		out = append(out, 0xFF, 0xEE, 0, 14, 'A', 'd', 'o', 'b', 'e', 0, 100, 0, 0, 0, 0, 0)
	}
	seg := func(marker byte, body []byte) {
		n := len(body) + 2
		out = append(out, 0xFF, marker, byte(n>>8), byte(n))
		out = append(out, body...)
	}
	// Components that share a table offset share a table id, so that the
	// usual two-table layout stays a valid baseline stream.
	ids := func(offs []uint64) []int {
		out, seen := make([]int, nc), map[uint64]int{}
		for i := range out {
			o := pick(offs, i)
			id, ok := seen[o]
			if !ok {
				id = len(seen)
				seen[o] = id
			}
			out[i] = id
		}
		return out
	}
	qid, dcid, acid := ids(q), ids(dc), ids(ac)
	for i := 0; i < nc; i++ {
		if i > 0 && qid[i] <= qid[i-1] {
			continue
		}
		t, err := read(pick(q, i), 64)
		if err != nil {
			return nil, err
		}
		seg(0xDB, append([]byte{byte(qid[i])}, t...))
	}
	for class, offs := range [][]uint64{dc, ac} {
		tid := [][]int{dcid, acid}[class]
		for i := 0; i < nc; i++ {
			if i > 0 && tid[i] <= tid[i-1] {
				continue
			}
			counts, err := read(pick(offs, i), 16)
			if err != nil {
				return nil, err
			}
			total := 0
			for _, c := range counts {
				total += int(c)
			}
			if total > 256 {
				return nil, errors.New("bad Huffman table")
			}
			vals, err := read(pick(offs, i)+16, total)
			if err != nil {
				return nil, err
			}
			body := append([]byte{byte(class<<4 | tid[i])}, counts...)
			seg(0xC4, append(body, vals...))
		}
	}
	if ri := d.ifd.Uint(tagJPEGRestart, 0); ri > 0 && ri < 1<<16 {
		seg(0xDD, []byte{byte(ri >> 8), byte(ri)})
	}
	sh, sv := 1, 1
	if ss := d.ifd.Uints(tagYCbCrSubsampling); nc == 3 && len(ss) == 2 && ss[0] <= 4 && ss[1] <= 4 && ss[0] > 0 && ss[1] > 0 {
		sh, sv = int(ss[0]), int(ss[1])
	}
	sof := []byte{8, byte(h >> 8), byte(h), byte(w >> 8), byte(w), byte(nc)}
	sos := []byte{byte(nc)}
	for i := 0; i < nc; i++ {
		samp := byte(0x11)
		if i == 0 {
			samp = byte(sh<<4 | sv)
		}
		sof = append(sof, byte(i+1), samp, byte(qid[i]))
		sos = append(sos, byte(i+1), byte(dcid[i]<<4|acid[i]))
	}
	seg(0xC0, sof)
	seg(0xDA, append(sos, 0, 63, 0))
	out = append(out, chunk...)
	if n := len(out); out[n-2] != 0xFF || out[n-1] != 0xD9 {
		out = append(out, 0xFF, 0xD9)
	}
	return out, nil
}
