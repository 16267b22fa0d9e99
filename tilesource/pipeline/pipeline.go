package pipeline

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilecache"
	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/detect"
	"github.com/tileserver/tileserver/tilesource/dicom"
	"github.com/tileserver/tileserver/tilesource/dicom/dicomweb"
	"github.com/tileserver/tileserver/tilesource/testsource"
	"github.com/tileserver/tileserver/tilesource/work"
)

// Config wires the pipeline to its caches.
type Config struct {
	// Tiles caches encoded tiles, thumbnails and unstyled raw-pixel tiles;
	// nil disables tile caching.
	Tiles tilecache.Tiles
	// Sources caches open sources; nil uses a tilecache.SourceCache with
	// its default budget.
	Sources tilecache.Sources
	// Open opens a file; nil means detect.Open. Tests and tools may swap
	// it.
	Open func(path string) (tilesource.Source, error)
	// OpenSeries opens the files of a DICOM series (Locator.SeriesPaths);
	// nil means dicom.OpenSeries.
	OpenSeries func(paths []string) (tilesource.Source, error)
	// HTTPClient fetches DICOMweb series; nil means DefaultHTTPClient().
	HTTPClient *http.Client
	// Work is the global budget of pixel work (decoding, resampling,
	// encoding); nil admits everything at once.
	Work *work.Budget
	// DICOMweb are the configured DICOMweb archives (their URLs and
	// credentials); nil knows none, and series named by URL still open.
	DICOMweb *dicomweb.Archives
	// RegionsFromPyramid makes images of an area (regions, thumbnails,
	// DeepZoom and IIIF images) from the pyramid level their output
	// needs, made like the zxy route's tiles of that level (and through
	// the same cache entries) when the file does not store it. large_image
	// instead reads the finest level within two of the needed one from
	// the file and scales it with LANCZOS: at 5× of a slide that stores
	// only 20×, 16 times the output's pixels. The pixels differ from
	// large_image's by about JPEG noise, except that an area within a
	// pixel of the output's size on the level is cut from the level's
	// grid (moved by less than an output pixel; see planRegion). The analysis routes (histogram,
	// bands, pixel) always read as large_image does.
	RegionsFromPyramid bool
}

// Pipeline implements Service.
type Pipeline struct {
	tiles   tilecache.Tiles
	sources tilecache.Sources
	open    func(path string) (tilesource.Source, error)
	series  func(paths []string) (tilesource.Source, error)
	client  *http.Client
	work    *work.Budget
	// archives resolves DICOMweb locators.
	archives *dicomweb.Archives
	// stats caches frame statistics for automatic style ranges.
	stats statsCache
	// readableAssoc remembers, per file version and associated image
	// key, whether the image decodes (AssociatedNames).
	readableAssoc sync.Map
	// jpegLevels remembers which stored levels hold plain JPEG tiles
	// (levelIsJPEG), keyed by source identity, frame and level.
	jpegLevels sync.Map
	// pyramidRegions is Config.RegionsFromPyramid.
	pyramidRegions bool
}

var _ Service = (*Pipeline)(nil)

// New returns a pipeline over cfg's caches.
func New(cfg Config) (*Pipeline, error) {
	p := &Pipeline{tiles: cfg.Tiles, sources: cfg.Sources, open: cfg.Open, client: cfg.HTTPClient, work: cfg.Work,
		archives: cfg.DICOMweb, pyramidRegions: cfg.RegionsFromPyramid}
	if p.client == nil {
		p.client = DefaultHTTPClient()
	}
	if p.sources == nil {
		p.sources = tilecache.NewSources(tilecache.DefaultSourcesConfig())
	}
	if p.open == nil {
		p.open = detect.Open
	}
	p.series = cfg.OpenSeries
	if p.series == nil {
		p.series = dicom.OpenSeries
	}
	return p, nil
}

// identity is the part of every cache key that names the image: the item
// id and version for files, the canonical parameters for the test source
// (whose id is the same for every parameter set).
func identity(loc Locator) string {
	if loc.isTest() {
		return "test?" + testParamsKey(loc.TestParams)
	}
	return loc.ID + identitySep + loc.Version
}

// RenderVersion names how this release renders images. The tile cache's
// shared tiers (memcached, disk) keep entries under it
// (tilecache.Config.Namespace), so replicas of releases that render
// differently never serve each other's bytes. Change it with any change
// to the bytes of a cached entry: pixels, encoding or the parts of a key.
const RenderVersion = "render 2"

// identitySep separates the id and version in a file's identity.
const identitySep = "\x00"

