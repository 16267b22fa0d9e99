// Package pipeline is the one place that holds the tile path (request →
// tile cache → source → bytes): it finds the open source, looks tiles up in the tile cache,
// coalesces misses, reads or synthesises tiles, applies edges and styles,
// encodes, and assembles regions, thumbnails and DeepZoom tiles.
package pipeline

import (
	"context"
	"path/filepath"

	"github.com/tileserver/tileserver/style"
)

// Locator identifies an image to open: a file under a slide root, the
// files of a DICOM series, a series on a DICOMweb server, or the synthetic
// test source with its parameters.
type Locator struct {
	// ID is stable across restarts (the item id, or "test").
	ID string
	// Path is the absolute file path, empty for the test and remote
	// sources.
	Path string
	// Version changes whenever the file changes (size and mtime); it is part
	// of every cache key. For a DICOM series it covers every instance; for
	// a remote series it is fixed when the item is imported.
	Version string
	// TestParams holds the test source's query parameters (the large_image_source_test source) when
	// Path and Remote are empty.
	TestParams map[string]string
	// SeriesPaths, when set, are the absolute paths of the DICOM files
	// opened together as one slide (Path among them), instead of letting
	// the reader look for siblings: what is opened is exactly what Version
	// covers.
	SeriesPaths []string
	// Remote is a DICOMweb series locator (dicomweb.Series.Locator()); the
	// series is opened over HTTP and its frames cached like stored tiles.
	Remote string
}

// readsLocalFiles reports whether the slide is read from local files (not
// object storage, DICOMweb or the test source).
func (l Locator) readsLocalFiles() bool {
	return l.Remote == "" && filepath.IsAbs(l.Path)
}

// EncodeOptions are the encoding parameters of image routes (large_image's encoding options).
type EncodeOptions struct {
	// Encoding is JPEG, PNG, WEBP, TIFF or JFIF (case-sensitive, as
	// large_image), or TILED for regions. Empty means the source's
	// default.
	Encoding        string
	JPEGQuality     int    // 0–100, default 95
	JPEGSubsampling int    // 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0
	TIFFCompression string // raw (default), none, lzw, deflate, jpeg, …
	// mmX, mmY are the millimetres per output pixel that TILED output
	// records; set by the region route.
	mmX, mmY float64
}

// TileRequest asks for one tile.
type TileRequest struct {
	Z, X, Y, Frame int
	Encode         EncodeOptions
	// Edge is "" (full-size tiles), "crop", or a colour such as "#rrggbb".
	Edge string
	// Style is the raw JSON style string, "" for none.
	Style string
}

// RegionRequest asks for a region (the region route of girder_large_image/rest/tiles.py and TileSource.getRegion); nil pointers mean
// "not given".
type RegionRequest struct {
	Left, Top, Right, Bottom  *float64
	RegionWidth, RegionHeight *float64
	Units, UnitsWH            string
	Width, Height             *int
	Fill                      string
	Magnification, MMX, MMY   *float64
	Exact                     bool
	Frame                     int
	Encode                    EncodeOptions
	Style                     string
	Resample                  string
}

// ThumbnailRequest asks for a thumbnail (TileSource.getThumbnail); zero Width/Height mean
// "not given".
type ThumbnailRequest struct {
	Width, Height int
	Fill          string
	Frame         int
	Encode        EncodeOptions
	Style         string
}

// DZIRequest asks for a DeepZoom tile (the DeepZoom routes of girder_large_image/rest/tiles.py).
type DZIRequest struct {
	Level, X, Y       int
	TileSize, Overlap int
	Encode            EncodeOptions
	Style             string
	Frame             int
}

// AssociatedRequest asks for an associated image (TileSource.getAssociatedImage).
type AssociatedRequest struct {
	Key           string
	Width, Height int
	Encode        EncodeOptions
}

// HistogramRequest asks for per-band histograms of a region
// (TileSource.histogram). Region.Resample false or 0 reads the level pixels
// without scaling them to the output size; absent or true resamples, as
// large_image's TileIterator does by default.
type HistogramRequest struct {
	Region RegionRequest
	// Bins is the number of bins (1–65536); 0 means 256.
	Bins int
	// RangeMin and RangeMax fix the range; when only one is given the other
	// is 0 or 256. nil for both means [min, max+1] of the data.
	RangeMin, RangeMax  *int
	RoundRange, Density bool
}

