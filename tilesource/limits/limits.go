// Package limits holds the size limits that keep one request or one damaged
// file from exhausting the server's memory or CPU. Readers and the pipeline
// check every size a request or a file declares against them before
// allocating; the command sets them once at start-up from its flags (which
// derive them from the memory budgets), tests may set them too.
package limits

import (
	"errors"
	"fmt"
	"sync/atomic"
)

// ErrTooLarge is wrapped by every error of this package: a declared size
// over a limit. Readers that see it refuse the file outright instead of
// letting another reader try.
var ErrTooLarge = errors.New("over the size limit")

// Limits are the bounds in force. Zero fields take the defaults of Default.
type Limits struct {
	// MaxOutputPixels bounds the pixels of any image a route makes: a
	// region, thumbnail or associated image, including the canvas that
	// fill/letterboxing pads it to and every intermediate it is resized
	// from.
	MaxOutputPixels int64
	// MaxDecodedBytes bounds the decoded size of one tile, strip, frame or
	// level read from a file (width × height × bands × bytes per sample).
	MaxDecodedBytes int64
	// MaxImageSide bounds a file's declared image width or height; a file
	// declaring more is refused.
	MaxImageSide int64
	// MaxLoop bounds request-driven loop counts: frames in tile_frames and
	// quad_info, frameList entries, style bands.
	MaxLoop int
	// MaxSynthPixels bounds the stored pixels one tile of a level that the
	// file does not store may be made from (the pixels of the stored level
	// it is synthesised from that it covers); a file needing more for any
	// level is refused.
	MaxSynthPixels int64
	// MaxStyleBands bounds the bands of a style: each is a pass over every
	// pixel of the tile or region, so they cost far more than a loop step.
	MaxStyleBands int
}

// Default are the limits used when nothing is configured: generous enough
// for any real slide (a 200 000 × 200 000 pyramid, a 16 384² region) and
// small enough that a single request cannot take gigabytes.
func Default() Limits {
	return Limits{
		MaxOutputPixels: 16384 * 16384,
		MaxDecodedBytes: 256 << 20,
		MaxImageSide:    1 << 20,
		MaxLoop:         10000,
		MaxSynthPixels:  1 << 30,
		MaxStyleBands:   64,
	}
}

var current atomic.Pointer[Limits]

func init() {
	d := Default()
	current.Store(&d)
}

// Get returns the limits in force.
func Get() Limits { return *current.Load() }

// Set replaces the limits in force; zero fields take their defaults.
func Set(l Limits) {
	d := Default()
	if l.MaxOutputPixels <= 0 {
		l.MaxOutputPixels = d.MaxOutputPixels
	}
	if l.MaxDecodedBytes <= 0 {
		l.MaxDecodedBytes = d.MaxDecodedBytes
	}
	if l.MaxImageSide <= 0 {
		l.MaxImageSide = d.MaxImageSide
	}
	if l.MaxLoop <= 0 {
		l.MaxLoop = d.MaxLoop
	}
	if l.MaxSynthPixels <= 0 {
		l.MaxSynthPixels = d.MaxSynthPixels
	}
	if l.MaxStyleBands <= 0 {
		l.MaxStyleBands = d.MaxStyleBands
	}
	current.Store(&l)
}

// CheckDecoded returns an error when a decoded buffer of w × h pixels with
// the given bands and bytes per sample would exceed MaxDecodedBytes (or
// when a dimension is not positive). what names the thing for the message,
// e.g. "tile" or "strip".
func CheckDecoded(what string, w, h, bands, bytesPerSample int64) error {
	if w <= 0 || h <= 0 || bands <= 0 || bytesPerSample <= 0 {
		return fmt.Errorf("%s has an invalid size %d×%d×%d: %w", what, w, h, bands, ErrTooLarge)
	}
	l := Get()
	// Divide rather than multiply so that huge declared sizes cannot
	// overflow int64.
	if w > l.MaxDecodedBytes/h/bands/bytesPerSample {
		return fmt.Errorf("%s of %d×%d pixels is larger than the decode limit (%d bytes): %w", what, w, h, l.MaxDecodedBytes, ErrTooLarge)
	}
	return nil
}

// OutputPixelsOK reports whether an output image of w × h pixels is within
// MaxOutputPixels.
func OutputPixelsOK(w, h int64) bool {
	if w <= 0 || h <= 0 {
		return w >= 0 && h >= 0
	}
	return w <= Get().MaxOutputPixels/h
}

// CheckSide returns an error when a declared image width or height is not
// positive or exceeds MaxImageSide.
func CheckSide(what string, w, h int64) error {
	if m := Get().MaxImageSide; w <= 0 || h <= 0 || w > m || h > m {
		return fmt.Errorf("%s of %d×%d pixels is outside the image size limit (1 to %d per side): %w", what, w, h, m, ErrTooLarge)
	}
	return nil
}
