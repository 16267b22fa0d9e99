package pipeline

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"strconv"

	"golang.org/x/sync/errgroup"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilecache"
	"github.com/tileserver/tileserver/tilesource"
)

// errNotJPEG makes synthesiseJPEG fall back to the general path.
var errNotJPEG = errors.New("child tile is not a plain JPEG")

// synthesiseJPEG is the fast path of synthesise when the finer level is
// stored as JPEG (Aperio SVS, converter output, most slides): each child
// tile is decoded straight at 1/scale of its size by libjpeg's DCT scaling
// and pasted into place, so there is neither a full-size decode nor a
// resampling pass. The DCT scaling averages like a box filter where the
// general path uses LANCZOS; the difference is a few grey levels at edges
// and the cost is several times lower. ok is false when the fast path does
// not apply; the caller then takes the general path.
func (p *Pipeline) synthesiseJPEG(ctx context.Context, loc Locator, src tilesource.Source,
	frame, z, x, y, child, scale int) (img *encode.Image, ok bool, err error) {
	info := src.Info()
	tw, th := info.TileWidth, info.TileHeight
	if !info.Stored[child] || info.Format != encode.Uint8 || (info.Bands != 1 && info.Bands != 3) ||
		scale > 8 || tw%scale != 0 || th%scale != 0 {
		return nil, false, nil
	}
	if isJPEG, err := p.levelIsJPEG(ctx, loc, src, frame, child); err != nil || !isJPEG {
		return nil, false, err
	}
	// DCT scaling by 1/2 is within JPEG noise of large_image's LANCZOS
	// (about 38 dB); by 1/4 or 1/8 it averages like a box filter (27 dB).
	// So children are decoded at half size, and a larger step finishes
	// with Pillow's LANCZOS over the half-size canvas, as
	// _getTileFromEmptyLevel resizes the full one.
	cols, rows := info.TileCount(child)
	cw, ch, coverW, coverH := synthesisCanvas(info, x, y, scale, cols, rows)
	if coverW < cw || coverH < ch {
		// Tiles past the last column or row of children: large_image's
		// LANCZOS carries the children's colour a few pixels into the
		// transparent rest, which no DCT scaling gives.
		return nil, false, nil
	}
	dct := min(scale, 2)
	out := encode.NewImage(tw*scale/dct, th*scale/dct, info.Bands, encode.Uint8)
	sw, sh := tw/dct, th/dct
	shrink := "shrink=" + strconv.Itoa(dct)

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for j := range scale {
		for i := range scale {
			cx, cy := x*scale+i, y*scale+j
			if cx >= cols || cy >= rows {
				continue
			}
			g.Go(func() error {
				data, err := p.childJPEG(gctx, loc, src, frame, child, cx, cy)
				if err != nil {
					return err
				}
				// Children cover disjoint parts of out: each is decoded at
				// 1/scale by DCT scaling straight into its place.
				return p.step(gctx, tw*th, func() error {
					if w, h, _, err := encode.JPEGScaledSize(data, dct); err == nil && (w != sw || h != sh) {
						return errNotJPEG
					}
					err := encode.DecodeJPEGInto(data, dct, out, i*sw, j*sh)
					if !errors.Is(err, encode.ErrTurboUnsupported) {
						return err
					}
					small, err := encode.Decode(data, shrink)
					if err != nil {
						return err
					}
					if small.Width != sw || small.Height != sh || small.Bands != info.Bands || small.Format != encode.Uint8 {
						return errNotJPEG
					}
					paste(out, small, i*sw, j*sh)
					return nil
				})
			})
		}
	}
	if err := g.Wait(); err != nil {
		if errors.Is(err, errNotJPEG) {
			return nil, false, nil
		}
		return nil, false, err
	}
	// _getTileFromEmptyLevel's canvas: the children as stored, edge tiles
	// with the writer's padding beyond the image, cut only where the
	// canvas ends (synthesisCanvas).
	if scale == dct {
		// Decoded at half size, the canvas is the tile: what lies beyond
		// it is black, as the transparent rest of large_image's tile.
		encode.ClearOutside(out, (cw+scale-1)/scale, (ch+scale-1)/scale)
		return out, true, nil
	}
	// The half-size canvas resized, as _getTileFromEmptyLevel resizes its
	// whole canvas of children.
	err = p.step(ctx, out.Width*out.Height, func() error {
		half := padTo(out, (cw+dct-1)/dct, (ch+dct-1)/dct)
		resized, ok := pilResize(half, min(tw, (cw+scale-1)/scale), min(th, (ch+scale-1)/scale), pilLanczos)
		if !ok {
			return errNotJPEG
		}
		out = padTo(resized, tw, th)
		return nil
	})
	if err != nil {
		if errors.Is(err, errNotJPEG) {
			return nil, false, nil
		}
		return nil, false, err
	}
	return out, true, nil
}

