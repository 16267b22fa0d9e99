// Package encode turns decoded pixels into JPEG, PNG, WebP or TIFF bytes
// (through libvips), decodes encoded images back to pixels, and holds the
// rules for passing a stored tile through without re-encoding.
package encode

import "fmt"

// Format is the numeric type of one sample.
type Format int

// Sample formats, named after numpy dtypes.
const (
	Uint8 Format = iota
	Int8
	Uint16
	Int16
	Uint32
	Int32
	Float32
	Float64
)

// Size returns the number of bytes of one sample.
func (f Format) Size() int {
	switch f {
	case Uint8, Int8:
		return 1
	case Uint16, Int16:
		return 2
	case Uint32, Int32, Float32:
		return 4
	case Float64:
		return 8
	}
	return 1
}

// DType returns the numpy dtype name large_image reports for the format.
func (f Format) DType() string {
	switch f {
	case Uint8:
		return "uint8"
	case Int8:
		return "int8"
	case Uint16:
		return "uint16"
	case Int16:
		return "int16"
	case Uint32:
		return "uint32"
	case Int32:
		return "int32"
	case Float32:
		return "float32"
	case Float64:
		return "float64"
	}
	return fmt.Sprintf("format(%d)", int(f))
}

// Image is a decoded raster: Width×Height pixels of Bands interleaved samples
// in Format, in the machine's native byte order, rows packed without padding.
type Image struct {
	Width, Height, Bands int
	Format               Format
	Pix                  []byte
}

// NewImage allocates a zeroed image.
func NewImage(w, h, bands int, f Format) *Image {
	return &Image{Width: w, Height: h, Bands: bands, Format: f, Pix: make([]byte, w*h*bands*f.Size())}
}

// Stride returns the number of bytes in one row.
func (m *Image) Stride() int { return m.Width * m.Bands * m.Format.Size() }

// PixelSize returns the number of bytes of one pixel.
func (m *Image) PixelSize() int { return m.Bands * m.Format.Size() }

// ClearOutside zeroes the pixels of img right of column w and below row h.
func ClearOutside(img *Image, w, h int) {
	ps := img.PixelSize()
	for r := range img.Height {
		row := img.Pix[r*img.Stride() : (r+1)*img.Stride()]
		if r >= h {
			clear(row)
		} else if w < img.Width {
			clear(row[max(w, 0)*ps:])
		}
	}
}
