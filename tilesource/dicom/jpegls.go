package dicom

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilesource/limits"
)

// A JPEG-LS (ITU-T T.87) decoder for the lossless and near-lossless
// processes DICOM uses (transfer syntaxes .80 and .81): all three
// interleave modes, default or preset (LSE id 1) coding parameters,
// 2–16 bits per sample. Mapping tables (LSE ids 2–4) are not supported;
// libvips has no JPEG-LS loader, hence this one.

var errJLS = errors.New("invalid JPEG-LS stream")

// jlsJ is the run-length order table (T.87 A.7.1.1).
var jlsJ = [32]int{0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 9, 10, 11, 12, 13, 14, 15}

type jlsParams struct {
	maxval, t1, t2, t3, reset int
}

type jlsCtx struct{ a, b, c, n int }

type jlsRunCtx struct{ a, n, nn, riType int }

// jlsBits reads the entropy-coded segment, removing stuffed bits.
type jlsBits struct {
	data  []byte
	pos   int
	acc   uint64
	nacc  int
	prevF bool
	err   error
}

func (r *jlsBits) fill() {
	for r.nacc <= 56 {
		if r.pos >= len(r.data) {
			// Past the end: feed zeros, flag the error once consumed.
			r.acc <<= 8
			r.nacc += 8
			r.pos++
			if r.pos > len(r.data)+8 {
				r.err = errJLS
			}
			continue
		}
		b := r.data[r.pos]
		if r.prevF {
			if b&0x80 != 0 { // a marker: the segment ended
				r.data = r.data[:r.pos-1]
				continue
			}
			r.acc = r.acc<<7 | uint64(b)
			r.nacc += 7
		} else {
			r.acc = r.acc<<8 | uint64(b)
			r.nacc += 8
		}
		r.prevF = b == 0xFF
		r.pos++
	}
}

func (r *jlsBits) bits(n int) int {
	if n == 0 {
		return 0
	}
	if r.nacc < n {
		r.fill()
	}
	r.nacc -= n
	return int(r.acc>>uint(r.nacc)) & (1<<uint(n) - 1)
}

func (r *jlsBits) bit() int { return r.bits(1) }

// end returns the offset just after the entropy-coded segment: the next
// marker (0xFF followed by a byte with its high bit set).
func jlsSegmentEnd(b []byte, from int) int {
	for i := from; i+1 < len(b); i++ {
		if b[i] == 0xFF && b[i+1]&0x80 != 0 {
			return i
		}
	}
	return len(b)
}

type jlsScan struct {
	w, h, nc  int
	near, ilv int
	p         jlsParams
	rng, qbpp int
	limit     int
	ctx       [365]jlsCtx
	run       [2]jlsRunCtx
	runIndex  []int // per component (line interleaved and single)
	bits      *jlsBits
	comps     []int // which components this scan codes
	stride    int
	// planesRef holds every component's samples: (h+1) rows of w+2, row 0
	// and columns 0 and w+1 being the edge samples of T.87 A.2.1.
	planesRef [][]int32
}