// synthesisCanvas gives the canvas _getTileFromEmptyLevel makes tile
// (x, y) on, from child tiles scale times finer (cols×rows of them): its
// size is min(sizeX, tileWidth·scale) × min(sizeY, tileHeight·scale) in
// child pixels (large_image takes the full image's size, whatever the
// tile and child level, so only a tile wider than the whole image is cut),
// and the children it pastes cover its top-left coverW×coverH; the rest is
// transparent.
func synthesisCanvas(info *tilesource.Info, x, y, scale, cols, rows int) (cw, ch, coverW, coverH int) {
	tw, th := info.TileWidth, info.TileHeight
	cw, ch = min(info.SizeX, tw*scale), min(info.SizeY, th*scale)
	coverW = min(cw, max(cols-x*scale, 1)*tw)
	coverH = min(ch, max(rows-y*scale, 1)*th)
	return cw, ch, coverW, coverH
}

// resizeCanvas scales a synthesis canvas to w×h as _getTileFromEmptyLevel
// does (resizeImage: Pillow's LANCZOS). Its canvas is RGBA and transparent
// where no child lies (right of coverW, below coverH), and Pillow resizes
// RGBA premultiplied, so that area weighs nothing in the sums next to it
// and comes out black when the tile is converted back to its mode: a grey
// or RGB canvas with such an area gets an alpha band for the resize.
func resizeCanvas(canvas *encode.Image, coverW, coverH, w, h int) (*encode.Image, error) {
	bands := canvas.Bands
	if (coverW >= canvas.Width && coverH >= canvas.Height) || (bands != 1 && bands != 3) || canvas.Format != encode.Uint8 {
		return resizeImage(canvas, w, h)
	}
	withAlpha := encode.NewImage(canvas.Width, canvas.Height, bands+1, encode.Uint8)
	for r := range min(coverH, canvas.Height) {
		src := canvas.Pix[r*canvas.Stride():]
		dst := withAlpha.Pix[r*withAlpha.Stride():]
		for c := range min(coverW, canvas.Width) {
			copy(dst[c*(bands+1):], src[c*bands:(c+1)*bands])
			dst[c*(bands+1)+bands] = 255
		}
	}
	resized, err := resizeImage(withAlpha, w, h)
	if err != nil {
		return nil, err
	}
	out := encode.NewImage(w, h, bands, encode.Uint8)
	for i := range w * h {
		copy(out.Pix[i*bands:(i+1)*bands], resized.Pix[i*(bands+1):])
	}
	return out, nil
}

// childJPEG returns the JPEG bytes of a tile of a stored level. When the
// source has no ICC profile, the stored bytes are exactly what the zxy
// route serves for the tile, so they are read through the tile cache under
// that route's key: tiles a viewer has seen are reused, and tiles read here
// are ready for the viewer. The producer behind that key is the zxy
// route's own (produceTile with the default options), so a viewer's
// request coalesced with this read always gets the zxy bytes: never an
// error, whatever the source stores.
func (p *Pipeline) childJPEG(ctx context.Context, loc Locator, src tilesource.Source, frame, z, x, y int) ([]byte, error) {
	if p.tiles == nil || len(src.Info().ICCProfile) > 0 {
		t, err := src.ReadTile(ctx, frame, z, x, y)
		if err != nil {
			return nil, err
		}
		if t.Encoded == nil || t.Encoding != "JPEG" {
			return nil, errNotJPEG
		}
		return t.Encoded, nil
	}
	return p.zxyJPEG(ctx, loc, src, frame, z, x, y)
}

