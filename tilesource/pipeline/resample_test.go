package pipeline

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/tileserver/tileserver/encode"
)

// refResize is the convolution of pilResize written the plain way, one
// sample at a time, to check the band-specialised loops against.
func refResize(img *encode.Image, w, h int, f pilFilter) *encode.Image {
	nb := img.Bands
	hc := precomputeCoeffs(img.Width, w, f)
	tmp := encode.NewImage(w, img.Height, nb, encode.Uint8)
	for y := range img.Height {
		for xx := range w {
			for b := range nb {
				acc := int64(1 << (precisionBits - 1))
				for x, kv := range hc.k[xx] {
					acc += int64(img.Pix[(y*img.Width+hc.start[xx]+x)*nb+b]) * int64(kv)
				}
				tmp.Pix[(y*w+xx)*nb+b] = clip8(acc)
			}
		}
	}
	vc := precomputeCoeffs(img.Height, h, f)
	out := encode.NewImage(w, h, nb, encode.Uint8)
	for yy := range h {
		for i := range w * nb {
			acc := int64(1 << (precisionBits - 1))
			for y, kv := range vc.k[yy] {
				acc += int64(tmp.Pix[(vc.start[yy]+y)*w*nb+i]) * int64(kv)
			}
			out.Pix[yy*w*nb+i] = clip8(acc)
		}
	}
	return out
}

// lopsided is a filter no Pillow resize uses, with weights large enough
// that their sums leave int32: pilResize must then take its unpacked
// loops.
var lopsided = pilFilter{func(x float64) float64 {
	if x < 0 {
		return 3
	}
	return -2
}, 1}

// The fast loops give exactly the plain convolution's samples, for every
// band count (those with alpha premultiplied, as Pillow does), shrinking
// and growing, with every filter, on one core or split across them, on
// noise and on the patterns that drive the sums to their extremes.
func TestPilResizeMatchesPlainConvolution(t *testing.T) {
	if precomputeCoeffs(10, 17, lopsided).packable {
		t.Fatal("lopsided weights are packable: the unpacked loops go untested")
	}
	if !precomputeCoeffs(2220, 555, pilLanczos).packable || !precomputeCoeffs(40, 97, pilBicubic).packable {
		t.Fatal("Pillow's filters are not packable")
	}
	if newPackedRows(precomputeCoeffs(4000, 20, pilLanczos), 600*3) != nil {
		t.Fatal("a 200× vertical shrink of 600 RGB pixels packs its rows: the unpacked loop goes untested")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	// Each fill gives a sample from its pixel's column; in a fixed order,
	// so that the noise is the same on every run.
	fills := []struct {
		name string
		at   func(x int) uint8
	}{
		{"noise", func(int) uint8 { return uint8(rng.IntN(256)) }},
		{"white", func(int) uint8 { return 255 }},
		// Stripes a few pixels wide put white under the negative lobes
		// of some outputs and under the positive ones of others.
		{"stripes", func(x int) uint8 { return uint8(255 * (x / 3 % 2)) }},
	}
	for _, nb := range []int{1, 2, 3, 4} {
		for _, c := range []struct {
			w, h, ow, oh int
			f            pilFilter
		}{
			{97, 61, 23, 15, pilLanczos}, {40, 33, 97, 80, pilBicubic}, {64, 64, 17, 64, pilBilinear},
			{5, 3, 2, 7, pilLanczos}, {300, 200, 75, 50, pilLanczos}, {10, 12, 17, 5, lopsided},
			// Passes large enough to be split across the cores; the
			// second's odd band leaves a row out of the row pairs.
			{1200, 900, 300, 225, pilLanczos}, {1201, 901, 300, 225, pilLanczos},
			{400, 300, 1500, 1200, pilBicubic},
			// A kernel too tall for the packed rows' ring (3 bands and up).
			{600, 4000, 600, 20, pilLanczos},
		} {
			big := c.w*c.h > 300*200
			// Under -short (the race detector's run, where the plain
			// convolution is ten times slower) the passes split across
			// the cores are compared for RGB only: the split and its
			// goroutines are the same for every band count.
			if big && nb != 3 && testing.Short() {
				continue
			}
			for _, fill := range fills {
				if fill.name != "noise" && big {
					continue
				}
				img := encode.NewImage(c.w, c.h, nb, encode.Uint8)
				for i := range img.Pix {
					img.Pix[i] = fill.at(i / nb % c.w)
				}
				// Black rows (skipped by the passes) in the lower half, as
				// on a synthesis canvas.
				for y := c.h / 2; y < c.h; y += 2 {
					clear(img.Pix[y*c.w*nb : (y+1)*c.w*nb])
				}
				// Rows black from some column on.
				for y := 1; y < c.h/2; y += 3 {
					clear(img.Pix[(y*c.w+y%c.w)*nb : (y+1)*c.w*nb])
				}
				got, ok := pilResize(img, c.ow, c.oh, c.f)
				if !ok {
					t.Fatalf("%d bands %+v: not resized", nb, c)
				}
				var want *encode.Image
				if nb == 2 || nb == 4 {
					want = unpremultiply(refResize(premultiply(img), c.ow, c.oh, c.f))
				} else {
					want = refResize(img, c.ow, c.oh, c.f)
				}
				if got.Width != c.ow || got.Height != c.oh || !bytes.Equal(got.Pix, want.Pix) {
					t.Errorf("%d bands %dx%d→%dx%d %s: differs from the plain convolution", nb, c.w, c.h, c.ow, c.oh, fill.name)
				}
			}
		}
	}
}

// BenchmarkPilResize is the 4× LANCZOS shrink of a region at 5× of a 20×
// slide (2220×2967 RGB to 555×742).
func BenchmarkPilResize(b *testing.B) {
	img := encode.NewImage(2220, 2967, 3, encode.Uint8)
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	for b.Loop() {
		pilResize(img, 555, 742, pilLanczos)
	}
}
