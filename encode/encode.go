package encode

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tileserver/tileserver/tilesource/limits"
)

// Kernel is a resampling filter.
type Kernel int

// Resampling kernels.
const (
	Lanczos3 Kernel = iota
	Cubic
	Linear
	Nearest
)

// Options are encoder parameters (large_image's _encodeImage).
type Options struct {
	// Encoding: JPEG, JFIF, PNG, WEBP, TIFF, TILED (a plain TIFF here;
	// see EncodeTiled) (case-sensitive); "" means JPEG.
	Encoding        string
	JPEGQuality     int    // 0–100; 0 means the default 95
	JPEGSubsampling int    // 0/-1 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0
	TIFFCompression string // raw/none (default), lzw/tiff_lzw, deflate/tiff_adobe_deflate, jpeg
}

// DefaultJPEGQuality is large_image's jpegQuality default.
const DefaultJPEGQuality = 95

// WebPQuality is the quality WEBP output uses: Pillow's default, because
// large_image passes no quality to Pillow for WEBP.
const WebPQuality = 80

var mimeTypes = map[string]string{
	"JPEG": "image/jpeg",
	"JFIF": "image/jpeg",
	"PNG":  "image/png",
	"TIFF": "image/tiff",
	// TILED is a tiled pyramidal TIFF where large_image makes one
	// (regions, thumbnails, tile_frames: EncodeTiled) and a plain TIFF
	// elsewhere (tiles, associated images), as its _encodeImageBinary.
	"TILED": "image/tiff",
	"WEBP":  "image/webp",
}

// MIME returns the content type of an encoding, or an error whose message is
// `Invalid encoding "<x>"`.
func MIME(encoding string) (string, error) {
	if m, ok := mimeTypes[encoding]; ok {
		return m, nil
	}
	// The message is large_image's, capital letter included.
	return "", errors.New(`Invalid encoding "` + encoding + `"`)
}

// Decode decodes an encoded image that libvips can load from memory (JPEG,
// PNG, WebP, TIFF, JP2, …). options is a libvips option string without
// brackets, such as "page=2", or "". Samples keep their stored format.
func Decode(data []byte, options string) (*Image, error) {
	if len(data) == 0 {
		return nil, errors.New("encode: decode: empty buffer")
	}
	if options == "" && len(data) > 2 && data[0] == 0xFF && data[1] == 0xD8 {
		// A stored tile: TurboJPEG runs the libjpeg decode libvips'
		// loader would, without its per-image set-up. What it does not
		// take (CMYK, warnings, damage) libvips decodes or refuses below.
		if img, err := decodeJPEGTurbo(data); err == nil || errors.Is(err, limits.ErrTooLarge) {
			return img, err
		}
		// Components in no colour space (grey and alpha): libvips'
		// loader does not take them either.
		if img, ok, err := decodeJPEGComponents(data); ok {
			return img, err
		}
	}
	// Decoding front to back lets loaders stream into our buffer instead of
	// decoding into a libvips-owned copy first.
	if !strings.Contains(options, "access") {
		if options != "" {
			options += ","
		}
		options += "access=sequential"
	}
	var layout *j2kLayout
	if isJ2K(data) {
		l, err := inspectJ2K(data)
		if err != nil {
			return nil, err
		}
		if l.palette != nil {
			layout, data = l, data[l.codestream:]
		}
	}
	v, err := loadBuffer(data, options)
	if err != nil {
		return nil, err
	}
	defer v.close()
	img, err := v.readAll()
	if err != nil || layout == nil {
		return img, err
	}
	return layout.applyPalette(img)
}

// Encode encodes img. A zero-size image encodes to empty bytes. Samples that
// are not uint8 are first converted with To8Bit (large_image's _imageToPIL).
func Encode(img *Image, opt Options) ([]byte, error) {
	enc := opt.Encoding
	if enc == "" {
		enc = "JPEG"
	}
	if _, err := MIME(enc); err != nil {
		return nil, err
	}
	if img == nil || img.Width <= 0 || img.Height <= 0 || img.Bands <= 0 {
		return []byte{}, nil
	}
	if err := img.check(); err != nil {
		return nil, err
	}
	img = To8Bit(img)
	switch enc {
	case "JPEG", "JFIF":
		// JPEG has no alpha: LA → L and RGBA → RGB, as large_image does.
		switch img.Bands {
		case 2:
			img = selectBands(img, 1)
		case 4:
			img = selectBands(img, 3)
		}
		q := opt.JPEGQuality
		if q <= 0 {
			q = DefaultJPEGQuality
		}
		q = min(q, 100)
		// TurboJPEG encodes grey and RGB directly, with large_image's three
		// subsampling modes; anything else goes through libvips, which
		// offers only "subsample or not" (4:2:0), so 4:2:2 is 4:2:0 there.
		b, err := EncodeJPEGTurbo(img, q, opt.JPEGSubsampling)
		if errors.Is(err, ErrTurboUnsupported) {
			mode := "off"
			if opt.JPEGSubsampling == 1 || opt.JPEGSubsampling == 2 {
				mode = "on"
			}
			b, err = save(img, fmt.Sprintf(".jpg[Q=%d,subsample_mode=%s,strip=true]", q, mode))
		}
		if err != nil {
			return nil, err
		}
		return addJFIF(b), nil
	case "PNG":
		return save(img, ".png[compression=2,strip=true]")
	case "WEBP":
		// WebP keeps alpha, as Pillow converts LA to RGBA for it.
		b, err := save(img, fmt.Sprintf(".webp[Q=%d,strip=true]", WebPQuality))
		if err != nil {
			return nil, err
		}
		return stripWebPMetadata(b), nil
	default: // TIFF, and TILED where it is a plain TIFF
		comp, err := tiffCompression(opt.TIFFCompression)
		if err != nil {
			return nil, err
		}
		return save(img, ".tif[compression="+comp+",strip=true]")
	}
}

