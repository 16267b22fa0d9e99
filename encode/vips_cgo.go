package encode

// This is the only file that talks to libvips. Everything above it works on
// Go types; the C section is kept to the few helpers that would be awkward
// through cgo (variadic calls, region copies, error buffer handling).

/*
#cgo pkg-config: vips openslide
#include <stdlib.h>
#include <string.h>
#include <vips/vips.h>
#include <openslide.h>

static void tsv_quiet(const gchar *domain, GLogLevelFlags level,
	const gchar *msg, gpointer user) {
}

static int tsv_start(void) {
	if (VIPS_INIT("tileserver"))
		return -1;
	// Parallelism comes from goroutines; libvips' own worker threads
	// would only compete with them for the cores.
	vips_concurrency_set(1);
	// Every operation here is built once and consumed at once; the
	// operation cache would only pin memory and file handles.
	vips_cache_set_max(0);
	vips_cache_set_max_mem(0);
	vips_cache_set_max_files(0);
	// Warnings (libjpeg, libtiff, openslide) would otherwise go to stderr
	// for every odd tile; errors still come back through the error buffer.
	GLogLevelFlags quiet = G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE |
		G_LOG_LEVEL_INFO | G_LOG_LEVEL_DEBUG;
	g_log_set_handler("VIPS", quiet, tsv_quiet, NULL);
	g_log_set_handler("OpenSlide", quiet, tsv_quiet, NULL);
	g_log_set_handler("GLib-GObject", quiet, tsv_quiet, NULL);
	return 0;
}

// tsv_error returns the first line of libvips' error buffer (to be freed
// by the caller) and clears the buffer.
static char *tsv_error(void) {
	const char *buf = vips_error_buffer();
	size_t n = strcspn(buf, "\n");
	char *s = g_strndup(buf, n);
	vips_error_clear();
	return s;
}

static void tsv_unref(VipsImage *im) {
	if (im)
		g_object_unref(im);
}

// tsv_normalize turns what a loader produced into plain samples: coded
// images are decoded and CMYK becomes sRGB. It always returns a new
// reference and leaves in alone.
static VipsImage *tsv_normalize(VipsImage *in) {
	VipsImage *a, *b;

	if (vips_image_decode(in, &a))
		return NULL;
	if (a->Type == VIPS_INTERPRETATION_CMYK && a->Bands >= 4) {
		if (vips_colourspace(a, &b, VIPS_INTERPRETATION_sRGB, NULL)) {
			g_object_unref(a);
			return NULL;
		}
		g_object_unref(a);
		a = b;
	}
	if (vips_band_format_iscomplex(a->BandFmt)) {
		vips_error("encode", "complex samples are not supported");
		g_object_unref(a);
		return NULL;
	}
	return a;
}

static VipsImage *tsv_load_buffer(const void *buf, size_t len,
	const char *options) {
	VipsImage *in, *out;

	if (!(in = vips_image_new_from_buffer(buf, len, options, NULL)))
		return NULL;
	out = tsv_normalize(in);
	g_object_unref(in);
	return out;
}

static VipsImage *tsv_load_file(const char *name) {
	VipsImage *in, *out;

	if (!(in = vips_image_new_from_file(name, NULL)))
		return NULL;
	out = tsv_normalize(in);
	g_object_unref(in);
	return out;
}

// tsv_load_with runs one named loader on a file, so that a caller can ask
// for openslideload even where libvips would pick tiffload.
static VipsImage *tsv_load_with(const char *loader, const char *filename,
	const char *options) {
	VipsOperation *op;
	VipsImage *in = NULL, *out;

	if (!(op = vips_operation_new(loader)))
		return NULL;
	g_object_set(op, "filename", filename, NULL);
	if (options[0] && vips_object_set_from_string(VIPS_OBJECT(op), options)) {
		vips_object_unref_outputs(VIPS_OBJECT(op));
		g_object_unref(op);
		return NULL;
	}
	if (vips_cache_operation_buildp(&op)) {
		vips_object_unref_outputs(VIPS_OBJECT(op));
		g_object_unref(op);
		return NULL;
	}
	g_object_get(op, "out", &in, NULL);
	vips_object_unref_outputs(VIPS_OBJECT(op));
	g_object_unref(op);
	if (!in) {
		vips_error("encode", "loader produced no image");
		return NULL;
	}
	out = tsv_normalize(in);
	g_object_unref(in);
	return out;
}

// tsv_fetch computes the area in the calling thread and copies it, packed,
// to out. It works in strips so that a large area never needs a second
// full-size buffer, and it only creates a private region, so several
// threads may fetch from one image at once.
static int tsv_fetch(VipsImage *in, int left, int top, int width, int height,
	void *out) {
	VipsRegion *reg;
	size_t line = (size_t) VIPS_IMAGE_SIZEOF_PEL(in) * width;
	int strip, y, i;
	char *p = out;

	if (line == 0 || height == 0)
		return 0;
	strip = (int) ((4 << 20) / line);
	if (strip < 1)
		strip = 1;
	if (!(reg = vips_region_new(in)))
		return -1;
	for (y = 0; y < height; y += strip) {
		VipsRect r = { left, top + y, width, VIPS_MIN(strip, height - y) };

		if (vips_region_prepare(reg, &r)) {
			g_object_unref(reg);
			return -1;
		}
		for (i = 0; i < r.height; i++) {
			memcpy(p, VIPS_REGION_ADDR(reg, left, r.top + i), line);
			p += line;
		}
	}
	g_object_unref(reg);
	return 0;
}

static VipsImage *tsv_wrap(const void *pix, size_t size, int width,
	int height, int bands, int format) {
	VipsImage *m, *out;
	VipsInterpretation type;

	if (!(m = vips_image_new_from_memory(pix, size, width, height, bands,
		format)))
		return NULL;
	if (format == VIPS_FORMAT_USHORT)
		type = bands < 3 ? VIPS_INTERPRETATION_GREY16 : VIPS_INTERPRETATION_RGB16;
	else
		type = bands < 3 ? VIPS_INTERPRETATION_B_W : VIPS_INTERPRETATION_sRGB;
	if (vips_copy(m, &out, "interpretation", type, NULL)) {
		g_object_unref(m);
		return NULL;
	}
	g_object_unref(m);
	return out;
}

// tsv_save encodes packed pixels with a saver picked by suffix; the
// suffix carries the saver options, e.g. ".jpg[Q=90]".
static int tsv_save(const void *pix, size_t size, int width, int height,
	int bands, int format, const char *suffix, void **buf, size_t *len) {
	VipsImage *im;
	int r;

	if (!(im = tsv_wrap(pix, size, width, height, bands, format)))
		return -1;
	r = vips_image_write_to_buffer(im, suffix, buf, len, NULL);
	g_object_unref(im);
	return r;
}

// tsv_resize scales packed pixels to exactly nw×nh in the same format and
// writes them packed to out.
static int tsv_resize(const void *pix, size_t size, int width, int height,
	int bands, int format, int nw, int nh, int kernel, void *out) {
	VipsImage *im, *a, *b;
	int r;

	if (!(im = tsv_wrap(pix, size, width, height, bands, format)))
		return -1;
	if (vips_resize(im, &a, (double) nw / width, "vscale",
		(double) nh / height, "kernel", kernel, NULL)) {
		g_object_unref(im);
		return -1;
	}
	g_object_unref(im);
	// vips_resize rounds the output size; embed crops or extends by the
	// odd pixel so that callers always get the size they asked for.
	if (a->Xsize != nw || a->Ysize != nh) {
		if (vips_embed(a, &b, 0, 0, nw, nh, "extend", VIPS_EXTEND_COPY, NULL)) {
			g_object_unref(a);
			return -1;
		}
		g_object_unref(a);
		a = b;
	}
	if (a->BandFmt != format) {
		if (vips_cast(a, &b, format, NULL)) {
			g_object_unref(a);
			return -1;
		}
		g_object_unref(a);
		a = b;
	}
	r = tsv_fetch(a, 0, 0, nw, nh, out);
	g_object_unref(a);
	return r;
}

// tsv_osr_associated reads an OpenSlide associated image as premultiplied
// ARGB words into a g_malloc'd buffer. On failure it returns NULL and sets
// *err to a g_strdup'd message.
static uint32_t *tsv_osr_associated(const char *path, const char *name,
	int64_t max_bytes, int64_t *w, int64_t *h, char **err) {
	openslide_t *osr = openslide_open(path);
	uint32_t *buf;
	const char *e;

	*err = NULL;
	if (!osr) {
		*err = g_strdup("not a slide OpenSlide can open");
		return NULL;
	}
	if ((e = openslide_get_error(osr))) {
		*err = g_strdup(e);
		openslide_close(osr);
		return NULL;
	}
	openslide_get_associated_image_dimensions(osr, name, w, h);
	if (*w <= 0 || *h <= 0 || *w > 65535 || *h > 65535) {
		*err = g_strdup("no such associated image");
		openslide_close(osr);
		return NULL;
	}
	if (*w * *h * 4 > max_bytes) {
		*err = g_strdup("associated image larger than the decode limit");
		openslide_close(osr);
		return NULL;
	}
	if (!(buf = g_try_malloc(*w * *h * 4))) {
		*err = g_strdup("out of memory");
		openslide_close(osr);
		return NULL;
	}
	openslide_read_associated_image(osr, name, buf);
	if ((e = openslide_get_error(osr))) {
		*err = g_strdup(e);
		g_free(buf);
		openslide_close(osr);
		return NULL;
	}
	openslide_close(osr);
	return buf;
}

// tsv_icc_srgb converts packed pixels from the colour space of the ICC
// profile to sRGB with the given intent and writes them packed, in the same
// format and band layout, to out. Extra bands (alpha) pass through.
static int tsv_icc_srgb(const void *pix, size_t size, int width, int height,
	int bands, int format, const void *profile, size_t plen, int intent,
	void *out) {
	VipsImage *im, *a, *b;
	int depth = format == VIPS_FORMAT_USHORT ? 16 : 8;
	int r;

	if (!(im = tsv_wrap(pix, size, width, height, bands, format)))
		return -1;
	vips_image_set_blob_copy(im, VIPS_META_ICC_NAME, profile, plen);
	if (vips_icc_transform(im, &a, "srgb", "embedded", TRUE,
		"intent", intent, "depth", depth, NULL)) {
		g_object_unref(im);
		return -1;
	}
	g_object_unref(im);
	if (a->Xsize != width || a->Ysize != height || a->Bands != bands) {
		vips_error("encode", "colour transform changed the image shape");
		g_object_unref(a);
		return -1;
	}
	if (a->BandFmt != format) {
		if (vips_cast(a, &b, format, NULL)) {
			g_object_unref(a);
			return -1;
		}
		g_object_unref(a);
		a = b;
	}
	r = tsv_fetch(a, 0, 0, width, height, out);
	g_object_unref(a);
	return r;
}

static int tsv_get_string(VipsImage *im, const char *name, char **out) {
	if (!vips_image_get_typeof(im, name))
		return -1;
	return vips_image_get_as_string(im, name, out);
}
*/
import "C"

