package encode

import (
	"encoding/binary"
	"math"
)

// To8Bit converts img to uint8 by large_image's rules (_imageToPIL): uint16
// v>>8, uint32 v>>24, int8 v+128, int16 (v+32768)>>8, int32 (v+2^31)>>24,
// floats NaN→0, clipped to [0, 255] and truncated. Images with more than 4
// bands keep the first 3. An image that needs no change is returned as is.
func To8Bit(img *Image) *Image {
	if img.Bands > 4 {
		img = selectBands(img, 3)
	}
	if img.Format == Uint8 {
		return img
	}
	n := img.Width * img.Height * img.Bands
	out := NewImage(img.Width, img.Height, img.Bands, Uint8)
	src, dst := img.Pix, out.Pix
	ne := binary.NativeEndian
	switch img.Format {
	case Int8:
		for i := range n {
			dst[i] = src[i] ^ 0x80 // two's complement v+128
		}
	case Uint16:
		for i := range n {
			dst[i] = uint8(ne.Uint16(src[2*i:]) >> 8)
		}
	case Int16:
		for i := range n {
			dst[i] = uint8((ne.Uint16(src[2*i:]) ^ 0x8000) >> 8)
		}
	case Uint32:
		for i := range n {
			dst[i] = uint8(ne.Uint32(src[4*i:]) >> 24)
		}
	case Int32:
		for i := range n {
			dst[i] = uint8((ne.Uint32(src[4*i:]) ^ 0x80000000) >> 24)
		}
	case Float32:
		for i := range n {
			dst[i] = clip8(float64(math.Float32frombits(ne.Uint32(src[4*i:]))))
		}
	case Float64:
		for i := range n {
			dst[i] = clip8(math.Float64frombits(ne.Uint64(src[8*i:])))
		}
	}
	return out
}

func clip8(v float64) uint8 {
	switch {
	case math.IsNaN(v) || v <= 0:
		return 0
	case v >= 255:
		return 255
	}
	return uint8(v)
}

// selectBands returns the first n bands of img.
func selectBands(img *Image, n int) *Image {
	if n >= img.Bands {
		return img
	}
	out := NewImage(img.Width, img.Height, n, img.Format)
	ss, ds := img.PixelSize(), out.PixelSize()
	for i, j := 0, 0; j < len(out.Pix); i, j = i+ss, j+ds {
		copy(out.Pix[j:j+ds], img.Pix[i:i+ds])
	}
	return out
}

// Crop returns a copy of the w×h area of img at (x, y), clipped to the
// image; the result is empty (0×0) when the area misses the image.
func Crop(img *Image, x, y, w, h int) *Image {
	x0, y0 := max(x, 0), max(y, 0)
	x1, y1 := min(x+w, img.Width), min(y+h, img.Height)
	if x1 <= x0 || y1 <= y0 {
		return NewImage(0, 0, img.Bands, img.Format)
	}
	out := NewImage(x1-x0, y1-y0, img.Bands, img.Format)
	ps, ss, ds := img.PixelSize(), img.Stride(), out.Stride()
	for r := range out.Height {
		copy(out.Pix[r*ds:(r+1)*ds], img.Pix[(y0+r)*ss+x0*ps:])
	}
	return out
}

// Pad returns img enlarged to w×h with the original at the top left and the
// rest filled with bg, one value per band (missing values are 0; values are
// converted to the image's format). Parts of img beyond w×h are cut off.
func Pad(img *Image, w, h int, bg []float64) *Image {
	if w <= 0 || h <= 0 {
		return NewImage(max(w, 0), max(h, 0), img.Bands, img.Format)
	}
	out := NewImage(w, h, img.Bands, img.Format)
	fillPixels(out, bg)
	cw, ch := min(w, img.Width), min(h, img.Height)
	ps, ss, ds := img.PixelSize(), img.Stride(), out.Stride()
	for r := range ch {
		copy(out.Pix[r*ds:r*ds+cw*ps], img.Pix[r*ss:r*ss+cw*ps])
	}
	return out
}

// fillPixels sets every pixel of img to bg.
func fillPixels(img *Image, bg []float64) {
	zero := true
	for _, v := range bg {
		if v != 0 {
			zero = false
		}
	}
	if zero || len(img.Pix) == 0 {
		return // NewImage is already zeroed
	}
	px := make([]byte, img.PixelSize())
	sz := img.Format.Size()
	ne := binary.NativeEndian
	for b := range img.Bands {
		var v float64
		if b < len(bg) {
			v = bg[b]
		}
		p := px[b*sz:]
		switch img.Format {
		case Uint8:
			p[0] = uint8(clampF(v, 0, math.MaxUint8))
		case Int8:
			p[0] = uint8(int8(clampF(v, math.MinInt8, math.MaxInt8)))
		case Uint16:
			ne.PutUint16(p, uint16(clampF(v, 0, math.MaxUint16)))
		case Int16:
			ne.PutUint16(p, uint16(int16(clampF(v, math.MinInt16, math.MaxInt16))))
		case Uint32:
			ne.PutUint32(p, uint32(clampF(v, 0, math.MaxUint32)))
		case Int32:
			ne.PutUint32(p, uint32(int32(clampF(v, math.MinInt32, math.MaxInt32))))
		case Float32:
			ne.PutUint32(p, math.Float32bits(float32(v)))
		case Float64:
			ne.PutUint64(p, math.Float64bits(v))
		}
	}
	copy(img.Pix, px)
	// Doubling copies fill the buffer in log(n) steps.
	for n := len(px); n < len(img.Pix); n *= 2 {
		copy(img.Pix[n:], img.Pix[:n])
	}
}

func clampF(v, lo, hi float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return math.Round(math.Max(lo, math.Min(hi, v)))
}
