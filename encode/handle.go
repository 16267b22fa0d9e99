package encode

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Handle is a lazily read image file opened through libvips (OpenSlide
// slides by level or associated image, large plain images). Safe for
// concurrent use: every Region reads through its own libvips region, so
// the shared image is never modified.
type Handle struct {
	mu sync.RWMutex // Close waits for reads in flight
	v  *vimage
	// mem holds the decoded image instead of v for files libvips cannot
	// read lazily without crashing (palette JPEG 2000).
	mem    *Image
	closed bool
	// memFields are the metadata of a mem handle.
	memFields map[string]string
	w, h      int
	bands     int
	format    Format
}

var errClosed = errors.New("encode: handle is closed")

// OpenFile opens path through libvips with a loader option string such as
// "level=2" or "associated=label" ("" for none); libvips picks the loader.
func OpenFile(path, options string) (*Handle, error) {
	if err := checkOptions(options); err != nil {
		return nil, err
	}
	if h, err := openJ2K(path, options); h != nil || err != nil {
		return h, err
	}
	// The trailing brackets are always added so that a path that itself
	// ends in "[...]" is not taken for options.
	v, err := loadFile(path + "[" + options + "]")
	if err != nil {
		return nil, err
	}
	return newHandle(v)
}

// OpenFileWith opens path with one named libvips loader, such as
// "openslideload", and a loader option string ("" for none). It fails when
// that loader does not accept the file.
func OpenFileWith(loader, path, options string) (*Handle, error) {
	if err := checkOptions(options); err != nil {
		return nil, err
	}
	v, err := loadWith(loader, path, options)
	if err != nil {
		return nil, err
	}
	return newHandle(v)
}

// checkOptions refuses openslideload's "associated" option: libvips
// 8.14.1 crashes reading those pixels. ReadOpenSlideAssociated reads them.
func checkOptions(options string) error {
	if strings.Contains(options, "associated") {
		return errors.New("encode: use ReadOpenSlideAssociated for associated images")
	}
	return nil
}

func newHandle(v *vimage) (*Handle, error) {
	f, err := v.format()
	if err != nil {
		v.close()
		return nil, err
	}
	return &Handle{v: v, w: v.width(), h: v.height(), bands: v.bands(), format: f}, nil
}

// Width returns the image width.
func (h *Handle) Width() int { return h.w }

// Height returns the image height.
func (h *Handle) Height() int { return h.h }

// Bands returns the number of bands.
func (h *Handle) Bands() int { return h.bands }

// Format returns the sample format.
func (h *Handle) Format() Format { return h.format }

// Region decodes the w×h area at (x, y). The result is always w×h: parts
// outside the image are zero (transparent for images with alpha).
func (h *Handle) Region(x, y, w, hh int) (*Image, error) {
	if w <= 0 || hh <= 0 {
		return nil, errors.New("encode: empty region")
	}
	if int64(w)*int64(hh)*int64(h.bands*h.format.Size()) > 1<<31 {
		return nil, errors.New("encode: region too large")
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return nil, errClosed
	}
	if h.mem != nil {
		return Pad(Crop(h.mem, x, y, w, hh), w, hh, nil), nil
	}
	x0, y0 := max(x, 0), max(y, 0)
	x1, y1 := min(x+w, h.w), min(y+hh, h.h)
	if x0 == x && y0 == y && x1 == x+w && y1 == y+hh {
		img := NewImage(w, hh, h.bands, h.format)
		if err := h.v.fetch(x, y, w, hh, img.Pix); err != nil {
			return nil, err
		}
		return img, nil
	}
	out := NewImage(w, hh, h.bands, h.format)
	if x1 <= x0 || y1 <= y0 {
		return out, nil
	}
	in := NewImage(x1-x0, y1-y0, h.bands, h.format)
	if err := h.v.fetch(x0, y0, in.Width, in.Height, in.Pix); err != nil {
		return nil, err
	}
	ps := out.PixelSize()
	for r := range in.Height {
		d := (y0-y+r)*out.Stride() + (x0-x)*ps
		copy(out.Pix[d:d+in.Stride()], in.Pix[r*in.Stride():])
	}
	return out, nil
}

// Field returns a metadata field as a string (e.g. "openslide.mpp-x"), ""
// if absent.
func (h *Handle) Field(name string) string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.v == nil {
		return h.memFields[name]
	}
	s, _ := h.v.field(name)
	return s
}

// Blob returns a copy of a binary metadata field (e.g. "icc-profile-data"),
// nil if absent or not binary.
func (h *Handle) Blob(name string) []byte {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.v == nil {
		return nil
	}
	return h.v.blob(name)
}

// Fields lists metadata field names.
func (h *Handle) Fields() []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.v == nil {
		return slices.Sorted(maps.Keys(h.memFields))
	}
	return h.v.fields()
}

// Close releases the libvips image. It is safe to call more than once.
func (h *Handle) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.v != nil {
		h.v.close()
		h.v = nil
	}
	h.mem, h.closed = nil, true
	return nil
}

// maxInMemoryFile bounds the JPEG 2000 files that are decoded whole.
const maxInMemoryFile = 64 << 20

// openJ2K screens JPEG 2000 files before libvips opens them (see jp2.go).
// It returns nil, nil for files that libvips may open itself, and an
// in-memory handle for palette images.
func openJ2K(path, options string) (*Handle, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	head := make([]byte, 1<<20)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	head = head[:n]
	if !isJ2K(head) {
		return nil, nil
	}
	l, err := inspectJ2K(head)
	if err != nil || l.palette == nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > maxInMemoryFile {
		return nil, fmt.Errorf("%w: palette image of %d bytes is too large", ErrJ2KUnsupported, st.Size())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	img, err := Decode(data, options)
	if err != nil {
		return nil, err
	}
	return &Handle{mem: img, w: img.Width, h: img.Height, bands: img.Bands, format: img.Format,
		memFields: map[string]string{
			"width": strconv.Itoa(img.Width), "height": strconv.Itoa(img.Height),
			"bands": strconv.Itoa(img.Bands), "vips-loader": "jp2kload",
		}}, nil
}
