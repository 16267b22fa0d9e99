package pipeline

// Resampling of regions, thumbnails and associated images exactly as
// large_image does it: Pillow's Image.resize (libImaging/Resample.c), a
// separable convolution whose output pixel xx is centred on input
// coordinate (xx + 0.5) · in/out, with 8-bit fixed-point accumulation.
// libvips' resize samples on another grid (its output sits a fraction of
// a pixel down-right of Pillow's), which viewers comparing both notice.

import (
	"math"

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
}

// precomputeCoeffs is Pillow's precompute_coeffs followed by
// normalize_coeffs_8bpc for an axis of inSize samples scaled to outSize.
func precomputeCoeffs(inSize, outSize int, f pilFilter) pilCoeffs {
	scale := float64(inSize) / float64(outSize)
	filterScale := max(scale, 1)
	support := f.support * filterScale
	c := pilCoeffs{start: make([]int, outSize), k: make([][]int32, outSize)}
	w := make([]float64, int(math.Ceil(support))*2+1)
	for xx := range outSize {
		center := (float64(xx) + 0.5) * scale
		xmin := max(int(center-support+0.5), 0)
		xmax := min(int(center+support+0.5), inSize) - xmin
		ww := 0.0
		for x := range xmax {
			w[x] = f.fn((float64(x+xmin) - center + 0.5) / filterScale)
			ww += w[x]
		}
		k := make([]int32, xmax)
		for x := range xmax {
			v := w[x]
			if ww != 0 {
				v /= ww
			}
			if v < 0 {
				k[x] = int32(-0.5 + v*(1<<precisionBits))
			} else {
				k[x] = int32(0.5 + v*(1<<precisionBits))
			}
		}
		c.start[xx], c.k[xx] = xmin, k
	}
	return c
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
	if img.Format != encode.Uint8 || img.Bands < 1 || img.Bands > 4 || w <= 0 || h <= 0 ||
		img.Width <= 0 || img.Height <= 0 {
		return nil, false
	}
	if img.Width == w && img.Height == h {
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
	if src.Width != w {
		hc := precomputeCoeffs(src.Width, w, f)
		tmp := encode.NewImage(w, src.Height, nb, encode.Uint8)
		var acc [4]int64
		for y := range src.Height {
			row := src.Pix[y*src.Width*nb : (y+1)*src.Width*nb]
			out := tmp.Pix[y*w*nb:]
			for xx := range w {
				s0, k := hc.start[xx], hc.k[xx]
				for b := range nb {
					acc[b] = 1 << (precisionBits - 1)
				}
				px := row[s0*nb:]
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
		src = tmp
	}
	if src.Height != h {
		// Rows are accumulated whole, so the source is read in order.
		vc := precomputeCoeffs(src.Height, h, f)
		tmp := encode.NewImage(src.Width, h, nb, encode.Uint8)
		stride := src.Width * nb
		acc := make([]int64, stride)
		for yy := range h {
			s0, k := vc.start[yy], vc.k[yy]
			for i := range acc {
				acc[i] = 1 << (precisionBits - 1)
			}
			for y, kv := range k {
				row := src.Pix[(s0+y)*stride : (s0+y+1)*stride]
				k64 := int64(kv)
				for i, v := range row {
					acc[i] += int64(v) * k64
				}
			}
			out := tmp.Pix[yy*stride : (yy+1)*stride]
			for i := range out {
				out[i] = clip8(acc[i])
			}
		}
		src = tmp
	}
	if alpha {
		src = unpremultiply(src)
	}
	return src, true
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
