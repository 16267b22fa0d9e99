package encode

// JPEG streams whose components are no colour space libjpeg knows — two
// components, grey and alpha, in a TIFF with two samples per pixel — are
// decoded through libjpeg's own API without colour conversion, component
// for component, as libtiff's JPEG codec reads them for large_image.
// Neither TurboJPEG nor libvips' loader takes them.

/*
#cgo pkg-config: libjpeg
#include <stdio.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>

typedef struct {
	struct jpeg_error_mgr pub;
	jmp_buf jump;
	char message[JMSG_LENGTH_MAX];
} rawError;

static void rawErrorExit(j_common_ptr c) {
	rawError *e = (rawError *)c->err;
	(*c->err->format_message)(c, e->message);
	longjmp(e->jump, 1);
}

static void rawSilence(j_common_ptr c) { (void)c; }

// rawDecode reads the header of buf and, when the stream's colour space is
// unknown to libjpeg and dst is not NULL, decodes it into dst (w*h*n bytes,
// rows packed; dstLen bytes available). It returns 0 and sets *w, *h, *n
// and *known (1 when the colour space is one libjpeg converts, in which
// case nothing is decoded), or -1 with message set.
static int rawDecode(const unsigned char *buf, unsigned long len, unsigned char *dst, size_t dstLen,
		int *w, int *h, int *n, int *known, char *message) {
	struct jpeg_decompress_struct cinfo;
	rawError err;
	cinfo.err = jpeg_std_error(&err.pub);
	err.pub.error_exit = rawErrorExit;
	err.pub.output_message = rawSilence;
	if (setjmp(err.jump)) {
		jpeg_destroy_decompress(&cinfo);
		strncpy(message, err.message, JMSG_LENGTH_MAX);
		return -1;
	}
	jpeg_create_decompress(&cinfo);
	jpeg_mem_src(&cinfo, buf, len);
	jpeg_read_header(&cinfo, TRUE);
	*w = (int)cinfo.image_width;
	*h = (int)cinfo.image_height;
	*n = cinfo.num_components;
	*known = cinfo.jpeg_color_space != JCS_UNKNOWN;
	if (*known || dst == NULL) {
		jpeg_destroy_decompress(&cinfo);
		return 0;
	}
	cinfo.out_color_space = JCS_UNKNOWN;
	jpeg_start_decompress(&cinfo);
	if ((size_t)cinfo.output_width * cinfo.output_height * cinfo.output_components > dstLen) {
		jpeg_destroy_decompress(&cinfo);
		strncpy(message, "output larger than the buffer", JMSG_LENGTH_MAX);
		return -1;
	}
	while (cinfo.output_scanline < cinfo.output_height) {
		JSAMPROW row = dst + (size_t)cinfo.output_scanline * cinfo.output_width * cinfo.output_components;
		jpeg_read_scanlines(&cinfo, &row, 1);
	}
	jpeg_finish_decompress(&cinfo);
	jpeg_destroy_decompress(&cinfo);
	return 0;
}
*/
import "C"

import (
	"fmt"
	"unsafe"

	"github.com/tileserver/tileserver/tilesource/limits"
)

// decodeJPEGComponents decodes data sample for sample when its colour space
// is unknown to libjpeg (see the file comment). ok is false, with no error,
// for a stream of a colour space libjpeg knows: it is not for this path.
func decodeJPEGComponents(data []byte) (img *Image, ok bool, err error) {
	if len(data) == 0 {
		return nil, false, nil
	}
	var w, h, n, known C.int
	var msg [C.JMSG_LENGTH_MAX]C.char
	src, size := (*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data))
	if C.rawDecode(src, size, nil, 0, &w, &h, &n, &known, &msg[0]) != 0 {
		return nil, false, fmt.Errorf("encode: libjpeg header: %s", C.GoString(&msg[0]))
	}
	if known != 0 {
		return nil, false, nil
	}
	if err := limits.CheckDecoded("decoded image", int64(w), int64(h), int64(n), 1); err != nil {
		return nil, true, err
	}
	img = NewImage(int(w), int(h), int(n), Uint8)
	if len(img.Pix) == 0 {
		return nil, true, fmt.Errorf("encode: libjpeg: empty %d×%d image", w, h)
	}
	dst := (*C.uchar)(unsafe.Pointer(&img.Pix[0]))
	if C.rawDecode(src, size, dst, C.size_t(len(img.Pix)), &w, &h, &n, &known, &msg[0]) != 0 {
		return nil, true, fmt.Errorf("encode: libjpeg decode: %s", C.GoString(&msg[0]))
	}
	return img, true, nil
}