// decodeJPEGLS decodes a JPEG-LS stream of at most maxPixels pixels.
func decodeJPEGLS(b []byte, maxPixels int) (*encode.Image, error) {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return nil, errJLS
	}
	var (
		prec, w, h, nc int
		ids            []byte
		preset         jlsParams
		planes         [][]int32 // per component: (h+1) rows of w+2 samples
		scans          int
	)
	i := 2
	for i+4 <= len(b) {
		if b[i] != 0xFF {
			return nil, errJLS
		}
		m := b[i+1]
		if m == 0xFF {
			i++
			continue
		}
		if m == 0xD9 {
			break
		}
		l := int(binary.BigEndian.Uint16(b[i+2:]))
		if l < 2 || i+2+l > len(b) {
			return nil, errJLS
		}
		seg := b[i+4 : i+2+l]
		switch m {
		case 0xF7: // SOF55
			if len(seg) < 6 || nc != 0 {
				return nil, errJLS
			}
			prec, h, w, nc = int(seg[0]), int(binary.BigEndian.Uint16(seg[1:])), int(binary.BigEndian.Uint16(seg[3:])), int(seg[5])
			if prec < 2 || prec > 16 || w < 1 || h < 1 || w*h > maxPixels || nc < 1 || nc > 4 || len(seg) < 6+3*nc {
				return nil, fmt.Errorf("unsupported JPEG-LS frame %dx%d, %d components of %d bits", w, h, nc, prec)
			}
			// The decoder keeps every component as int32 rows.
			if err := limits.CheckDecoded("JPEG-LS frame", int64(w+2), int64(h+1), int64(nc), 4); err != nil {
				return nil, err
			}
			for c := range nc {
				ids = append(ids, seg[6+3*c])
				if seg[7+3*c] != 0x11 {
					return nil, errors.New("JPEG-LS subsampling is not supported")
				}
			}
			planes = make([][]int32, nc)
			for c := range planes {
				planes[c] = make([]int32, (w+2)*(h+1))
			}
		case 0xF8: // LSE
			if len(seg) < 1 || seg[0] != 1 || len(seg) < 11 {
				return nil, errors.New("JPEG-LS mapping tables are not supported")
			}
			preset = jlsParams{int(binary.BigEndian.Uint16(seg[1:])), int(binary.BigEndian.Uint16(seg[3:])),
				int(binary.BigEndian.Uint16(seg[5:])), int(binary.BigEndian.Uint16(seg[7:])), int(binary.BigEndian.Uint16(seg[9:]))}
		case 0xDA: // SOS
			if nc == 0 || len(seg) < 1 {
				return nil, errJLS
			}
			ns := int(seg[0])
			if ns < 1 || ns > nc || len(seg) < 1+2*ns+3 {
				return nil, errJLS
			}
			var comps []int
			for k := range ns {
				id := seg[1+2*k]
				c := -1
				for j, x := range ids {
					if x == id {
						c = j
					}
				}
				if c < 0 || seg[2+2*k] != 0 {
					return nil, errors.New("JPEG-LS mapping tables are not supported")
				}
				comps = append(comps, c)
			}
			near, ilv, pt := int(seg[1+2*ns]), int(seg[2+2*ns]), int(seg[3+2*ns])
			if pt != 0 || ilv > 2 || (ilv == 0 && ns != 1) || (ilv != 0 && ns == 1 && nc > 1) {
				return nil, errors.New("unsupported JPEG-LS scan")
			}
			s, err := newJLSScan(w, h, prec, near, ilv, preset, comps, planes)
			if err != nil {
				return nil, err
			}
			start := i + 2 + l
			end := jlsSegmentEnd(b, start)
			s.bits = &jlsBits{data: b[start:end]}
			if err := s.decode(); err != nil {
				return nil, err
			}
			scans += ns
			i = end
			continue
		}
		i += 2 + l
	}
	if nc == 0 || scans < nc {
		return nil, errJLS
	}
	f := encode.Uint8
	if prec > 8 {
		f = encode.Uint16
	}
	img := encode.NewImage(w, h, nc, f)
	for c := range nc {
		for y := range h {
			row := planes[c][(y+1)*(w+2)+1:]
			for x := range w {
				o := (y*w+x)*nc + c
				if f == encode.Uint8 {
					img.Pix[o] = byte(row[x])
				} else {
					binary.NativeEndian.PutUint16(img.Pix[2*o:], uint16(row[x]))
				}
			}
		}
	}
	return img, nil
}

func newJLSScan(w, h, prec, near, ilv int, preset jlsParams, comps []int, planes [][]int32) (*jlsScan, error) {
	s := &jlsScan{w: w, h: h, nc: len(comps), near: near, ilv: ilv, comps: comps, stride: w + 2}
	p := preset
	if p.maxval == 0 {
		p.maxval = 1<<uint(prec) - 1
	}
	if p.maxval < 1 || p.maxval >= 1<<16 || near > min(255, p.maxval/2) {
		return nil, errJLS
	}
	clamp := func(v, lo int) int {
		if v > p.maxval || v < lo {
			return lo
		}
		return v
	}
	var d1, d2, d3 int
	if p.maxval >= 128 {
		f := (min(p.maxval, 4095) + 128) / 256
		d1 = clamp(f*(3-2)+2+3*near, near+1)
		d2 = clamp(f*(7-3)+3+5*near, d1)
		d3 = clamp(f*(21-4)+4+7*near, d2)
	} else {
		f := 256 / (p.maxval + 1)
		d1 = clamp(max(2, 3/f+3*near), near+1)
		d2 = clamp(max(3, 7/f+5*near), d1)
		d3 = clamp(max(4, 21/f+7*near), d2)
	}
	if p.t1 == 0 {
		p.t1 = d1
	}
	if p.t2 == 0 {
		p.t2 = d2
	}
	if p.t3 == 0 {
		p.t3 = d3
	}
	if p.reset == 0 {
		p.reset = 64
	}
	if p.reset < 3 || p.t1 > p.t2 || p.t2 > p.t3 {
		return nil, errJLS
	}
	s.p = p
	s.rng = (p.maxval+2*near)/(2*near+1) + 1
	for s.qbpp = 0; 1<<uint(s.qbpp) < s.rng; s.qbpp++ {
	}
	bpp := 2
	for 1<<uint(bpp) < p.maxval+1 {
		bpp++
	}
	s.limit = 2 * (bpp + max(8, bpp))
	a := max(2, (s.rng+32)/64)
	for i := range s.ctx {
		s.ctx[i] = jlsCtx{a: a, n: 1}
	}
	s.run[0] = jlsRunCtx{a: a, n: 1, riType: 0}
	s.run[1] = jlsRunCtx{a: a, n: 1, riType: 1}
	s.runIndex = make([]int, len(comps))
	s.planesRef = planes
	return s, nil
}

