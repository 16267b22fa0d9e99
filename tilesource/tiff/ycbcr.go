package tiff

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"math"

	"golang.org/x/image/tiff/lzw"

	"github.com/tileserver/tileserver/encode"
)

// libvips' TIFF loader refuses subsampled YCbCr unless it is JPEG coded, so
// such chunks (rare; libtiff's test images have them) are decoded here.

// subsampledYCbCr reports whether d holds chroma-subsampled YCbCr samples
// that are not JPEG coded.
func subsampledYCbCr(d *dir) bool {
	if d.photometric != photoYCbCr || d.compression == compJPEG || d.compression == compOJPEG {
		return false
	}
	ss := d.ifd.Uints(tagYCbCrSubsampling)
	return len(ss) == 2 && (ss[0] != 1 || ss[1] != 1)
}

// checkYCbCr rejects subsampled layouts decodeYCbCr cannot handle.
func checkYCbCr(d *dir) error {
	ss := d.ifd.Uints(tagYCbCrSubsampling)
	okSS := func(v uint64) bool { return v == 1 || v == 2 || v == 4 }
	switch {
	case len(ss) != 2:
		return errors.New("missing YCbCr subsampling")
	case d.compression != compNone && d.compression != compLZW && d.compression != compDeflate &&
		d.compression != compDeflateZ && d.compression != compPackBits:
		return fmt.Errorf("unsupported subsampled YCbCr with compression %d", d.compression)
	case d.bps != 8 || d.spp != 3 || d.planar != 1 || !okSS(ss[0]) || !okSS(ss[1]):
		return errors.New("unsupported subsampled YCbCr layout")
	case d.ifd.Uint(tagPredictor, 1) != 1:
		return errors.New("unsupported predictor with subsampled YCbCr")
	}
	return nil
}

// decompress undoes the chunk's lossless compression.
func decompress(d *dir, b []byte, limit int) ([]byte, error) {
	var r io.Reader
	switch d.compression {
	case compNone:
		return b, nil
	case compLZW:
		rc := lzw.NewReader(bytes.NewReader(b), lzw.MSB, 8)
		defer rc.Close()
		r = rc
	case compDeflate, compDeflateZ:
		zr, err := zlib.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		r = zr
	case compPackBits:
		return unpackBits(b, limit), nil
	default:
		return nil, fmt.Errorf("compression %d", d.compression)
	}
	out, err := io.ReadAll(io.LimitReader(r, int64(limit)))
	if err != nil && len(out) < limit {
		return nil, err
	}
	return out, nil
}

// unpackBits decodes PackBits data, stopping at limit bytes.
func unpackBits(b []byte, limit int) []byte {
	out := make([]byte, 0, limit)
	for i := 0; i < len(b) && len(out) < limit; {
		n := int(int8(b[i]))
		i++
		switch {
		case n >= 0:
			end := min(i+n+1, len(b))
			out = append(out, b[i:end]...)
			i = end
		case n != -128 && i < len(b):
			for k := 0; k < 1-n; k++ {
				out = append(out, b[i])
			}
			i++
		}
	}
	return out
}

// decodeYCbCr converts one chunk of w×h subsampled YCbCr pixels to RGB
// following TIFF 6.0 (data units of sh×sv luma samples then Cb and Cr;
// YCbCrCoefficients and ReferenceBlackWhite as libtiff applies them).
func decodeYCbCr(d *dir, chunk []byte, w, h int) (*encode.Image, error) {
	if err := checkYCbCr(d); err != nil {
		return nil, err
	}
	ss := d.ifd.Uints(tagYCbCrSubsampling)
	sh, sv := int(ss[0]), int(ss[1])
	bw, bh := (w+sh-1)/sh, (h+sv-1)/sv
	unit := sh*sv + 2
	need := bw * bh * unit
	raw, err := decompress(d, chunk, need)
	if err != nil {
		return nil, err
	}
	if len(raw) < need {
		return nil, fmt.Errorf("chunk holds %d of %d bytes", len(raw), need)
	}
	conv := ycbcrConverter(d)
	img := encode.NewImage(w, h, 3, encode.Uint8)
	for by := 0; by < bh; by++ {
		for bx := 0; bx < bw; bx++ {
			u := raw[(by*bw+bx)*unit:]
			cb, cr := u[sh*sv], u[sh*sv+1]
			for j := 0; j < sv; j++ {
				y := by*sv + j
				if y >= h {
					break
				}
				for i := 0; i < sh; i++ {
					x := bx*sh + i
					if x >= w {
						break
					}
					conv(img.Pix[(y*w+x)*3:], u[j*sh+i], cb, cr)
				}
			}
		}
	}
	return img, nil
}

// ycbcrConverter returns a function that writes the RGB of one YCbCr sample
// into p[0:3], with the directory's YCbCrCoefficients and
// ReferenceBlackWhite applied as libtiff does.
func ycbcrConverter(d *dir) func(p []byte, y, cb, cr byte) {
	lr, lg, lb := 0.299, 0.587, 0.114
	if c := d.ifd.Entries[tagYCbCrCoeffs].Floats(); len(c) == 3 && c[1] != 0 {
		lr, lg, lb = c[0], c[1], c[2]
	}
	ref := []float64{0, 255, 128, 255, 128, 255}
	if r := d.ifd.Entries[tagRefBlackWhite].Floats(); len(r) == 6 {
		ref = r
	}
	scale := func(v byte, black, white, rng float64) float64 {
		if white == black {
			white = black + 1
		}
		return (float64(v) - black) * rng / (white - black)
	}
	clamp := func(v float64) byte { return byte(math.Max(0, math.Min(255, math.Round(v)))) }
	return func(p []byte, y, cb, cr byte) {
		yy := scale(y, ref[0], ref[1], 255)
		fb := scale(cb, ref[2], ref[3], 127)
		fr := scale(cr, ref[4], ref[5], 127)
		r := yy + fr*(2-2*lr)
		b := yy + fb*(2-2*lb)
		g := (yy - lb*b - lr*r) / lg
		p[0], p[1], p[2] = clamp(r), clamp(g), clamp(b)
	}
}
