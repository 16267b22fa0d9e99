// Package vipsimage serves plain images (JPEG, PNG, WebP, JP2/J2K, flat
// TIFF, anything libvips loads) as a tile source: only full resolution is
// stored, lower levels are synthesised by the pipeline. Tiles are read
// lazily through libvips, so large images are not decoded into Go memory.
package vipsimage

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/limits"
)

const tileSize = 256

// Source is a plain image opened through libvips. Safe for concurrent use.
type Source struct {
	h      *encode.Handle
	info   tilesource.Info
	loader string
}

// Open opens path with libvips. It returns an error wrapping
// tilesource.ErrNotRecognized when libvips cannot load the file.
func Open(path string) (tilesource.Source, error) {
	h, err := encode.OpenFile(path, "")
	if err != nil {
		return nil, fmt.Errorf("%w: vips: %v", tilesource.ErrNotRecognized, err)
	}
	w, hh := h.Width(), h.Height()
	in := tilesource.Info{
		SizeX: w, SizeY: hh, TileWidth: tileSize, TileHeight: tileSize,
		Levels:     tilesource.LevelsFor(w, hh, tileSize, tileSize),
		Format:     h.Format(),
		Bands:      h.Bands(),
		SourceName: "vips",
		ICCProfile: h.Blob("icc-profile-data"),
		// Regions of the image, cut at its edges, as large_image's
		// openjpeg, PIL and vips readers read their tiles.
		EdgeTilesPartial: true,
	}
	in.Stored = make([]bool, in.Levels)
	in.Stored[in.Levels-1] = true
	// Only full resolution is stored: refuse a declared size whose lower
	// levels could not be made within the limits before decoding anything.
	if err := limits.CheckSide("image", int64(w), int64(hh)); err != nil {
		h.Close()
		return nil, &tilesource.Error{Status: http.StatusBadRequest, Message: filepath.Base(path) + ": image too large", Cause: err}
	}
	if err := in.CheckSynthesis(); err != nil {
		h.Close()
		return nil, &tilesource.Error{Status: http.StatusBadRequest, Message: filepath.Base(path) + ": image too large", Cause: err}
	}
	loader := h.Field("vips-loader")
	// libvips reads a TIFF header even when no codec can decode its pixels
	// (an unknown compression, say): decode one pixel so that such files
	// are refused here rather than served as black tiles. TIFF regions are
	// read strip by strip or tile by tile, so the probe is cheap.
	if strings.HasPrefix(loader, "tiff") {
		if _, err := h.Region(0, 0, 1, 1); err != nil {
			h.Close()
			return nil, tilesource.BadRequest("%s: cannot decode image data", filepath.Base(path))
		}
	}
	return &Source{h: h, info: in, loader: loader}, nil
}

// Info returns the metadata.
func (s *Source) Info() *tilesource.Info { return &s.info }

// ReadTile returns a full-resolution tile, zero-padded to 256×256 at the
// right and bottom edges.
func (s *Source) ReadTile(ctx context.Context, frame, z, x, y int) (*tilesource.Tile, error) {
	if z != s.info.Levels-1 {
		return nil, fmt.Errorf("vips level %d: %w", z, tilesource.ErrLevelNotStored)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	img, err := s.h.Region(x*tileSize, y*tileSize, tileSize, tileSize)
	if err != nil {
		// Pixels that cannot be read are the file's fault: 404, as large_image
		// answers a TileGeneralError on the tile routes.
		return nil, &tilesource.Error{Status: http.StatusNotFound, Message: fmt.Sprintf("Failed to read tile %d/%d/%d", z, x, y), Cause: err}
	}
	return &tilesource.Tile{Pixels: img}, nil
}

// AssociatedNames returns nil: plain images have no associated images.
func (s *Source) AssociatedNames() []string { return nil }

// Associated returns nil, nil: plain images have no associated images.
func (s *Source) Associated(name string) (*encode.Image, error) { return nil, nil }

// InternalMetadata returns the libvips header.
func (s *Source) InternalMetadata() map[string]any {
	return map[string]any{
		"loader": s.loader,
		"width":  s.info.SizeX,
		"height": s.info.SizeY,
		"bands":  s.info.Bands,
		"format": s.info.Format.DType(),
	}
}

// MemoryEstimate approximates what libvips holds for the image. Loaders of
// formats without random access (JPEG, PNG, WebP, …) decode the whole image
// on first use (into memory up to libvips' 100 MB disc threshold); tiled
// loaders keep about two rows of tiles.
func (s *Source) MemoryEstimate() int64 {
	px := int64(s.info.Bands * s.info.Format.Size())
	switch s.loader {
	case "tiffload", "jp2kload":
		return 2 * int64(s.info.SizeX) * tileSize * px
	}
	return min(int64(s.info.SizeX)*int64(s.info.SizeY)*px, 100<<20)
}

// Close releases the image.
func (s *Source) Close() error { return s.h.Close() }

// String describes the source for logs.
func (s *Source) String() string {
	return "vips " + s.loader + " " + strconv.Itoa(s.info.SizeX) + "x" + strconv.Itoa(s.info.SizeY)
}
