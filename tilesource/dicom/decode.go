package dicom

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilesource"
)

// format returns the sample format of an instance's decoded pixels.
func (in *Instance) format() encode.Format {
	if in.BitsAllocated == 16 {
		if in.PixelRep == 1 {
			return encode.Int16
		}
		return encode.Uint16
	}
	return encode.Uint8
}

// isJPEG reports whether ts is a lossy JPEG process that libjpeg decodes.
func isJPEG(ts string) bool { return ts == tsJPEGBaseline || ts == tsJPEGExtended }

// supportedTS reports whether frames in ts can be decoded.
func supportedTS(ts string) bool {
	switch ts {
	case tsImplicitLE, tsExplicitLE, tsJPEGBaseline, tsJPEGExtended, tsJPEGLSLossles, tsJPEGLSNear,
		tsJ2KLossless, tsJ2K, tsHTJ2KLossless, tsHTJ2KRPCL, tsHTJ2K, tsRLE:
		return true
	}
	return false
}

// frameTile turns a frame's stored bytes into a tile: JPEG frames are kept
// encoded (for passthrough) with a decoder; other frames are decoded.
func (in *Instance) frameTile(data []byte, ts string) (*tilesource.Tile, error) {
	if isJPEG(ts) {
		data = in.passthroughJPEG(data)
		return &tilesource.Tile{Encoded: data, Encoding: "JPEG", Decode: func() (*encode.Image, error) {
			return encode.Decode(data, "")
		}}, nil
	}
	img, err := in.decodeFrame(data, ts)
	if err != nil {
		return nil, err
	}
	return &tilesource.Tile{Pixels: img}, nil
}

// passthroughJPEG returns a frame as a complete JPEG stream whose colours
// decode as the stream says: an RGB-coded stream (Photometric RGB, with
// neither a JFIF nor an Adobe marker) gets an Adobe APP14 transform-0
// marker so that decoders do not treat it as YCbCr. DICOM's even-length
// padding after EOI is dropped.
func (in *Instance) passthroughJPEG(data []byte) []byte {
	for len(data) > 2 && data[len(data)-1] == 0 && data[len(data)-2] != 0xFF {
		data = data[:len(data)-1]
	}
	if len(data) < 2 || data[0] != 0xFF || data[1] != 0xD8 {
		return data
	}
	if in.Photometric == "RGB" && in.Samples == 3 && !hasJFIF(data[2:]) && !encode.HasAdobe(data[2:]) {
		return encode.SpliceJPEG(nil, data, true)
	}
	return data
}

// hasJFIF reports whether the first marker segment after SOI is a JFIF
// APP0, which means YCbCr.
func hasJFIF(b []byte) bool {
	return len(b) >= 9 && b[0] == 0xFF && b[1] == 0xE0 && string(b[4:8]) == "JFIF"
}

// decodeFrame decodes a non-JPEG frame into Cols×Rows pixels.
func (in *Instance) decodeFrame(data []byte, ts string) (*encode.Image, error) {
	var img *encode.Image
	var err error
	switch ts {
	case tsImplicitLE, tsExplicitLE:
		img, err = in.decodeNative(data)
	case tsRLE:
		img, err = in.decodeRLE(data)
	case tsJPEGLSLossles, tsJPEGLSNear:
		img, err = decodeJPEGLS(data, in.Cols*in.Rows)
	case tsJ2KLossless, tsJ2K, tsHTJ2KLossless, tsHTJ2KRPCL, tsHTJ2K:
		img, err = encode.Decode(data, "")
	default:
		return nil, fmt.Errorf("unsupported transfer syntax %s", ts)
	}
	if err != nil {
		return nil, err
	}
	if img.Width > in.Cols || img.Height > in.Rows {
		img = encode.Crop(img, 0, 0, min(img.Width, in.Cols), min(img.Height, in.Rows))
	}
	if img.Format == encode.Uint16 && in.format() == encode.Int16 {
		img.Format = encode.Int16
	}
	return img, nil
}