import (
	"errors"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/tileserver/tileserver/tilesource/limits"
)

var (
	startOnce sync.Once
	startErr  error
)

// start initialises libvips once per process.
func start() error {
	startOnce.Do(func() {
		if C.tsv_start() != 0 {
			startErr = errors.New("encode: libvips failed to start: " + lastError())
		}
	})
	return startErr
}

// lastError returns and clears libvips' first error line.
func lastError() string {
	s := C.tsv_error()
	defer C.g_free(C.gpointer(s))
	msg := strings.TrimSpace(C.GoString(s))
	if msg == "" {
		msg = "libvips error"
	}
	return msg
}

func vipsError(op string) error {
	return errors.New("encode: " + op + ": " + lastError())
}

var toVips = [...]C.VipsBandFormat{
	Uint8:   C.VIPS_FORMAT_UCHAR,
	Int8:    C.VIPS_FORMAT_CHAR,
	Uint16:  C.VIPS_FORMAT_USHORT,
	Int16:   C.VIPS_FORMAT_SHORT,
	Uint32:  C.VIPS_FORMAT_UINT,
	Int32:   C.VIPS_FORMAT_INT,
	Float32: C.VIPS_FORMAT_FLOAT,
	Float64: C.VIPS_FORMAT_DOUBLE,
}

