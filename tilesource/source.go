// Package tilesource defines what an opened image is (the Source interface),
// its metadata in large_image's model, and the shared geometry helpers. Each
// format family lives in a sub-package; detection is in tilesource/detect and
// the tile pipeline (synthesis, styles, encodings, caching) in
// tilesource/pipeline.
package tilesource

import (
	"context"
	"fmt"
	"math"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilesource/limits"
)

// Info is a source's metadata in large_image's model (TileSource.getMetadata and large_image's TileSource model).
// Levels are numbered as large_image: 0 is the lowest resolution and
// Levels-1 is full resolution; level z is downsampled by 2^(Levels-1-z).
type Info struct {
	SizeX, SizeY          int
	TileWidth, TileHeight int
	Levels                int
	// Stored[z] is true when level z is stored in the file; other levels are
	// synthesised by the pipeline. len(Stored) == Levels.
	Stored []bool
	// AllLevelsPopulated is set for readers that large_image treats as
	// holding every level, as its DICOM reader: its getTile makes a
	// missing level from the whole zero-padded block of the finer level
	// (BICUBIC), and regions read the level they need instead of a finer
	// stored one (getPreferredLevel, _nonemptyLevelsList). Such a reader's
	// tiles are black beyond the image (large_image reads the part of the
	// image a tile covers and pads it with zeros).
	AllLevelsPopulated bool
	// EdgeTilesPartial is set for readers whose stored tiles at the
	// image's right and bottom edges hold only the image's pixels, as
	// large_image's openjpeg, PIL and vips readers read them: its
	// _outputTileNumpyStyle styles those pixels and pads the tile after,
	// with zeros, so a styled edge tile is transparent beyond the image.
	EdgeTilesPartial bool
	// Magnification, MMX and MMY describe full resolution; nil when unknown.
	Magnification *float64
	MMX, MMY      *float64
	// Format and Bands describe the decoded samples of every level.
	Format encode.Format
	Bands  int
	// Frames holds the raw per-frame axis indices (keys such as "IndexC",
	// "IndexZ", "IndexT", "IndexXY", or "Index" for generic frames) and any
	// source-specific keys; nil or one entry means a single frame. The
	// metadata route adds Frame/Index/IndexRange/… with FrameMetadata.
	Frames []map[string]any
	// Channels are channel names when the source knows them.
	Channels []string
	// Extra fields merged into the metadata JSON (e.g. the test source's
	// "bands").
	Extra map[string]any
	// ICCProfile is the embedded ICC profile, if any.
	ICCProfile []byte
	// SourceName is large_image's name for the reader ("tiff", "openslide",
	// "ometiff", "vips", "test", …).
	SourceName string
}

// FrameCount returns the number of frames (at least 1).
func (in *Info) FrameCount() int {
	if len(in.Frames) > 1 {
		return len(in.Frames)
	}
	return 1
}

// LevelsFor returns large_image's level count for an image and tile size:
// ceil(log2(max(sizeX/tw, sizeY/th))) + 1, at least 1.
func LevelsFor(sizeX, sizeY, tw, th int) int {
	r := math.Max(float64(sizeX)/float64(tw), float64(sizeY)/float64(th))
	if r <= 1 {
		return 1
	}
	return int(math.Ceil(math.Log2(r))) + 1
}

// LevelSize returns the pixel size of level z (int(size·2^(z-levels+1))),
// at least 1.
func (in *Info) LevelSize(z int) (int, int) {
	s := math.Ldexp(1, z-(in.Levels-1))
	w, h := int(float64(in.SizeX)*s), int(float64(in.SizeY)*s)
	return max(w, 1), max(h, 1)
}

// TileCount returns the number of tile columns and rows of level z.
func (in *Info) TileCount(z int) (int, int) {
	s := math.Ldexp(1, z-(in.Levels-1))
	cols := int(math.Ceil(float64(in.SizeX) * s / float64(in.TileWidth)))
	rows := int(math.Ceil(float64(in.SizeY) * s / float64(in.TileHeight)))
	return max(cols, 1), max(rows, 1)
}

// SynthMaxSkip is how many levels one synthesis stage may span: at most
// 2^SynthMaxSkip × 2^SynthMaxSkip child tiles are combined at once; wider
// gaps go through intermediate synthesised levels.
const SynthMaxSkip = 3