// decodeNative reads uncompressed little-endian samples.
func (in *Instance) decodeNative(data []byte) (*encode.Image, error) {
	n := in.frameSize()
	if int64(len(data)) < n {
		return nil, errors.New("short frame")
	}
	img := encode.NewImage(in.Cols, in.Rows, in.Samples, in.format())
	bps := in.BitsAllocated / 8
	if in.Planar == 1 && in.Samples > 1 {
		plane := in.Cols * in.Rows
		for s := range in.Samples {
			for i := range plane {
				copy(img.Pix[(i*in.Samples+s)*bps:(i*in.Samples+s+1)*bps], data[(s*plane+i)*bps:])
			}
		}
	} else {
		copy(img.Pix, data[:n])
	}
	if bps == 2 && !nativeLittleEndian {
		for i := 0; i+1 < len(img.Pix); i += 2 {
			img.Pix[i], img.Pix[i+1] = img.Pix[i+1], img.Pix[i]
		}
	}
	in.toRGB(img)
	return img, nil
}

var nativeLittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// toRGB converts 8-bit YBR_FULL samples to RGB in place (uncompressed and
// RLE frames; JPEG decoders convert their own).
func (in *Instance) toRGB(img *encode.Image) {
	if in.Photometric != "YBR_FULL" || img.Bands != 3 || img.Format != encode.Uint8 {
		return
	}
	clamp := func(v float64) byte {
		if v < 0 {
			return 0
		}
		if v > 255 {
			return 255
		}
		return byte(v + 0.5)
	}
	p := img.Pix
	for i := 0; i+2 < len(p); i += 3 {
		y, cb, cr := float64(p[i]), float64(p[i+1])-128, float64(p[i+2])-128
		p[i] = clamp(y + 1.402*cr)
		p[i+1] = clamp(y - 0.344136*cb - 0.714136*cr)
		p[i+2] = clamp(y + 1.772*cb)
	}
}

// decodeRLE decodes DICOM RLE Lossless (PS3.5 annex G): a header of segment
// offsets, one PackBits segment per byte plane, most significant first.
func (in *Instance) decodeRLE(data []byte) (*encode.Image, error) {
	if len(data) < 64 {
		return nil, errors.New("short RLE frame")
	}
	le := binary.LittleEndian
	nseg := int(le.Uint32(data))
	bps := in.BitsAllocated / 8
	if nseg != in.Samples*bps {
		return nil, fmt.Errorf("RLE frame has %d segments, %d expected", nseg, in.Samples*bps)
	}
	plane := in.Cols * in.Rows
	img := encode.NewImage(in.Cols, in.Rows, in.Samples, in.format())
	for s := range nseg {
		start := int(le.Uint32(data[4+4*s:]))
		end := len(data)
		if s+1 < nseg {
			end = int(le.Uint32(data[8+4*s:]))
		}
		if start < 64 || end > len(data) || start > end {
			return nil, errors.New("bad RLE segment offsets")
		}
		seg, err := unpackBits(data[start:end], plane)
		if err != nil {
			return nil, err
		}
		sample, byteIdx := s/bps, s%bps
		// Segments go from the most significant byte; Pix is native order.
		off := bps - 1 - byteIdx
		if !nativeLittleEndian {
			off = byteIdx
		}
		for i := range plane {
			img.Pix[(i*in.Samples+sample)*bps+off] = seg[i]
		}
	}
	in.toRGB(img)
	return img, nil
}

// unpackBits decodes a PackBits run into exactly n bytes.
func unpackBits(b []byte, n int) ([]byte, error) {
	out := make([]byte, 0, n)
	for i := 0; i < len(b) && len(out) < n; {
		c := int(int8(b[i]))
		i++
		switch {
		case c >= 0:
			if i+c+1 > len(b) {
				return nil, errors.New("RLE literal overruns the segment")
			}
			out = append(out, b[i:i+c+1]...)
			i += c + 1
		case c != -128:
			if i >= len(b) {
				return nil, errors.New("RLE run overruns the segment")
			}
			out = append(out, bytes.Repeat(b[i:i+1], 1-c)...)
			i++
		}
	}
	if len(out) < n {
		return nil, errors.New("RLE segment too short")
	}
	return out[:n], nil
}
