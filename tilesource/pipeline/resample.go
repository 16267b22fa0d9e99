package pipeline

// Resampling of regions, thumbnails and associated images exactly as
// large_image does it: Pillow's Image.resize (libImaging/Resample.c), a
// separable convolution whose output pixel xx is centred on input
// coordinate (xx + 0.5) · in/out, with 8-bit fixed-point accumulation.
// libvips' resize samples on another grid (its output sits a fraction of
// a pixel down-right of Pillow's), which viewers comparing both notice.

import (
	"encoding/binary"
	"math"
	"runtime"
	"sync"

	"github.com/tileserver/tileserver/encode"
)

// pilFilter is one of Pillow's resampling filters and its support radius.
type pilFilter struct {
	fn      func(x float64) float64
	support float64
}

var (
	pilLanczos = pilFilter{func(x float64) float64 {
		if -3 <= x && x < 3 {
			return sinc(x) * sinc(x/3)
		}
		return 0
	}, 3}
	pilBicubic = pilFilter{func(x float64) float64 {
		const a = -0.5
		x = math.Abs(x)
		switch {
		case x < 1:
			return ((a+2)*x-(a+3))*x*x + 1
		case x < 2:
			return (((x-5)*x+8)*x - 4) * a
		}
		return 0
	}, 2}
	pilBilinear = pilFilter{func(x float64) float64 {
		x = math.Abs(x)
		if x < 1 {
			return 1 - x
		}
		return 0
	}, 1}
)

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	x *= math.Pi
	return math.Sin(x) / x
}

// precisionBits is Pillow's fixed-point precision for 8-bit samples.
const precisionBits = 32 - 8 - 2

// pilCoeffs holds, per output position, the first input index and the
// fixed-point weights of the inputs it reads.
type pilCoeffs struct {
	start []int
	k     [][]int32
	// packable: every output's sum of 8-bit samples times its weights
	// stays within int32 (as in Pillow, which sums in 32 bits), so two
	// bands can share a 64-bit multiply-add (see packedLanes).
	packable bool
}

// precomputeCoeffs is Pillow's precompute_coeffs followed by
// normalize_coeffs_8bpc for an axis of inSize samples scaled to outSize.
func precomputeCoeffs(inSize, outSize int, f pilFilter) pilCoeffs {
	return boxCoeffs(inSize, 0, float64(inSize), outSize, f)
}

// boxCoeffs is precomputeCoeffs for the span [in0, in1) of the axis
// (Pillow's resize with a box): output xx is centred on input coordinate
// in0 + (xx + 0.5)·(in1 - in0)/outSize.
func boxCoeffs(inSize int, in0, in1 float64, outSize int, f pilFilter) pilCoeffs {
	scale := (in1 - in0) / float64(outSize)
	filterScale := max(scale, 1)
	support := f.support * filterScale
	c := pilCoeffs{start: make([]int, outSize), k: make([][]int32, outSize), packable: true}
	w := make([]float64, int(math.Ceil(support))*2+1)
	for xx := range outSize {
		center := in0 + (float64(xx)+0.5)*scale
		xmin := max(int(center-support+0.5), 0)
		xmax := min(int(center+support+0.5), inSize) - xmin
		ww := 0.0
		for x := range xmax {
			w[x] = f.fn((float64(x+xmin) - center + 0.5) / filterScale)
			ww += w[x]
		}
		k := make([]int32, xmax)
		var pos, neg int64
		for x := range xmax {
			v := w[x]
			if ww != 0 {
				v /= ww
			}
			if v < 0 {
				k[x] = int32(-0.5 + v*(1<<precisionBits))
				neg += int64(k[x])
			} else {
				k[x] = int32(0.5 + v*(1<<precisionBits))
				pos += int64(k[x])
			}
		}
		if 255*pos > math.MaxInt32 || 255*neg < math.MinInt32 {
			c.packable = false
		}
		c.start[xx], c.k[xx] = xmin, k
	}
	return c
}

// reach returns the number n of outputs that read any of the first end
// inputs, and the inputs those n read, [0, lim) (windows only move right):
// the outputs from n on read only inputs from end on.
func (c *pilCoeffs) reach(end int) (n, lim int) {
	for n < len(c.start) && c.start[n] < end {
		n++
	}
	if n == 0 {
		return 0, 0
	}
	return n, c.start[n-1] + len(c.k[n-1])
}

func clip8(v int64) uint8 {
	switch {
	case v >= 1<<precisionBits<<8:
		return 255
	case v <= 0:
		return 0
	}
	return uint8(v >> precisionBits)
}