func (s *jlsScan) plane(k int) []int32 { return s.planesRef[s.comps[k]] }

func (s *jlsScan) quant(d int) int {
	switch {
	case d <= -s.p.t3:
		return -4
	case d <= -s.p.t2:
		return -3
	case d <= -s.p.t1:
		return -2
	case d < -s.near:
		return -1
	case d <= s.near:
		return 0
	case d < s.p.t1:
		return 1
	case d < s.p.t2:
		return 2
	case d < s.p.t3:
		return 3
	}
	return 4
}

// golomb decodes a limited-length Golomb code (T.87 A.5.3).
func (s *jlsScan) golomb(k, limit int) (int, error) {
	hi := 0
	for s.bits.bit() == 0 {
		hi++
		if hi > limit || s.bits.err != nil {
			return 0, errJLS
		}
	}
	if hi >= limit-s.qbpp-1 {
		return s.bits.bits(s.qbpp) + 1, nil
	}
	return hi<<uint(k) | s.bits.bits(k), nil
}

// fix wraps and clamps a reconstructed value.
func (s *jlsScan) fix(v int) int32 {
	q := 2*s.near + 1
	if v < -s.near {
		v += s.rng * q
	} else if v > s.p.maxval+s.near {
		v -= s.rng * q
	}
	return int32(min(max(v, 0), s.p.maxval))
}

// regular decodes one sample in regular mode given its context number q
// (signed) and neighbours.
func (s *jlsScan) regular(q int, ra, rb, rc int) (int32, error) {
	sign := 1
	if q < 0 {
		q, sign = -q, -1
	}
	c := &s.ctx[q]
	px := ra + rb - rc
	if rc >= max(ra, rb) {
		px = min(ra, rb)
	} else if rc <= min(ra, rb) {
		px = max(ra, rb)
	}
	px = min(max(px+sign*c.c, 0), s.p.maxval)
	k := 0
	for c.n<<uint(k) < c.a {
		k++
		if k > 24 {
			return 0, errJLS
		}
	}
	m, err := s.golomb(k, s.limit)
	if err != nil {
		return 0, err
	}
	e := m >> 1
	if m&1 != 0 {
		e = -e - 1
	}
	if s.near == 0 && k == 0 && 2*c.b+c.n-1 < 0 {
		e = -e - 1
	}
	// Context update (A.6).
	c.b += e * (2*s.near + 1)
	c.a += abs(e)
	if c.n == s.p.reset {
		c.a >>= 1
		if c.b >= 0 {
			c.b >>= 1
		} else {
			c.b = -((1 - c.b) >> 1)
		}
		c.n >>= 1
	}
	c.n++
	if c.b <= -c.n {
		c.b += c.n
		if c.c > -128 {
			c.c--
		}
		if c.b <= -c.n {
			c.b = -c.n + 1
		}
	} else if c.b > 0 {
		c.b -= c.n
		if c.c < 127 {
			c.c++
		}
		if c.b > 0 {
			c.b = 0
		}
	}
	return s.fix(px + sign*e*(2*s.near+1)), nil
}

// interruption decodes the error of a run interruption sample.
func (s *jlsScan) interruption(rc *jlsRunCtx, runIndex int) (int, error) {
	temp := rc.a
	if rc.riType == 1 {
		temp += rc.n >> 1
	}
	k := 0
	for rc.n<<uint(k) < temp {
		k++
		if k > 24 {
			return 0, errJLS
		}
	}
	em, err := s.golomb(k, s.limit-jlsJ[runIndex]-1)
	if err != nil {
		return 0, err
	}
	t := em + rc.riType
	mp := t & 1
	e := (t + mp) / 2
	if (k != 0 || 2*rc.nn >= rc.n) == (mp == 1) {
		e = -e
	}
	if e < 0 {
		rc.nn++
	}
	rc.a += (em + 1 - rc.riType) >> 1
	if rc.n == s.p.reset {
		rc.a >>= 1
		rc.n >>= 1
		rc.nn >>= 1
	}
	rc.n++
	return e, nil
}