// PixelRequest asks for the values of one pixel (TileSource.getPixel).
type PixelRequest struct {
	Left, Top float64
	Units     string
	Frame     int
	// FrameList, when non-nil, asks for the pixel in each listed frame.
	FrameList []int
	Style     string
}

// TileFramesRequest asks for a montage of frames (TileSource.tileFrames and the quad_info route).
type TileFramesRequest struct {
	Region RegionRequest
	// FrameList selects frames; out-of-range entries are dropped and an
	// empty list means all frames.
	FrameList []int
	// FramesAcross is the number of columns; 0 means ceil(sqrt(n)).
	FramesAcross int
}

// QuadInfoRequest holds the options of tile_frames/quad_info (TileSource.tileFrames and the quad_info route);
// string options may name an axis (c, z, t, xy).
type QuadInfoRequest struct {
	// Format and Query are merged into every tile_frames parameter set;
	// nil Format means {encoding: JPEG, jpegQuality: 85, jpegSubsampling: 1}.
	Format, Query                      map[string]any
	FrameBase, FrameStride, FrameGroup string
	FrameGroupStride                   string
	FrameGroupFactor                   float64
	MaxTextureSize, MaxTextures        int
	MaxTotalTexturePixels, Alignment   int
	MaxFrameSize                       int
}

// Result is encoded image bytes ready to send.
type Result struct {
	Data []byte
	MIME string
	// CacheStatus is the X-Tile-Cache value: hit-memory, hit-memcached,
	// hit-disk, miss or coalesced ("" where no cache is involved).
	CacheStatus string
}

// Service is what the HTTP layer calls. Errors are *tilesource.Error (or
// wrap one) with the spec's statuses and messages.
type Service interface {
	// Metadata returns the JSON object of GET tiles (TileSource.getMetadata).
	Metadata(ctx context.Context, loc Locator) (map[string]any, error)
	// InternalMetadata returns the JSON object of tiles/internal_metadata.
	InternalMetadata(ctx context.Context, loc Locator) (map[string]any, error)
	Tile(ctx context.Context, loc Locator, req TileRequest) (*Result, error)
	Region(ctx context.Context, loc Locator, req RegionRequest) (*Result, error)
	Thumbnail(ctx context.Context, loc Locator, req ThumbnailRequest) (*Result, error)
	// DZIInfo returns the full-resolution size for dzi.dzi.
	DZIInfo(ctx context.Context, loc Locator) (sizeX, sizeY int, err error)
	DZITile(ctx context.Context, loc Locator, req DZIRequest) (*Result, error)
	// AssociatedNames lists associated image keys, sorted.
	AssociatedNames(ctx context.Context, loc Locator) ([]string, error)
	// Associated returns the image, or nil, nil for an unknown key.
	Associated(ctx context.Context, loc Locator, req AssociatedRequest) (*Result, error)
	// AssociatedMetadata returns {sizeX, sizeY, mode, …}, or an empty map
	// for an unknown key.
	AssociatedMetadata(ctx context.Context, loc Locator, key string) (map[string]any, error)
	// CanOpen reports whether a reader claims the file (used by import).
	CanOpen(ctx context.Context, path string) (sourceName string, err error)
	// Histogram returns one entry per band (TileSource.histogram).
	Histogram(ctx context.Context, loc Locator, req HistogramRequest) ([]style.BandHist, error)
	// Bands returns band statistics keyed by 1-based band number, as
	// large_image's /item/{id}/tiles/bands does.
	Bands(ctx context.Context, loc Locator, frame int) (map[string]style.BandInfo, error)
	// Pixel returns the pixel object, or a list of them with FrameList
	// (TileSource.getPixel).
	Pixel(ctx context.Context, loc Locator, req PixelRequest) (any, error)
	// TileFrames returns the montage of frames (TileSource.tileFrames and the quad_info route).
	TileFrames(ctx context.Context, loc Locator, req TileFramesRequest) (*Result, error)
	// QuadInfo returns the texture layout for tile_frames (TileSource.tileFrames and the quad_info route).
	QuadInfo(ctx context.Context, loc Locator, req QuadInfoRequest) (map[string]any, error)
}