func fromVips(f C.VipsBandFormat) (Format, bool) {
	for i, v := range toVips {
		if v == f {
			return Format(i), true
		}
	}
	return 0, false
}

func vipsFormat(f Format) (C.VipsBandFormat, bool) {
	if f < 0 || int(f) >= len(toVips) {
		return 0, false
	}
	return toVips[f], true
}

// vimage owns one reference to a libvips image.
type vimage struct {
	p *C.VipsImage
	// pin keeps Go memory that the image reads from (a Decode buffer) in
	// place until the image is released.
	pin runtime.Pinner
}

func (v *vimage) width() int  { return int(v.p.Xsize) }
func (v *vimage) height() int { return int(v.p.Ysize) }
func (v *vimage) bands() int  { return int(v.p.Bands) }

func (v *vimage) format() (Format, error) {
	f, ok := fromVips(v.p.BandFmt)
	if !ok {
		return 0, errors.New("encode: unsupported sample format")
	}
	return f, nil
}

func (v *vimage) close() {
	if v.p != nil {
		C.tsv_unref(v.p)
		v.p = nil
	}
	v.pin.Unpin()
}

// loadBuffer opens an encoded image held in data. data must not change
// until the image is closed.
func loadBuffer(data []byte, options string) (*vimage, error) {
	if err := start(); err != nil {
		return nil, err
	}
	v := &vimage{}
	v.pin.Pin(&data[0])
	copt := C.CString(options)
	defer C.free(unsafe.Pointer(copt))
	v.p = C.tsv_load_buffer(unsafe.Pointer(&data[0]), C.size_t(len(data)), copt)
	if v.p == nil {
		v.pin.Unpin()
		return nil, vipsError("decode")
	}
	return v, nil
}