// pilResize scales an 8-bit image of 1–4 bands to w×h as Pillow's
// Image.resize does with filter f, alpha premultiplied for the scaling as
// Pillow does for LA and RGBA. ok is false for other images.
func pilResize(img *encode.Image, w, h int, f pilFilter) (*encode.Image, bool) {
	return pilResizeBox(img, [4]float64{0, 0, float64(img.Width), float64(img.Height)}, w, h, f)
}

// pilResizeBox is pilResize of the area box (left, top, right, bottom in
// img's pixels, fractions allowed), as Pillow's Image.resize with a box.
func pilResizeBox(img *encode.Image, box [4]float64, w, h int, f pilFilter) (*encode.Image, bool) {
	if img.Format != encode.Uint8 || img.Bands < 1 || img.Bands > 4 || w <= 0 || h <= 0 ||
		img.Width <= 0 || img.Height <= 0 || !(box[0] >= 0 && box[0] < box[2] && box[2] <= float64(img.Width) &&
		box[1] >= 0 && box[1] < box[3] && box[3] <= float64(img.Height)) {
		return nil, false
	}
	// An axis is resampled unless the box spans all of it at its size.
	horizontal := img.Width != w || box[0] != 0 || box[2] != float64(w)
	vertical := img.Height != h || box[1] != 0 || box[3] != float64(h)
	if !horizontal && !vertical {
		return img, true
	}
	alpha := img.Bands == 2 || img.Bands == 4
	src := img
	if alpha {
		src = premultiply(img)
	}
	nb := src.Bands
	// Horizontal pass over the rows the vertical pass reads, then the
	// vertical pass, as Pillow's ImagingResampleInner.
	if horizontal {
		hc := boxCoeffs(src.Width, box[0], box[2], w, f)
		tmp := encode.NewImage(w, src.Height, nb, encode.Uint8)
		in := src
		packed := nb > 1 && hc.packable
		paired := hc.packable && (nb == 1 || nb == 3)
		inRows(in.Height, in.Height*w*nb*len(hc.k[len(hc.k)/2]), func(y0, y1 int) {
			var lanes packedLanes
			if packed {
				lanes = newPackedLanes(in.Width, nb)
			}
			inRow := func(y int) []uint8 { return in.Pix[y*in.Width*nb : (y+1)*in.Width*nb] }
			outRow := func(y int) []uint8 { return tmp.Pix[y*w*nb : (y+1)*w*nb] }
			y := y0
			if paired {
				pairs := newRowPairs(in.Width, nb)
				for ; y+1 < y1; y += 2 {
					r0, r1 := inRow(y), inRow(y+1)
					// A black row stays black (the rounding half never
					// reaches a level): synthesis canvases are mostly
					// such padding.
					if end := max(nonZeroEnd(r0, nb), nonZeroEnd(r1, nb)); end > 0 {
						pairs.resample(outRow(y), outRow(y+1), r0, r1, &hc, end)
					}
				}
			}
			for ; y < y1; y++ {
				row := inRow(y)
				end := nonZeroEnd(row, nb)
				if end == 0 {
					continue
				}
				out := outRow(y)
				switch {
				case nb == 1:
					resampleRow1(out, row, &hc, end)
				case packed:
					lanes.resampleRow(out, row, &hc, end)
				default:
					resampleRowN(out, row, &hc, nb, end)
				}
			}
		})
		src = tmp
	}
	if vertical {
		// Rows are accumulated whole, so the source is read in order.
		vc := boxCoeffs(src.Height, box[1], box[3], h, f)
		tmp := encode.NewImage(src.Width, h, nb, encode.Uint8)
		stride := src.Width * nb
		// Black rows add nothing to any sum.
		zero := make([]bool, src.Height)
		for y := range zero {
			zero[y] = allZero(src.Pix[y*stride : (y+1)*stride])
		}
		in := src
		inRows(h, h*stride*len(vc.k[len(vc.k)/2]), func(y0, y1 int) {
			if rows := newPackedRows(vc, stride); rows != nil {
				for yy := y0; yy < y1; yy++ {
					rows.resampleColumns(tmp.Pix[yy*stride:(yy+1)*stride], in.Pix, vc.start[yy], vc.k[yy], zero)
				}
				return
			}
			acc := make([]int64, stride)
			for yy := y0; yy < y1; yy++ {
				s0, k := vc.start[yy], vc.k[yy]
				for i := range acc {
					acc[i] = pilHalf
				}
				for y, kv := range k {
					if zero[s0+y] {
						continue
					}
					row := in.Pix[(s0+y)*stride : (s0+y+1)*stride]
					a := acc[:len(row)]
					k64 := int64(kv)
					for i, v := range row {
						a[i] += int64(v) * k64
					}
				}
				out := tmp.Pix[yy*stride : (yy+1)*stride]
				for i := range out {
					out[i] = clip8(acc[i])
				}
			}
		})
		src = tmp
	}
	if alpha {
		src = unpremultiply(src)
	}
	return src, true
}