// CheckSynthesis returns an error wrapping limits.ErrTooLarge when a level
// the source does not store would be made from more stored pixels per tile
// than limits.MaxSynthPixels: a single-level image declaring a huge size,
// or a pyramid with a wide gap, whose low levels could not be produced in
// bounded time and memory. large_image synthesises missing levels from the
// next stored finer level the same way (tilesource/base.py,
// _getTileFromEmptyLevel).
func (in *Info) CheckSynthesis() error {
	limit := limits.Get().MaxSynthPixels
	for z := 0; z < in.Levels && z < len(in.Stored); z++ {
		if in.Stored[z] {
			continue
		}
		s := z + 1
		for s < in.Levels && s < len(in.Stored) && !in.Stored[s] {
			s++
		}
		if s >= in.Levels || s >= len(in.Stored) {
			continue // nothing finer is stored: tiles of z are refused anyway
		}
		scale := math.Ldexp(1, s-z)
		lw, lh := in.LevelSize(s)
		w := math.Min(float64(in.TileWidth)*scale, float64(lw))
		h := math.Min(float64(in.TileHeight)*scale, float64(lh))
		if w*h > float64(limit) {
			return fmt.Errorf("level %d would be made from %.0f stored pixels per tile (limit %d): %w", z, w*h, limit, limits.ErrTooLarge)
		}
		// The pipeline pastes the children of one synthesised tile,
		// up to SynthMaxSkip levels finer, on one canvas; stages nest
		// when the gap is wider, so a canvas gets a quarter of the
		// decode limit.
		step := 1 << min(s-z, SynthMaxSkip)
		cw, ch := min(in.SizeX, in.TileWidth*step), min(in.SizeY, in.TileHeight*step)
		canvas := float64(cw) * float64(ch) * float64(max(in.Bands, 1)*in.Format.Size())
		if lim := limits.Get().MaxDecodedBytes / 4; canvas > float64(lim) {
			return fmt.Errorf("level %d would be made on a canvas of %dx%d pixels (limit %d bytes): %w", z, cw, ch, lim, limits.ErrTooLarge)
		}
	}
	return nil
}

// CheckTile validates z, x, y and frame in large_image's order and with its
// messages (TileSource's level geometry).
func (in *Info) CheckTile(z, x, y, frame int) error {
	if z < 0 || z >= in.Levels {
		return ErrZRange
	}
	step := 1 << (in.Levels - 1 - z)
	if x < 0 || x*in.TileWidth*step >= in.SizeX {
		return ErrXRange
	}
	if y < 0 || y*in.TileHeight*step >= in.SizeY {
		return ErrYRange
	}
	if frame < 0 || frame >= in.FrameCount() {
		return ErrFrameRange
	}
	return nil
}

// Tile is one stored tile as a reader returns it: either encoded bytes that
// may be served as they are (Encoded, labelled with Encoding such as "JPEG"),
// or decoded pixels, or both. Decode turns Encoded into pixels on demand.
type Tile struct {
	Encoded  []byte
	Encoding string
	Pixels   *encode.Image
	// Decode, when set, decodes Encoded; the pipeline calls it only when it
	// needs pixels.
	Decode func() (*encode.Image, error)
}

// Image returns the tile's pixels, decoding them if needed.
func (t *Tile) Image() (*encode.Image, error) {
	if t.Pixels == nil && t.Decode != nil {
		img, err := t.Decode()
		if err != nil {
			return nil, err
		}
		t.Pixels = img
	}
	if t.Pixels == nil {
		return nil, Errorf(500, "tile has no pixels")
	}
	return t.Pixels, nil
}

// Source is an opened image. Implementations are safe for concurrent use.
type Source interface {
	// Info returns the metadata; it does not change while the source is open.
	Info() *Info
	// ReadTile returns the stored tile (x, y) of level z and frame. It returns
	// an error wrapping ErrLevelNotStored when Info().Stored[z] is false.
	// The tile is full-size (TileWidth×TileHeight) except where the reader
	// can only produce the part inside the image; the pipeline pads it.
	// Coordinates are already range-checked by the caller.
	ReadTile(ctx context.Context, frame, z, x, y int) (*Tile, error)
	// AssociatedNames lists associated images (label, macro, thumbnail…),
	// sorted.
	AssociatedNames() []string
	// Associated returns an associated image's pixels, or nil, nil when
	// there is no image with that name.
	Associated(name string) (*encode.Image, error)
	// InternalMetadata returns source-specific metadata for the
	// internal_metadata route (without the "tilesource" key).
	InternalMetadata() map[string]any
	// MemoryEstimate is the approximate resident memory the open source
	// holds (buffers, caches, decoder state), in bytes.
	MemoryEstimate() int64
	// Close releases files and decoders.
	Close() error
}
