package encode

// This file fixes the codec API that other packages code against; the
// libvips-backed implementation replaces these bodies.

import "errors"

var errTODO = errors.New("encode: not implemented yet")

// Kernel is a resampling filter.
type Kernel int

// Resampling kernels.
const (
	Lanczos3 Kernel = iota
	Cubic
	Linear
	Nearest
)

// Options are encoder parameters (spec 4.2).
type Options struct {
	// Encoding: JPEG, JFIF, PNG, WEBP, TIFF (case-sensitive).
	Encoding        string
	JPEGQuality     int    // 0–100; 0 means the default 95
	JPEGSubsampling int    // 0/-1 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0
	TIFFCompression string // raw/none (default), lzw/tiff_lzw, deflate/tiff_adobe_deflate, jpeg
}

// Decode decodes an encoded image that libvips can load from memory (JPEG,
// PNG, WebP, TIFF, JP2, …). options is a libvips option string without
// brackets, such as "page=2", or "".
func Decode(data []byte, options string) (*Image, error) { return nil, errTODO }

// Encode encodes img. A zero-size image encodes to empty bytes.
func Encode(img *Image, opt Options) ([]byte, error) { return nil, errTODO }

// MIME returns the content type of an encoding, or an error whose message is
// `Invalid encoding "<x>"`.
func MIME(encoding string) (string, error) { return "", errTODO }

// Resize scales img to exactly w×h with the kernel.
func Resize(img *Image, w, h int, k Kernel) (*Image, error) { return nil, errTODO }

// Handle is a lazily read image file opened through libvips (OpenSlide
// slides by level or associated image, large plain images). Safe for
// concurrent use.
type Handle struct{}

// OpenFile opens path through libvips with a loader option string such as
// "level=2" or "associated=label" ("" for none).
func OpenFile(path, options string) (*Handle, error) { return nil, errTODO }

// Width returns the image width.
func (h *Handle) Width() int { return 0 }

// Height returns the image height.
func (h *Handle) Height() int { return 0 }

// Bands returns the number of bands.
func (h *Handle) Bands() int { return 0 }

// Format returns the sample format.
func (h *Handle) Format() Format { return Uint8 }

// Region decodes the w×h area at (x, y).
func (h *Handle) Region(x, y, w, hh int) (*Image, error) { return nil, errTODO }

// Field returns a string metadata field (e.g. "openslide.mpp-x"), "" if absent.
func (h *Handle) Field(name string) string { return "" }

// Fields lists metadata field names.
func (h *Handle) Fields() []string { return nil }

// Close releases the libvips image.
func (h *Handle) Close() error { return nil }