// parallelMACs is the work (multiply-adds) of a pass from which it is
// split across the cores: a tile's resize (a few million) stays on its
// goroutine, a large region's (a 4× shrink of 2220×2967 is 120 million)
// gets every core, so on an idle machine it answers about that many times
// sooner.
const parallelMACs = 8 << 20

// inRows runs fn over [0, rows) in contiguous bands, one per core when
// the pass costs about macs multiply-adds and that is worth the
// goroutines; bands write disjoint rows of the output.
func inRows(rows, macs int, fn func(y0, y1 int)) {
	n := min(runtime.GOMAXPROCS(0), rows/16)
	if macs < parallelMACs || n < 2 {
		fn(0, rows)
		return
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { fn(rows*i/n, rows*(i+1)/n) })
	}
	wg.Wait()
}

// The horizontal pass, one row at a time: out[xx] is the weighted sum of
// the input pixels hc gives for it. Pixels from end on are black, so the
// outputs that read only those stay as they are (zero).
const pilHalf = 1 << (precisionBits - 1)

func resampleRow1(out, row []uint8, hc *pilCoeffs, end int) {
	for xx := range out {
		if hc.start[xx] >= end {
			return
		}
		k := hc.k[xx]
		px := row[hc.start[xx]:][:len(k)]
		a := int64(pilHalf)
		for x, kv := range k {
			a += int64(px[x]) * int64(kv)
		}
		out[xx] = clip8(a)
	}
}

// resampleRowN is the plain loop for any band count, for coefficients too
// large to pack.
func resampleRowN(out, row []uint8, hc *pilCoeffs, nb int, end int) {
	var acc [4]int64
	for xx := range len(out) / nb {
		if hc.start[xx] >= end {
			return
		}
		k := hc.k[xx]
		px := row[hc.start[xx]*nb:][:len(k)*nb]
		for b := range nb {
			acc[b] = pilHalf
		}
		for x, kv := range k {
			for b := range nb {
				acc[b] += int64(px[x*nb+b]) * int64(kv)
			}
		}
		for b := range nb {
			out[xx*nb+b] = clip8(acc[b])
		}
	}
}

// packedLanes holds a row of 2 to 4 bands with two bands to a uint64:
// band 2j in the low 32 bits of lane j, band 2j+1 (if any) in the high 32
// bits. One 64-bit multiply-add by a weight then advances both bands'
// sums: the packed sum is H·2³² + L where L and H are the two bands' true
// sums, and as both fit in int32 (pilCoeffs.packable), L is the low 32
// bits read as signed and H is (sum − L) / 2³². The horizontal pass of a
// 4× shrink is most of a region's time; this makes it about a fifth
// faster than a multiply per band. It takes rows of 2 and 4 bands, and the
// odd row left over when RGB rows go two at a time (see rowPairs).
type packedLanes struct {
	nb    int
	lanes [2][]uint64
}

func newPackedLanes(width, nb int) packedLanes {
	l := packedLanes{nb: nb}
	for j := range (nb + 1) / 2 {
		l.lanes[j] = make([]uint64, width)
	}
	return l
}

// resampleRow is the horizontal pass of one row of l.nb bands.
func (l *packedLanes) resampleRow(out, row []uint8, hc *pilCoeffs, end int) {
	nb := l.nb
	n, lim := hc.reach(end)
	if n == 0 {
		return
	}
	l.pack(row[:lim*nb])
	for xx := range n {
		s, k := hc.start[xx], hc.k[xx]
		o := out[xx*nb : xx*nb+nb]
		var a, b uint64
		if nb == 2 {
			a = dotLane(l.lanes[0][s:], k)
		} else {
			a, b = dotLanes(l.lanes[0][s:], l.lanes[1][s:], k)
		}
		o[0], o[1] = unpackLanes(a)
		if nb > 2 {
			lo, hi := unpackLanes(b)
			o[2] = lo
			if nb == 4 {
				o[3] = hi
			}
		}
	}
}

