// Package slide reads the OpenSlide formats (SVS JPEG 2000, NDPI, MRXS,
// SCN, BIF, Philips, generic tiled TIFF, …) through libvips' openslideload.
// Levels whose OpenSlide downsample is a power of two matching large_image's
// level are stored; the pipeline synthesises the others.
package slide

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilesource"
)

const loader = "openslideload"

// handleMemory approximates what one open openslideload image holds: its
// own openslide_t with OpenSlide's tile cache, plus libvips buffers.
const handleMemory = 16 << 20

// Source is an OpenSlide slide. It is safe for concurrent use.
type Source struct {
	path  string
	info  tilesource.Info
	props map[string]string
	assoc []string
	// osLevel[z] is the OpenSlide level that stores large_image level z,
	// or -1.
	osLevel []int
	bg      []byte // RGB of transparent pixels, nil to keep them black

	mu      sync.Mutex
	handles map[int]*encode.Handle // by OpenSlide level
	closed  bool
}

// Open opens path with OpenSlide. It returns an error wrapping
// tilesource.ErrNotRecognized when OpenSlide does not claim the file.
func Open(path string) (tilesource.Source, error) {
	h0, err := encode.OpenFileWith(loader, path, "level=0")
	if err != nil {
		return nil, fmt.Errorf("%w: openslide: %v", tilesource.ErrNotRecognized, err)
	}
	s := &Source{path: path, handles: map[int]*encode.Handle{0: h0}, props: map[string]string{}}
	for _, name := range h0.Fields() {
		// OpenSlide properties are namespaced ("openslide.", "aperio.",
		// "tiff.", "hamamatsu." …); libvips' own fields have no dot.
		if strings.Contains(name, ".") {
			s.props[name] = h0.Field(name)
		}
	}
	for _, n := range strings.Split(h0.Field("slide-associated-images"), ",") {
		if n = strings.TrimSpace(n); n != "" {
			s.assoc = append(s.assoc, n)
		}
	}
	slices.Sort(s.assoc)
	s.info = s.buildInfo(h0)
	if icc := h0.Blob("icc-profile-data"); len(icc) > 0 {
		s.info.ICCProfile = icc
	}
	if c := s.props["openslide.background-color"]; len(c) == 6 {
		if v, err := strconv.ParseUint(c, 16, 32); err == nil {
			s.bg = []byte{byte(v >> 16), byte(v >> 8), byte(v)}
		}
	}
	return s, nil
}

func (s *Source) prop(name string) (float64, bool) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s.props[name]), 64)
	return v, err == nil && !math.IsNaN(v) && !math.IsInf(v, 0)
}

func (s *Source) buildInfo(h0 *encode.Handle) tilesource.Info {
	w, h := h0.Width(), h0.Height()
	tw, th := 256, 256
	if v, ok := s.prop("openslide.level[0].tile-width"); ok && v >= 16 && v <= 4096 {
		tw = int(v)
	}
	if v, ok := s.prop("openslide.level[0].tile-height"); ok && v >= 16 && v <= 4096 {
		th = int(v)
	}
	in := tilesource.Info{
		SizeX: w, SizeY: h, TileWidth: tw, TileHeight: th,
		Levels:     tilesource.LevelsFor(w, h, tw, th),
		Format:     encode.Uint8,
		Bands:      4,
		SourceName: "openslide",
	}
	in.Stored = make([]bool, in.Levels)
	s.osLevel = make([]int, in.Levels)
	n := 1
	if v, ok := s.prop("openslide.level-count"); ok && v >= 1 {
		n = int(v)
	}
	for z := range in.Levels {
		s.osLevel[z] = -1
		d := math.Ldexp(1, in.Levels-1-z)
		for l := range n {
			lw, ok1 := s.prop(fmt.Sprintf("openslide.level[%d].width", l))
			lh, ok2 := s.prop(fmt.Sprintf("openslide.level[%d].height", l))
			if ok1 && ok2 && math.Abs(lw-float64(w)/d) <= 1 && math.Abs(lh-float64(h)/d) <= 1 {
				s.osLevel[z], in.Stored[z] = l, true
				break
			}
		}
	}
	// large_image: magnification from the objective power (or Aperio's
	// AppMag), mm from microns per pixel.
	if v, ok := s.prop("openslide.objective-power"); ok && v > 0 {
		in.Magnification = &v
	} else if v, ok := s.prop("aperio.AppMag"); ok && v > 0 {
		in.Magnification = &v
	}
	if v, ok := s.prop("openslide.mpp-x"); ok && v > 0 {
		mm := v * 0.001
		in.MMX = &mm
	}
	if v, ok := s.prop("openslide.mpp-y"); ok && v > 0 {
		mm := v * 0.001
		in.MMY = &mm
	}
	return in
}