// Tiled is what EncodeTiled needs beyond the pixels.
type Tiled struct {
	// Compression is the tiffCompression parameter: "" for large_image's
	// default for tiled output, LZW.
	Compression string
	// Quality is the JPEG quality; 0 means large_image's default for
	// tiled output, 90.
	Quality int
	// MMX, MMY are the millimetres per pixel; 0 when unknown.
	MMX, MMY float64
}

// EncodeTiled writes img as large_image's TILED output does
// (_encodeTiledImageFromVips with _vipsParameters): a BigTIFF of 256×256
// tiles with a pyramid of halved levels, LZW with the horizontal predictor
// by default (lower levels then sampled, not averaged, so they hold values
// of the full level), JPEG as RGB at quality 90 unless told; samples keep
// their format except for JPEG, which takes 8 bits. The resolution is set
// when the pixel size is known.
func EncodeTiled(img *Image, t Tiled) ([]byte, error) {
	if img == nil || img.Width <= 0 || img.Height <= 0 || img.Bands <= 0 {
		return []byte{}, nil
	}
	if err := img.check(); err != nil {
		return nil, err
	}
	comp, err := tiledCompression(t.Compression)
	if err != nil {
		return nil, err
	}
	q := t.Quality
	if q <= 0 {
		q = 90
	}
	opts := fmt.Sprintf("tile,tile-width=256,tile-height=256,pyramid,bigtiff,strip,compression=%s,Q=%d,predictor=horizontal", comp, min(q, 100))
	switch comp {
	case "none", "lzw":
		opts += ",region-shrink=nearest"
	case "jpeg":
		img = To8Bit(img)
		opts += ",rgbjpeg"
	}
	if t.MMX > 0 && t.MMY > 0 {
		opts += fmt.Sprintf(",xres=%g,yres=%g", 1/t.MMX, 1/t.MMY)
	}
	return save(img, ".tif["+opts+"]")
}

// tiledCompression maps tiffCompression names to libvips' for tiled
// output: large_image passes them to libvips (LZW when absent).
func tiledCompression(name string) (string, error) {
	if name == "" {
		return "lzw", nil
	}
	return tiffCompression(name)
}

// tiffCompression maps large_image's tiffCompression names to libvips'.
func tiffCompression(name string) (string, error) {
	switch name {
	case "", "raw", "none":
		return "none", nil
	case "lzw", "tiff_lzw":
		return "lzw", nil
	case "deflate", "tiff_adobe_deflate", "zip":
		return "deflate", nil
	case "jpeg", "packbits", "zstd":
		return name, nil
	}
	return "", errors.New(`Invalid tiffCompression "` + name + `"`)
}

// Resize scales img to exactly w×h with the kernel, keeping its format.
func Resize(img *Image, w, h int, k Kernel) (*Image, error) {
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("encode: resize to %dx%d", w, h)
	}
	if img == nil || img.Width <= 0 || img.Height <= 0 || img.Bands <= 0 {
		return nil, errors.New("encode: resize of an empty image")
	}
	if err := img.check(); err != nil {
		return nil, err
	}
	if img.Width == w && img.Height == h {
		return img, nil
	}
	return resize(img, w, h, k)
}

// check verifies that Pix holds exactly the pixels the header describes, so
// that libvips never reads past the slice.
func (m *Image) check() error {
	if m.Format < Uint8 || m.Format > Float64 {
		return fmt.Errorf("encode: unknown sample format %d", int(m.Format))
	}
	if len(m.Pix) != m.Width*m.Height*m.PixelSize() {
		return fmt.Errorf("encode: image %dx%dx%d %s has %d bytes", m.Width, m.Height, m.Bands, m.Format.DType(), len(m.Pix))
	}
	return nil
}

// jfifAPP0 is a JFIF 1.01 header with a 1:1 aspect ratio and no thumbnail.
var jfifAPP0 = []byte{0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0}

// addJFIF inserts a JFIF header after SOI: libvips writes none, while
// clients (Safari, and large_image's own tests) expect fresh JPEGs to carry
// one.
func addJFIF(b []byte) []byte {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 || (b[2] == 0xFF && b[3] == 0xE0) {
		return b
	}
	out := make([]byte, 0, len(b)+len(jfifAPP0))
	out = append(out, b[:2]...)
	out = append(out, jfifAPP0...)
	return append(out, b[2:]...)
}

// Largest sides the formats can store: JPEG's 16-bit header as libjpeg
// limits it, and WebP's 14-bit one.
const (
	maxJPEGSide = 65500
	maxWebPSide = 16383
)

// CheckOptions reports options Encode cannot honour for an image of w×h
// pixels: an unknown TIFF compression, or a side longer than the format
// stores. Callers check before making the image.
func CheckOptions(opt Options, w, h int) error {
	side := 0
	switch opt.Encoding {
	case "", "JPEG", "JFIF":
		side = maxJPEGSide
	case "WEBP":
		side = maxWebPSide
	case "TIFF", "TILED":
		if _, err := tiffCompression(opt.TIFFCompression); err != nil {
			return err
		}
	}
	if side > 0 && (w > side || h > side) {
		return fmt.Errorf("%s images cannot be larger than %d pixels a side", encodingName(opt.Encoding), side)
	}
	return nil
}

func encodingName(enc string) string {
	if enc == "" {
		return "JPEG"
	}
	return enc
}