// pack fills the lanes from the pixels of row.
func (l *packedLanes) pack(row []uint8) {
	switch l.nb {
	case 2:
		packPairs(l.lanes[0], row)
	case 3:
		l0, l1 := l.lanes[0][:len(row)/3], l.lanes[1][:len(row)/3]
		for i := range l0 {
			p := row[i*3 : i*3+3 : i*3+3]
			l0[i] = uint64(p[0]) | uint64(p[1])<<32
			l1[i] = uint64(p[2])
		}
	case 4:
		l0, l1 := l.lanes[0][:len(row)/4], l.lanes[1][:len(row)/4]
		for i := range l0 {
			p := row[i*4 : i*4+4 : i*4+4]
			l0[i] = uint64(p[0]) | uint64(p[1])<<32
			l1[i] = uint64(p[2]) | uint64(p[3])<<32
		}
	}
}

// packPairs packs src two samples to a word of dst (the first in the low
// half); an odd last sample gets a word of its own.
func packPairs(dst []uint64, src []uint8) {
	pairs := dst[:len(src)/2]
	for i := range pairs {
		p := src[2*i : 2*i+2 : 2*i+2]
		pairs[i] = uint64(p[0]) | uint64(p[1])<<32
	}
	if len(src)%2 == 1 {
		dst[len(pairs)] = uint64(src[len(src)-1])
	}
}

func dotLane(w []uint64, k []int32) uint64 {
	w = w[:len(k)]
	var a uint64
	for i, kv := range k {
		a += w[i] * uint64(int64(kv))
	}
	return a
}

func dotLanes(w0, w1 []uint64, k []int32) (uint64, uint64) {
	w0, w1 = w0[:len(k)], w1[:len(k)]
	var a, b uint64
	for i, kv := range k {
		k64 := uint64(int64(kv))
		a += w0[i] * k64
		b += w1[i] * k64
	}
	return a, b
}

// unpackLanes splits a packed sum into its two bands' 8-bit results.
func unpackLanes(v uint64) (lo, hi uint8) {
	l := int64(int32(uint32(v)))
	h := (int64(v) - l) >> 32
	return clip8(l + pilHalf), clip8(h + pilHalf)
}

// rowPairs is the horizontal pass of two rows at once, for 1 or 3 bands
// (2 and 4 fill both halves of packedLanes' words already): lane b holds
// band b of the first row in the low 32 bits of each word and of the
// second row in the high 32 bits. Both rows share every output's weights
// (they depend on x only), so one 64-bit multiply-add advances two sums,
// unpacked as packedLanes' are: for RGB three multiplies per weight make
// six samples, where packedLanes makes three with two.
type rowPairs struct {
	nb    int
	lanes [3][]uint64
}

func newRowPairs(width, nb int) rowPairs {
	p := rowPairs{nb: nb}
	for b := range nb {
		p.lanes[b] = make([]uint64, width)
	}
	return p
}

// resample makes out0 and out1 from row0 and row1 (nb bands each), whose
// pixels from end on are black in both.
func (p *rowPairs) resample(out0, out1, row0, row1 []uint8, hc *pilCoeffs, end int) {
	n, lim := hc.reach(end)
	if n == 0 {
		return
	}
	switch p.nb {
	case 1:
		l := p.lanes[0][:lim]
		r0, r1 := row0[:lim], row1[:lim]
		for i := range l {
			l[i] = uint64(r0[i]) | uint64(r1[i])<<32
		}
		for xx := range n {
			out0[xx], out1[xx] = unpackLanes(dotLane(l[hc.start[xx]:], hc.k[xx]))
		}
	case 3:
		l0, l1, l2 := p.lanes[0][:lim], p.lanes[1][:lim], p.lanes[2][:lim]
		for i := range l0 {
			a := row0[i*3 : i*3+3 : i*3+3]
			b := row1[i*3 : i*3+3 : i*3+3]
			l0[i] = uint64(a[0]) | uint64(b[0])<<32
			l1[i] = uint64(a[1]) | uint64(b[1])<<32
			l2[i] = uint64(a[2]) | uint64(b[2])<<32
		}
		for xx := range n {
			s, k := hc.start[xx], hc.k[xx]
			r, g, b := dot3Lanes(l0[s:], l1[s:], l2[s:], k)
			o0, o1 := out0[xx*3:xx*3+3:xx*3+3], out1[xx*3:xx*3+3:xx*3+3]
			o0[0], o1[0] = unpackLanes(r)
			o0[1], o1[1] = unpackLanes(g)
			o0[2], o1[2] = unpackLanes(b)
		}
	}
}