// Info returns the metadata.
func (s *Source) Info() *tilesource.Info { return &s.info }

// handle returns the open image of an OpenSlide level, opening it once.
func (s *Source) handle(level int) (*encode.Handle, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, tilesource.Errorf(500, "Source is closed")
	}
	if h := s.handles[level]; h != nil {
		return h, nil
	}
	h, err := encode.OpenFileWith(loader, s.path, "level="+strconv.Itoa(level))
	if err != nil {
		return nil, &tilesource.Error{Status: 500, Message: "Failed to read slide level", Cause: err}
	}
	s.handles[level] = h
	return h, nil
}

// ReadTile returns tile (x, y) of level z as full-size RGBA pixels;
// pixels outside the slide are transparent (with the slide's background
// colour when it declares one).
func (s *Source) ReadTile(ctx context.Context, frame, z, x, y int) (*tilesource.Tile, error) {
	if z < 0 || z >= s.info.Levels {
		return nil, tilesource.ErrZRange
	}
	if !s.info.Stored[z] {
		return nil, fmt.Errorf("openslide level %d: %w", z, tilesource.ErrLevelNotStored)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h, err := s.handle(s.osLevel[z])
	if err != nil {
		return nil, err
	}
	tw, th := s.info.TileWidth, s.info.TileHeight
	img, err := h.Region(x*tw, y*th, tw, th)
	if err != nil {
		// Pixels that cannot be read are the file's fault: 404, as large_image
		// answers a TileGeneralError on the tile routes.
		return nil, &tilesource.Error{Status: 404, Message: fmt.Sprintf("Failed to read tile %d/%d/%d", z, x, y), Cause: err}
	}
	s.fillBackground(img)
	return &tilesource.Tile{Pixels: img}, nil
}

func (s *Source) fillBackground(img *encode.Image) {
	if s.bg == nil || img.Bands != 4 || img.Format != encode.Uint8 {
		return
	}
	for i := 0; i+3 < len(img.Pix); i += 4 {
		if img.Pix[i+3] == 0 {
			copy(img.Pix[i:i+3], s.bg)
		}
	}
}

// AssociatedNames lists the associated images (label, macro, thumbnail…).
func (s *Source) AssociatedNames() []string { return slices.Clone(s.assoc) }

// Associated returns an associated image as RGBA, or nil, nil when the
// slide has none of that name.
func (s *Source) Associated(name string) (*encode.Image, error) {
	if !slices.Contains(s.assoc, name) {
		return nil, nil
	}
	img, err := encode.ReadOpenSlideAssociated(s.path, name)
	if err != nil {
		return nil, &tilesource.Error{Status: 500, Message: "Failed to read associated image", Cause: err}
	}
	return img, nil
}

// InternalMetadata returns OpenSlide's properties, as large_image does.
func (s *Source) InternalMetadata() map[string]any {
	props := make(map[string]any, len(s.props))
	for k, v := range s.props {
		props[k] = v
	}
	return map[string]any{"openslide": props}
}

// MemoryEstimate counts the open level handles.
func (s *Source) MemoryEstimate() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(len(s.handles)) * handleMemory
}

// Close releases every open level.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range s.handles {
		h.Close()
	}
	s.handles, s.closed = nil, true
	return nil
}
