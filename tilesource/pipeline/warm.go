package pipeline

import (
	"context"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilecache"
	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/work"
)

// DefaultWarmMaxTiles bounds the levels a warm-up fills: every level up to
// the last one with at most this many tiles, which is what a viewer shows
// before the user zooms in.
const DefaultWarmMaxTiles = 64

// DefaultEncode is what the image routes use when a client gives no
// encoding parameters. Background work produces with exactly these options
// so that it fills the keys a later viewer request looks up.
var DefaultEncode = EncodeOptions{JPEGQuality: encode.DefaultJPEGQuality}

// WarmOptions configure one warm-up.
type WarmOptions struct {
	// MaxTiles: levels 0…L are warmed, L being the last level with at most
	// MaxTiles tiles; 0 means DefaultWarmMaxTiles.
	MaxTiles int
	// Wait, when set, is called before each production; it may block (to
	// yield to real requests) and its error stops the warm-up.
	Wait func(ctx context.Context) error
}

// WarmProgress counts a warm-up's work. Total is known once the source is
// open.
type WarmProgress struct {
	Total int `json:"total"`
	Done  int `json:"done"`
	// Produced counts results made now, Cached those already in a tier.
	Produced int `json:"produced"`
	Cached   int `json:"cached"`
	Failed   int `json:"failed"`
	// Levels is the number of levels warmed (0…Levels-1).
	Levels int `json:"levels"`
}

// Warm produces into the tile cache what a viewer asks for first: the
// default thumbnail, every tile of frame 0 of the low-resolution levels
// and the associated images. Everything goes through the public methods
// (Tile, Thumbnail, Associated) with the routes' default parameters, so
// the keys are those of real requests and a viewer's first requests are
// hits. A failing tile is counted and skipped; only a source that cannot
// be opened fails the warm-up. progress, when set, is called after each
// unit.
func (p *Pipeline) Warm(ctx context.Context, loc Locator, opt WarmOptions, progress func(WarmProgress)) (WarmProgress, error) {
	// Warm-up yields the work budget to every request, and keeps what it
	// makes: it works ahead of a viewer's first requests.
	ctx = tilecache.KeepAtOnce(work.WithPriority(ctx, work.Background))
	maxTiles := opt.MaxTiles
	if maxTiles <= 0 {
		maxTiles = DefaultWarmMaxTiles
	}
	var info tilesource.Info
	var names []string
	err := p.withSource(ctx, loc, func(src tilesource.Source) error {
		info = *src.Info()
		names = append(names, src.AssociatedNames()...)
		return nil
	})
	if err != nil {
		return WarmProgress{}, err
	}
	var pr WarmProgress
	var counts []int
	for z := 0; z < info.Levels; z++ {
		cols, rows := info.TileCount(z)
		if z > 0 && cols*rows > maxTiles {
			break
		}
		counts = append(counts, cols*rows)
		pr.Total += cols * rows
	}
	pr.Levels = len(counts)
	pr.Total += 1 + len(names)

	step := func(run func() (*Result, error)) error {
		if opt.Wait != nil {
			if err := opt.Wait(ctx); err != nil {
				return err
			}
		}
		res, err := run()
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			pr.Failed++
		case res == nil || res.CacheStatus == "" || res.CacheStatus == tilecache.StatusMiss:
			pr.Produced++
		default:
			pr.Cached++
		}
		pr.Done++
		if progress != nil {
			progress(pr)
		}
		return ctx.Err()
	}
	// The thumbnail first: item lists show it before anyone opens a slide.
	if err := step(func() (*Result, error) {
		return p.Thumbnail(ctx, loc, ThumbnailRequest{Encode: DefaultEncode})
	}); err != nil {
		return pr, err
	}
	for z, n := range counts {
		cols, _ := info.TileCount(z)
		for i := range n {
			req := TileRequest{Z: z, X: i % cols, Y: i / cols, Encode: DefaultEncode}
			if err := step(func() (*Result, error) { return p.Tile(ctx, loc, req) }); err != nil {
				return pr, err
			}
		}
	}
	for _, name := range names {
		req := AssociatedRequest{Key: name, Encode: DefaultEncode}
		if err := step(func() (*Result, error) { return p.Associated(ctx, loc, req) }); err != nil {
			return pr, err
		}
	}
	return pr, nil
}