// runLength decodes the length of a run of at most remaining samples and
// whether it ended at the end of the line.
func (s *jlsScan) runLength(k, remaining int) (int, bool, error) {
	n := 0
	for s.bits.bit() == 1 {
		if s.bits.err != nil {
			return 0, false, errJLS
		}
		cnt := min(1<<uint(jlsJ[s.runIndex[k]]), remaining-n)
		n += cnt
		if cnt == 1<<uint(jlsJ[s.runIndex[k]]) && s.runIndex[k] < 31 {
			s.runIndex[k]++
		}
		if n == remaining {
			return n, true, nil
		}
	}
	if j := jlsJ[s.runIndex[k]]; j > 0 {
		n += s.bits.bits(j)
	}
	if n >= remaining {
		return 0, false, errJLS
	}
	return n, false, nil
}

func (s *jlsScan) decode() error {
	for y := 1; y <= s.h; y++ {
		// Edge samples: Ra of the first sample is the one above it; Rd past
		// the end repeats the last sample above.
		for k := range s.comps {
			pl := s.plane(k)
			prev, cur := pl[(y-1)*s.stride:], pl[y*s.stride:]
			cur[0] = prev[1]
			prev[s.w+1] = prev[s.w]
		}
		var err error
		if s.ilv == 2 {
			err = s.lineInterleaved2(y)
		} else {
			for k := range s.comps {
				if err = s.line(k, y); err != nil {
					break
				}
			}
		}
		if err != nil {
			return err
		}
		if s.bits.err != nil {
			return s.bits.err
		}
	}
	return nil
}

// line decodes one line of component k (interleave modes 0 and 1).
func (s *jlsScan) line(k, y int) error {
	pl := s.plane(k)
	prev, cur := pl[(y-1)*s.stride:y*s.stride], pl[y*s.stride:(y+1)*s.stride]
	for x := 1; x <= s.w; {
		ra, rb, rc, rd := int(cur[x-1]), int(prev[x]), int(prev[x-1]), int(prev[x+1])
		d1, d2, d3 := rd-rb, rb-rc, rc-ra
		if abs(d1) <= s.near && abs(d2) <= s.near && abs(d3) <= s.near {
			n, eol, err := s.runLength(k, s.w-x+1)
			if err != nil {
				return err
			}
			for i := range n {
				cur[x+i] = int32(ra)
			}
			x += n
			if eol {
				break
			}
			rb = int(prev[x])
			var v int32
			if abs(ra-rb) <= s.near {
				e, err := s.interruption(&s.run[1], s.runIndex[k])
				if err != nil {
					return err
				}
				v = s.fix(ra + e*(2*s.near+1))
			} else {
				e, err := s.interruption(&s.run[0], s.runIndex[k])
				if err != nil {
					return err
				}
				if rb < ra {
					e = -e
				}
				v = s.fix(rb + e*(2*s.near+1))
			}
			cur[x] = v
			if s.runIndex[k] > 0 {
				s.runIndex[k]--
			}
			x++
			continue
		}
		q := 81*s.quant(d1) + 9*s.quant(d2) + s.quant(d3)
		v, err := s.regular(q, ra, rb, rc)
		if err != nil {
			return err
		}
		cur[x] = v
		x++
	}
	return nil
}

// lineInterleaved2 decodes one line of all components, sample interleaved.
func (s *jlsScan) lineInterleaved2(y int) error {
	nc := len(s.comps)
	var prev, cur [4][]int32
	for k := range nc {
		pl := s.plane(k)
		prev[k], cur[k] = pl[(y-1)*s.stride:y*s.stride], pl[y*s.stride:(y+1)*s.stride]
	}
	var q [4]int
	for x := 1; x <= s.w; {
		run := true
		for k := range nc {
			ra, rb, rc, rd := int(cur[k][x-1]), int(prev[k][x]), int(prev[k][x-1]), int(prev[k][x+1])
			q[k] = 81*s.quant(rd-rb) + 9*s.quant(rb-rc) + s.quant(rc-ra)
			if q[k] != 0 {
				run = false
			}
		}
		if !run {
			for k := range nc {
				v, err := s.regular(q[k], int(cur[k][x-1]), int(prev[k][x]), int(prev[k][x-1]))
				if err != nil {
					return err
				}
				cur[k][x] = v
			}
			x++
			continue
		}
		n, eol, err := s.runLength(0, s.w-x+1)
		if err != nil {
			return err
		}
		for k := range nc {
			for i := range n {
				cur[k][x+i] = cur[k][x-1]
			}
		}
		x += n
		if eol {
			break
		}
		for k := range nc {
			ra, rb := int(cur[k][x-1]), int(prev[k][x])
			e, err := s.interruption(&s.run[0], s.runIndex[0])
			if err != nil {
				return err
			}
			if rb < ra {
				e = -e
			}
			cur[k][x] = s.fix(rb + e*(2*s.near+1))
		}
		if s.runIndex[0] > 0 {
			s.runIndex[0]--
		}
		x++
	}
	return nil
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