// appendIdentity appends identity(loc) to b as one key part
// (tilecache.AppendKeyPart), without making the string for a file.
func appendIdentity(b []byte, loc Locator) []byte {
	if loc.isTest() {
		return tilecache.AppendKeyPart(b, identity(loc))
	}
	return tilecache.AppendKeyPart(b, loc.ID, identitySep, loc.Version)
}

// testParamsKey is the sorted, source-defining subset of the test source's
// parameters, so that per-request parameters (frame, encoding, …) share one
// open source.
func testParamsKey(params map[string]string) string {
	var parts []string
	for _, k := range testsource.Params {
		if v, ok := params[k]; ok {
			parts = append(parts, k+"="+v)
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, "&")
}

// acquire returns the open source for loc; release must be called when the
// caller is done with it.
func (p *Pipeline) acquire(ctx context.Context, loc Locator) (tilesource.Source, func(), error) {
	key := "file:" + loc.Path + "\x00" + loc.Version
	open := func() (tilecache.Resource, error) { return p.open(loc.Path) }
	switch {
	case loc.Remote != "":
		key = loc.Remote + "\x00" + loc.Version
		open = func() (tilecache.Resource, error) { return p.openRemote(loc.Remote, loc.Version) }
	case len(loc.SeriesPaths) > 0:
		open = func() (tilecache.Resource, error) { return p.series(loc.SeriesPaths) }
	case loc.isTest():
		key = "test:" + testParamsKey(loc.TestParams)
		open = func() (tilecache.Resource, error) { return testsource.New(loc.TestParams) }
	}
	res, release, err := p.sources.Acquire(ctx, key, open)
	if err != nil {
		return nil, nil, publicError(err)
	}
	src, ok := res.(tilesource.Source)
	if !ok {
		release()
		return nil, nil, tilesource.Errorf(http.StatusInternalServerError, "Internal error")
	}
	return src, release, nil
}

// publicError makes sure every error leaving the pipeline is a
// *tilesource.Error (or wraps one), keeping the original as the cause.
func publicError(err error) error {
	var te *tilesource.Error
	if err == nil || errors.As(err, &te) {
		return err
	}
	switch {
	case errors.Is(err, work.ErrOverloaded):
		return &tilesource.Error{Status: http.StatusServiceUnavailable, Message: "Server busy, try again later", Cause: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &tilesource.Error{Status: http.StatusServiceUnavailable, Message: "Request timed out, try again later", Cause: err}
	case errors.Is(err, context.Canceled):
		return &tilesource.Error{Status: 499, Message: "Request cancelled", Cause: err}
	}
	return &tilesource.Error{Status: http.StatusInternalServerError, Message: "Internal I/O failure", Cause: err}
}

// step runs fn, one unit of pixel work on about px pixels, within the
// global work budget. fn must not wait for other work that needs the
// budget (a cache flight, a child tile).
func (p *Pipeline) step(ctx context.Context, px int, fn func() error) error {
	release, err := p.work.Acquire(ctx, int64(px))
	if err != nil {
		return err
	}
	defer release()
	return fn()
}

// withSource runs fn with the open source of loc.
func (p *Pipeline) withSource(ctx context.Context, loc Locator, fn func(tilesource.Source) error) error {
	src, release, err := p.acquire(ctx, loc)
	if err != nil {
		return err
	}
	defer release()
	return publicError(fn(src))
}

// Metadata returns the JSON object of GET tiles (TileSource.getMetadata).
func (p *Pipeline) Metadata(ctx context.Context, loc Locator) (map[string]any, error) {
	var m map[string]any
	err := p.withSource(ctx, loc, func(src tilesource.Source) error {
		m = tilesource.FrameMetadata(src.Info())
		return nil
	})
	return m, err
}

// InternalMetadata returns the source's own metadata plus "tilesource" and
// "populatedLevels" (TileSource.getInternalMetadata).
func (p *Pipeline) InternalMetadata(ctx context.Context, loc Locator) (map[string]any, error) {
	m := map[string]any{}
	err := p.withSource(ctx, loc, func(src tilesource.Source) error {
		for k, v := range src.InternalMetadata() {
			m[k] = v
		}
		info := src.Info()
		// large_image's ImageItem.getInternalMetadata lists the profiles'
		// descriptions when the source has any.
		if desc, ok := encode.ICCProfileInfo(info.ICCProfile); ok {
			m["iccprofiles"] = []string{desc}
		}
		m["tilesource"] = info.SourceName
		n := 0
		for _, s := range info.Stored {
			if s {
				n++
			}
		}
		m["populatedLevels"] = n
		return nil
	})
	return m, err
}

// DZIInfo returns the full-resolution size for dzi.dzi.
func (p *Pipeline) DZIInfo(ctx context.Context, loc Locator) (int, int, error) {
	var w, h int
	err := p.withSource(ctx, loc, func(src tilesource.Source) error {
		w, h = src.Info().SizeX, src.Info().SizeY
		return nil
	})
	return w, h, err
}

// AssociatedNames lists associated image keys, sorted: those that decode,
// as large_image lists only the associated images it could read (its
// readers load them when they open a file). Each is decoded once per
// file version, the verdict remembered.
func (p *Pipeline) AssociatedNames(ctx context.Context, loc Locator) ([]string, error) {
	var names []string
	err := p.withSource(ctx, loc, func(src tilesource.Source) error {
		for _, name := range src.AssociatedNames() {
			key := identity(loc) + "\x00" + name
			ok, known := p.readableAssoc.Load(key)
			if !known {
				err := p.step(ctx, maxStepPixels, func() error {
					_, err := src.Associated(name)
					return err
				})
				if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
					return err
				}
				ok = err == nil
				p.readableAssoc.Store(key, ok)
			}
			if ok.(bool) {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		return nil
	})
	return names, err
}

// errNoAssociated marks an unknown associated image key inside the cache's
// producer, so that nothing is stored for it.
var errNoAssociated = errors.New("no such associated image")

// Associated returns an associated image scaled into the requested box
// (TileSource.getAssociatedImage), or nil, nil for an unknown key. Results go through the tile
// cache, so warm-up (Warm) pays off for them as for thumbnails.
func (p *Pipeline) Associated(ctx context.Context, loc Locator, req AssociatedRequest) (*Result, error) {
	enc, mime, err := encodingFor(loc, req.Encode.Encoding)
	if err != nil {
		return nil, err
	}
	if enc == "TILED" {
		enc = "TIFF" // a plain TIFF, as large_image's _encodeImageBinary writes it
	}
	if req.Width < 0 || req.Height < 0 {
		return nil, tilesource.BadRequest("Value Error: Invalid width or height.  Minimum value is 0.")
	}
	if err := checkEncodable(enc, req.Encode, 0, 0); err != nil {
		return nil, err
	}
	key := tilecache.Key(identity(loc), "associated", req.Key, strconv.Itoa(req.Width),
		strconv.Itoa(req.Height), encodingKey(enc, req.Encode))
	res, err := p.cachedEncoded(ctx, key, enc, mime, req.Encode, func(ctx context.Context) (*encode.Image, error) {
		var img *encode.Image
		err := p.withSource(ctx, loc, func(src tilesource.Source) error {
			// An associated image's size is known only once read: count
			// it as a large step.
			return p.step(ctx, maxStepPixels, func() error {
				var err error
				img, err = src.Associated(req.Key)
				return err
			})
		})
		if err != nil {
			return nil, err
		}
		if img == nil {
			return nil, errNoAssociated
		}
		if req.Width == 0 && req.Height == 0 {
			return img, nil
		}
		var mw, mh *int
		if req.Width > 0 {
			mw = &req.Width
		}
		if req.Height > 0 {
			mh = &req.Height
		}
		w, h := calculateWidthHeight(mw, mh, img.Width, img.Height)
		if err := checkOutput(w, h); err != nil {
			return nil, err
		}
		var out *encode.Image
		err = p.step(ctx, img.Width*img.Height+w*h, func() error {
			var err error
			out, err = resizeImage(img, w, h)
			return err
		})
		return out, err
	})
	if errors.Is(err, errNoAssociated) {
		return nil, nil
	}
	return res, err
}

// AssociatedMetadata returns {sizeX, sizeY, mode} of an associated image,
// or an empty map for an unknown key.
func (p *Pipeline) AssociatedMetadata(ctx context.Context, loc Locator, key string) (map[string]any, error) {
	m := map[string]any{}
	err := p.withSource(ctx, loc, func(src tilesource.Source) error {
		img, err := src.Associated(key)
		if err != nil || img == nil {
			return err
		}
		m["sizeX"], m["sizeY"], m["mode"] = img.Width, img.Height, pilMode(img.Bands)
		return nil
	})
	return m, err
}

// pilMode is the PIL mode name of an image with n bands.
func pilMode(n int) string {
	switch n {
	case 1:
		return "L"
	case 2:
		return "LA"
	case 4:
		return "RGBA"
	}
	return "RGB"
}

// CanOpen reports whether a reader claims the file (used by import).
func (p *Pipeline) CanOpen(ctx context.Context, path string) (string, error) {
	src, err := p.open(path)
	if err != nil {
		return "", publicError(err)
	}
	name := src.Info().SourceName
	src.Close()
	return name, nil
}