// zxyJPEG returns the zxy route's answer for a tile with the default
// options (its JPEG, unstyled), through the tile cache under that route's
// key when there is one.
func (p *Pipeline) zxyJPEG(ctx context.Context, loc Locator, src tilesource.Source, frame, z, x, y int) ([]byte, error) {
	req := TileRequest{Z: z, X: x, Y: y, Frame: frame, Encode: DefaultEncode}
	produce := func(ctx context.Context) ([]byte, error) {
		return p.produceTile(ctx, loc, src, req, "JPEG", edgeSpec{}, styleSpec{})
	}
	if p.tiles == nil {
		return produce(ctx)
	}
	data, _, err := p.tiles.GetOrProduce(ctx, tileKey(loc, z, x, y, frame, encodingKey("JPEG", DefaultEncode), "", ""), produce)
	return data, err
}

// zxyPixelsApply reports whether a region read from level z of the pyramid
// (Config.RegionsFromPyramid) takes its pixels from the zxy route's tiles
// (zxyPixels): for a level the source does not store, of 8-bit grey or RGB
// images without an ICC profile, whose zxy tiles are JPEG and hold exactly
// the unstyled pixels. Stored levels are read as stored; other images
// read synthesised levels as raw pixels.
func zxyPixelsApply(loc Locator, info *tilesource.Info, z int) bool {
	return !info.Stored[z] && info.Format == encode.Uint8 && (info.Bands == 1 || info.Bands == 3) &&
		len(info.ICCProfile) == 0 && !loc.isTest()
}

// zxyPixels returns tile (x, y) of level z as a viewer sees it: the zxy
// route's JPEG decoded. Regions read this way are made of the very tiles
// the viewer shows (and reuse those it has fetched); the pixels depend
// only on the source, never on what is cached.
func (p *Pipeline) zxyPixels(ctx context.Context, loc Locator, src tilesource.Source, frame, z, x, y int) (*encode.Image, error) {
	data, err := p.zxyJPEG(ctx, loc, src, frame, z, x, y)
	if err != nil {
		return nil, err
	}
	info := src.Info()
	var img *encode.Image
	err = p.step(ctx, info.TileWidth*info.TileHeight, func() error {
		var err error
		img, err = encode.Decode(data, "")
		return err
	})
	if err != nil {
		return nil, err
	}
	if img.Bands != info.Bands || img.Format != encode.Uint8 {
		return nil, tilesource.Errorf(http.StatusInternalServerError, "Internal I/O failure: unexpected zxy tile")
	}
	return img, nil
}

// levelIsJPEG reports whether level z of frame is stored as plain JPEG
// tiles. It decides from the source alone (its first tile, read directly,
// remembered per source version), never from what the tile cache holds:
// the synthesis method, and so the bytes of a synthesised tile, must not
// depend on which children happen to be cached (a zxy JPEG that was
// encoded from decoded pixels is not a stored JPEG).
func (p *Pipeline) levelIsJPEG(ctx context.Context, loc Locator, src tilesource.Source, frame, z int) (bool, error) {
	key := identity(loc) + "\x00" + strconv.Itoa(frame) + "\x00" + strconv.Itoa(z)
	if v, ok := p.jpegLevels.Load(key); ok {
		return v.(bool), nil
	}
	t, err := src.ReadTile(ctx, frame, z, 0, 0)
	if err != nil {
		return false, err
	}
	ok := t.Encoded != nil && t.Encoding == "JPEG"
	p.jpegLevels.Store(key, ok)
	return ok, nil
}

// tileKey is the tile cache key of a zxy/fzxy tile: tilecache.Key of
// identity(loc), "tile", z, x, y, frame and the encoding, edge and style
// keys, built in place (it is computed for every tile request).
func tileKey(loc Locator, z, x, y, frame int, encKey, edgeKey, styleKey string) string {
	var buf [256]byte
	b := tilecache.AppendKeyPart(appendIdentity(buf[:0], loc), "tile")
	for _, v := range [...]int{z, x, y, frame} {
		b = tilecache.AppendKeyInt(b, v)
	}
	for _, s := range [...]string{encKey, edgeKey, styleKey} {
		b = tilecache.AppendKeyPart(b, s)
	}
	return tilecache.KeyOf(b)
}