// loadFile opens name through libvips' loader detection; name may carry
// options in brackets.
func loadFile(name string) (*vimage, error) {
	if err := start(); err != nil {
		return nil, err
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	p := C.tsv_load_file(cname)
	if p == nil {
		return nil, vipsError("open")
	}
	return &vimage{p: p}, nil
}

// loadWith opens path with one named loader (e.g. "openslideload").
func loadWith(loader, path, options string) (*vimage, error) {
	if err := start(); err != nil {
		return nil, err
	}
	cl, cp, co := C.CString(loader), C.CString(path), C.CString(options)
	defer C.free(unsafe.Pointer(cl))
	defer C.free(unsafe.Pointer(cp))
	defer C.free(unsafe.Pointer(co))
	p := C.tsv_load_with(cl, cp, co)
	if p == nil {
		return nil, vipsError("open")
	}
	return &vimage{p: p}, nil
}

// fetch computes the area, which must lie inside the image, into out.
func (v *vimage) fetch(x, y, w, h int, out []byte) error {
	if w <= 0 || h <= 0 {
		return nil
	}
	if C.tsv_fetch(v.p, C.int(x), C.int(y), C.int(w), C.int(h), unsafe.Pointer(&out[0])) != 0 {
		return vipsError("read")
	}
	return nil
}

// readAll decodes the whole image into a new Image.
func (v *vimage) readAll() (*Image, error) {
	f, err := v.format()
	if err != nil {
		return nil, err
	}
	// The header's size is what the file declares: check it before
	// allocating, and before libvips decodes anything.
	if err := limits.CheckDecoded("decoded image", int64(v.width()), int64(v.height()), int64(v.bands()), int64(f.Size())); err != nil {
		return nil, err
	}
	img := NewImage(v.width(), v.height(), v.bands(), f)
	if err := v.fetch(0, 0, img.Width, img.Height, img.Pix); err != nil {
		return nil, err
	}
	return img, nil
}

func (v *vimage) field(name string) (string, bool) {
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	var out *C.char
	if C.tsv_get_string(v.p, cn, &out) != 0 {
		C.vips_error_clear()
		return "", false
	}
	defer C.g_free(C.gpointer(out))
	return C.GoString(out), true
}

// blob returns a copy of a binary metadata field such as
// "icc-profile-data".
func (v *vimage) blob(name string) []byte {
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	if C.vips_image_get_typeof(v.p, cn) != C.vips_blob_get_type() {
		return nil
	}
	var data unsafe.Pointer
	var n C.size_t
	if C.vips_image_get_blob(v.p, cn, &data, &n) != 0 {
		C.vips_error_clear()
		return nil
	}
	return C.GoBytes(data, C.int(n))
}

func (v *vimage) fields() []string {
	arr := C.vips_image_get_fields(v.p)
	if arr == nil {
		return nil
	}
	defer C.g_strfreev(arr)
	var names []string
	for p := arr; *p != nil; p = (**C.char)(unsafe.Add(unsafe.Pointer(p), unsafe.Sizeof(*p))) {
		names = append(names, C.GoString(*p))
	}
	return names
}

// save encodes img, which must be non-empty, with a suffix such as
// ".jpg[Q=90]".
func save(img *Image, suffix string) ([]byte, error) {
	if err := start(); err != nil {
		return nil, err
	}
	vf, ok := vipsFormat(img.Format)
	if !ok {
		return nil, errors.New("encode: unsupported sample format")
	}
	cs := C.CString(suffix)
	defer C.free(unsafe.Pointer(cs))
	var buf unsafe.Pointer
	var n C.size_t
	if C.tsv_save(unsafe.Pointer(&img.Pix[0]), C.size_t(len(img.Pix)), C.int(img.Width), C.int(img.Height),
		C.int(img.Bands), C.int(vf), cs, &buf, &n) != 0 {
		return nil, vipsError("encode")
	}
	defer C.g_free(C.gpointer(buf))
	return C.GoBytes(buf, C.int(n)), nil
}

var vipsKernel = map[Kernel]C.VipsKernel{
	Lanczos3: C.VIPS_KERNEL_LANCZOS3,
	Cubic:    C.VIPS_KERNEL_CUBIC,
	Linear:   C.VIPS_KERNEL_LINEAR,
	Nearest:  C.VIPS_KERNEL_NEAREST,
}

// resize scales a non-empty img to w×h (both > 0).
func resize(img *Image, w, h int, k Kernel) (*Image, error) {
	if err := start(); err != nil {
		return nil, err
	}
	vf, ok := vipsFormat(img.Format)
	if !ok {
		return nil, errors.New("encode: unsupported sample format")
	}
	vk, ok := vipsKernel[k]
	if !ok {
		return nil, errors.New("encode: unknown resampling kernel")
	}
	out := NewImage(w, h, img.Bands, img.Format)
	if C.tsv_resize(unsafe.Pointer(&img.Pix[0]), C.size_t(len(img.Pix)), C.int(img.Width), C.int(img.Height),
		C.int(img.Bands), C.int(vf), C.int(w), C.int(h), C.int(vk), unsafe.Pointer(&out.Pix[0])) != 0 {
		return nil, vipsError("resize")
	}
	return out, nil
}

// ReadOpenSlideAssociated reads an associated image (label, macro,
// thumbnail…) of a slide straight through OpenSlide, as RGBA. libvips
// 8.14.1's openslideload crashes on "associated=", so it is not used for
// this.
func ReadOpenSlideAssociated(path, name string) (*Image, error) {
	cp, cn := C.CString(path), C.CString(name)
	defer C.free(unsafe.Pointer(cp))
	defer C.free(unsafe.Pointer(cn))
	var w, h C.int64_t
	var cerr *C.char
	// The size OpenSlide reports is what the file declares: the C side
	// refuses it over the decode limit before allocating.
	buf := C.tsv_osr_associated(cp, cn, C.int64_t(limits.Get().MaxDecodedBytes), &w, &h, &cerr)
	if buf == nil {
		defer C.g_free(C.gpointer(cerr))
		return nil, errors.New("encode: openslide: " + C.GoString(cerr))
	}
	defer C.g_free(C.gpointer(buf))
	n := int(w) * int(h)
	argb := unsafe.Slice((*uint32)(unsafe.Pointer(buf)), n)
	img := NewImage(int(w), int(h), 4, Uint8)
	for i, p := range argb {
		a := p >> 24
		r, g, b := p>>16&0xFF, p>>8&0xFF, p&0xFF
		if a != 0 && a != 255 {
			// OpenSlide premultiplies; undo it as libvips does for levels.
			r, g, b = min(r*255/a, 255), min(g*255/a, 255), min(b*255/a, 255)
		}
		img.Pix[4*i], img.Pix[4*i+1], img.Pix[4*i+2], img.Pix[4*i+3] = byte(r), byte(g), byte(b), byte(a)
	}
	return img, nil
}

var vipsIntent = map[string]C.VipsIntent{
	"perceptual":            C.VIPS_INTENT_PERCEPTUAL,
	"relative_colorimetric": C.VIPS_INTENT_RELATIVE,
	"saturation":            C.VIPS_INTENT_SATURATION,
	"absolute_colorimetric": C.VIPS_INTENT_ABSOLUTE,
}

// iccToSRGB runs the colour transform of ICCToSRGB on a checked,
// non-empty 8- or 16-bit image.
func iccToSRGB(img *Image, profile []byte, intent string) (*Image, error) {
	if err := start(); err != nil {
		return nil, err
	}
	vf, ok := vipsFormat(img.Format)
	if !ok {
		return nil, errors.New("encode: unsupported sample format")
	}
	vi, ok := vipsIntent[intent]
	if !ok {
		return nil, errors.New("encode: unknown rendering intent " + intent)
	}
	out := NewImage(img.Width, img.Height, img.Bands, img.Format)
	if C.tsv_icc_srgb(unsafe.Pointer(&img.Pix[0]), C.size_t(len(img.Pix)), C.int(img.Width), C.int(img.Height),
		C.int(img.Bands), C.int(vf), unsafe.Pointer(&profile[0]), C.size_t(len(profile)), C.int(vi),
		unsafe.Pointer(&out.Pix[0])) != 0 {
		return nil, vipsError("icc transform")
	}
	return out, nil
}
