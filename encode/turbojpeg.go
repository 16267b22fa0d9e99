package encode

// JPEG decoding with DCT scaling and JPEG encoding through libjpeg-turbo's
// TurboJPEG API: for 8-bit grey and RGB tiles it does in one library call
// what a libvips pipeline does with thread hand-offs and per-image
// set-up, which dominate at tile sizes (see BenchmarkSynthesisTurbo).

/*
#cgo pkg-config: libturbojpeg
#include <stdlib.h>
#include <turbojpeg.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/tileserver/tileserver/tilesource/limits"
)

// ErrTurboUnsupported is returned for JPEG data or images TurboJPEG is not
// used for here (CMYK/YCCK JPEG, not 1 or 3 bands, not 8-bit); callers
// fall back to libvips.
var ErrTurboUnsupported = errors.New("encode: not a grey or RGB 8-bit JPEG")

// handlePool keeps a few TurboJPEG handles per direction: creating one
// allocates libjpeg's structures, which costs more than a small decode.
type handlePool struct {
	free chan C.tjhandle
	init func() C.tjhandle
}

func newHandlePool(init func() C.tjhandle) *handlePool {
	return &handlePool{free: make(chan C.tjhandle, 2*runtime.GOMAXPROCS(0)+2), init: init}
}

func (p *handlePool) get() (C.tjhandle, error) {
	select {
	case h := <-p.free:
		return h, nil
	default:
	}
	h := p.init()
	if h == nil {
		return nil, errors.New("encode: TurboJPEG initialisation failed")
	}
	return h, nil
}

// put returns h to the pool, or destroys it when the call that used it
// failed: libjpeg leaves a handle whose read stopped part-way in that
// state, and every later header read on it fails (a damaged tile would
// otherwise break the decoding of good ones).
func (p *handlePool) put(h C.tjhandle, failed bool) {
	if !failed {
		select {
		case p.free <- h:
			return
		default:
		}
	}
	C.tjDestroy(h)
}

var (
	decompressors = newHandlePool(func() C.tjhandle { return C.tjInitDecompress() })
	compressors   = newHandlePool(func() C.tjhandle { return C.tjInitCompress() })
)

func turboError(h C.tjhandle, what string) error {
	return fmt.Errorf("encode: TurboJPEG %s: %s", what, C.GoString(C.tjGetErrorStr2(h)))
}

// JPEGScaledSize returns the size of a JPEG stream decoded at 1/denom
// (denom 1, 2, 4 or 8, libjpeg's DCT scaling: ceil(size/denom)) and its
// number of bands, without decoding it.
func JPEGScaledSize(data []byte, denom int) (w, h, bands int, err error) {
	if denom != 1 && denom != 2 && denom != 4 && denom != 8 {
		return 0, 0, 0, ErrTurboUnsupported
	}
	cw, ch, cs, err := jpegHeader(data)
	if err != nil {
		return 0, 0, 0, err
	}
	switch cs {
	case C.TJCS_GRAY:
		bands = 1
	case C.TJCS_RGB, C.TJCS_YCbCr:
		bands = 3
	default:
		return 0, 0, 0, ErrTurboUnsupported
	}
	return (cw + denom - 1) / denom, (ch + denom - 1) / denom, bands, nil
}

// CheckJPEGHeader reads a JPEG stream's markers up to its first scan as
// libjpeg does before decoding (tables, frame header, their lengths),
// without decoding it: a stream it refuses cannot be decoded by a viewer
// either. libjpeg-turbo 2.1 also refuses some valid streams (sampling
// factors it has no name for), so a refusal means "decode to find out",
// not "damaged". A header libjpeg accepted before is not read again (see
// knownHeaders).
func CheckJPEGHeader(data []byte) error {
	n := jpegHeaderLen(data)
	remember := n > 0 && n <= maxKnownHeaderBytes
	if remember && knownHeaders.has(data[:n]) {
		return nil
	}
	_, _, _, err := jpegHeader(data)
	if err == nil && remember {
		knownHeaders.add(data[:n])
	}
	return err
}

// jpegHeader is TurboJPEG's header read: the image size and colour space.
func jpegHeader(data []byte) (w, h int, cs C.int, err error) {
	if len(data) == 0 {
		return 0, 0, 0, ErrTurboUnsupported
	}
	hd, err := decompressors.get()
	if err != nil {
		return 0, 0, 0, err
	}
	var cw, ch, sub C.int
	failed := C.tjDecompressHeader3(hd, (*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)), &cw, &ch, &sub, &cs) != 0
	if failed {
		err = turboError(hd, "header")
	}
	decompressors.put(hd, failed)
	return int(cw), int(ch), cs, err
}

// DecodeJPEGInto decodes a JPEG stream at 1/denom of its size (DCT
// scaling: denom 1, 2, 4 or 8) straight into dst at (x, y), without an
// intermediate image. dst must be 8-bit with the stream's band count (1
// for grey, 3 for colour) and have room for the scaled image at (x, y).
// ErrTurboUnsupported means the caller should decode another way.
func DecodeJPEGInto(data []byte, denom int, dst *Image, x, y int) error {
	w, h, bands, err := JPEGScaledSize(data, denom)
	if err != nil {
		return err
	}
	if dst.Format != Uint8 || dst.Bands != bands || x < 0 || y < 0 || x+w > dst.Width || y+h > dst.Height {
		return ErrTurboUnsupported
	}
	return decompress(data, w, h, dst, x, y)
}

// decompress decodes data, whose scaled size w×h (and band count, that of
// dst) its header gave, into dst at (x, y).
func decompress(data []byte, w, h int, dst *Image, x, y int) error {
	bands := dst.Bands
	pf := C.int(C.TJPF_RGB)
	if bands == 1 {
		pf = C.TJPF_GRAY
	}
	hd, err := decompressors.get()
	if err != nil {
		return err
	}
	off := y*dst.Stride() + x*bands
	failed := C.tjDecompress2(hd, (*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)),
		(*C.uchar)(unsafe.Pointer(&dst.Pix[off])), C.int(w), C.int(dst.Stride()), C.int(h), pf, 0) != 0
	if failed {
		err = turboError(hd, "decode")
	}
	decompressors.put(hd, failed)
	return err
}

// decodeJPEGTurbo decodes a whole 8-bit grey or colour JPEG stream with
// libjpeg's defaults (accurate integer IDCT, fancy upsampling), as libvips'
// JPEG loader does, so the pixels are the same. Streams that decode with a
// warning fail here, so that the caller falls back to libvips' handling.
func decodeJPEGTurbo(data []byte) (*Image, error) {
	w, h, bands, err := JPEGScaledSize(data, 1)
	if err != nil {
		return nil, err
	}
	if err := limits.CheckDecoded("decoded image", int64(w), int64(h), int64(bands), 1); err != nil {
		return nil, err
	}
	img := NewImage(w, h, bands, Uint8)
	if err := decompress(data, w, h, img, 0, 0); err != nil {
		return nil, err
	}
	return img, nil
}

// EncodeJPEGTurbo encodes an 8-bit grey or RGB image as baseline JPEG at
// the given quality (1–100) and chroma subsampling (0 = 4:4:4, 1 = 4:2:2,
// 2 = 4:2:0; ignored for grey). It uses libjpeg's accurate integer DCT
// (TurboJPEG's default is the fast one), as Pillow does: the same pixels
// give the same bytes as large_image's encoder.
func EncodeJPEGTurbo(img *Image, quality, subsampling int) ([]byte, error) {
	if img.Format != Uint8 || (img.Bands != 1 && img.Bands != 3) || img.Width <= 0 || img.Height <= 0 ||
		len(img.Pix) < img.Height*img.Stride() {
		return nil, ErrTurboUnsupported
	}
	pf, samp := C.int(C.TJPF_RGB), C.int(C.TJSAMP_444)
	switch {
	case img.Bands == 1:
		pf, samp = C.TJPF_GRAY, C.TJSAMP_GRAY
	case subsampling == 1:
		samp = C.TJSAMP_422
	case subsampling == 2:
		samp = C.TJSAMP_420
	}
	hc, err := compressors.get()
	if err != nil {
		return nil, err
	}
	var out *C.uchar
	var size C.ulong
	if C.tjCompress2(hc, (*C.uchar)(unsafe.Pointer(&img.Pix[0])), C.int(img.Width), C.int(img.Stride()),
		C.int(img.Height), pf, &out, &size, samp, C.int(quality), C.TJFLAG_ACCURATEDCT) != 0 {
		if out != nil {
			C.tjFree(out)
		}
		err := turboError(hc, "encode")
		compressors.put(hc, true)
		return nil, err
	}
	compressors.put(hc, false)
	defer C.tjFree(out)
	return C.GoBytes(unsafe.Pointer(out), C.int(size)), nil
}