func dot3Lanes(w0, w1, w2 []uint64, k []int32) (a, b, c uint64) {
	w0, w1, w2 = w0[:len(k)], w1[:len(k)], w2[:len(k)]
	for i, kv := range k {
		k64 := uint64(int64(kv))
		a += w0[i] * k64
		b += w1[i] * k64
		c += w2[i] * k64
	}
	return a, b, c
}

// packedRows is the vertical pass's view of its input: rows packed two
// samples to a uint64 (as packedLanes packs bands), each packed once and
// kept while the outputs that read it are made. Output rows read
// consecutive input rows, moving down, so a ring of as many rows as the
// longest kernel holds every row an output needs.
type packedRows struct {
	stride int
	ring   []uint64 // len(tag) rows of (stride+1)/2 words
	tag    []int    // the input row each slot holds, -1 for none
	acc    []uint64
}

// maxPackedRows bounds the ring: a tall shrink (a kernel of thousands of
// rows) takes the unpacked loop instead.
const maxPackedRows = 8 << 20

// newPackedRows returns the packed view for the vertical pass of vc over
// rows of stride samples, or nil when vc is not packable or the ring
// would be too large.
func newPackedRows(vc pilCoeffs, stride int) *packedRows {
	taps := 0
	for _, k := range vc.k {
		taps = max(taps, len(k))
	}
	words := (stride + 1) / 2
	if !vc.packable || taps == 0 || taps*words*8 > maxPackedRows {
		return nil
	}
	r := &packedRows{stride: stride, ring: make([]uint64, taps*words), tag: make([]int, taps),
		acc: make([]uint64, words)}
	for i := range r.tag {
		r.tag[i] = -1
	}
	return r
}

// row returns input row y of pix, packed.
func (r *packedRows) row(pix []uint8, y int) []uint64 {
	words := len(r.acc)
	slot := y % len(r.tag)
	packed := r.ring[slot*words : (slot+1)*words]
	if r.tag[slot] != y {
		packPairs(packed, pix[y*r.stride:(y+1)*r.stride])
		r.tag[slot] = y
	}
	return packed
}

// resampleColumns makes output row out from the rows of pix from s0 on,
// weighted by k; rows marked zero are black and add nothing.
func (r *packedRows) resampleColumns(out, pix []uint8, s0 int, k []int32, zero []bool) {
	acc := r.acc
	clear(acc)
	for y, kv := range k {
		if zero[s0+y] {
			continue
		}
		row := r.row(pix, s0+y)[:len(acc)]
		k64 := uint64(int64(kv))
		for i, v := range row {
			acc[i] += v * k64
		}
	}
	for i, v := range acc[:r.stride/2] {
		out[2*i], out[2*i+1] = unpackLanes(v)
	}
	if r.stride%2 == 1 {
		out[r.stride-1], _ = unpackLanes(acc[len(acc)-1])
	}
}

// nonZeroEnd is one past the last pixel of row (nb bytes each) that is
// not black, 0 for a black row.
func nonZeroEnd(row []byte, nb int) int {
	i := len(row)
	for i >= 8 && binary.LittleEndian.Uint64(row[i-8:i]) == 0 {
		i -= 8
	}
	for i > 0 && row[i-1] == 0 {
		i--
	}
	return (i + nb - 1) / nb
}

// allZero reports whether every byte of b is 0.
func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, v := range b {
		if v != 0 {
			return false
		}
	}
	return true
}

// premultiply is Pillow's RGBA→RGBa (and LA→La) conversion.
func premultiply(img *encode.Image) *encode.Image {
	out := encode.NewImage(img.Width, img.Height, img.Bands, encode.Uint8)
	nb := img.Bands
	for i := 0; i < len(img.Pix); i += nb {
		a := uint32(img.Pix[i+nb-1])
		for b := range nb - 1 {
			t := uint32(img.Pix[i+b])*a + 128
			out.Pix[i+b] = uint8(((t >> 8) + t) >> 8)
		}
		out.Pix[i+nb-1] = uint8(a)
	}
	return out
}

// unpremultiply is Pillow's RGBa→RGBA (and La→LA) conversion.
func unpremultiply(img *encode.Image) *encode.Image {
	nb := img.Bands
	for i := 0; i < len(img.Pix); i += nb {
		a := uint32(img.Pix[i+nb-1])
		if a == 0 || a == 255 {
			continue
		}
		for b := range nb - 1 {
			img.Pix[i+b] = uint8(min(255, 255*uint32(img.Pix[i+b])/a))
		}
	}
	return img
}
