package pipeline

// The tile path, top to bottom: validate the request,
// build the cache key, look the tile up (coalescing concurrent misses), and
// on a miss open the source, range-check, read the stored tile or
// synthesise a missing level from finer ones, pass stored bytes through
// when nothing needs changing, else decode, pad, apply the edge, style,
// convert to 8 bits and encode.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/style"
	"github.com/tileserver/tileserver/tilecache"
	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/limits"
)

// maxSkippedLevels is how many levels one synthesis stage may span (as in
// large_image's _getTileFromEmptyLevel): at most 8×8 child tiles are
// combined at once; larger gaps go through intermediate synthesised levels,
// which are cached and reused.
const maxSkippedLevels = tilesource.SynthMaxSkip

// maxStepPixels is the weight of a step whose size is unknown beforehand
// (an associated image): the whole budget, so it runs alone.
const maxStepPixels = math.MaxInt32

// Tile returns one encoded tile (the zxy route of girder_large_image/rest/tiles.py).
func (p *Pipeline) Tile(ctx context.Context, loc Locator, req TileRequest) (*Result, error) {
	// 1. Validate everything that needs no image, so bad requests cost
	// nothing and never reach the caches.
	enc, mime, err := encodingFor(loc, req.Encode.Encoding)
	if err != nil {
		return nil, err
	}
	if err := checkEncodable(enc, req.Encode, 0, 0); err != nil {
		return nil, err
	}
	style, err := parseStyle(req.Style, http.StatusNotFound)
	if err != nil {
		return nil, err
	}
	edge, err := parseEdge(req.Edge)
	if err != nil {
		return nil, err
	}
	if req.Z < 0 || req.X < 0 || req.Y < 0 {
		return nil, tilesource.BadRequest("x, y, and z must be positive integers")
	}

	// 2. The key covers everything that changes the bytes. Only in-range
	// tiles are ever stored, so a hit needs no range check and no open
	// source: the range check runs on the miss path below.
	key := tileKey(loc, req.Z, req.X, req.Y, req.Frame, encodingKey(enc, req.Encode), edge.key, style.key)
	if p.tiles != nil {
		// A hit returns before the production below is even built: its
		// closure would move the request to the heap on every call.
		if data, ok := p.tiles.PeekMemory(key); ok {
			return &Result{Data: data, MIME: mime, CacheStatus: tilecache.StatusHitMemory}, nil
		}
	}
	return p.produceCachedTile(ctx, loc, req, key, enc, mime, edge, style)
}

// produceCachedTile is the miss path of Tile: the tile through the cache's
// lower tiers or, failing them, produced.
func (p *Pipeline) produceCachedTile(ctx context.Context, loc Locator, req TileRequest, key, enc, mime string, edge edgeSpec, style styleSpec) (*Result, error) {
	data, status, err := p.cached(ctx, key, func(ctx context.Context) ([]byte, error) {
		src, release, err := p.acquire(ctx, loc)
		if err != nil {
			return nil, err
		}
		defer release()
		if err := src.Info().CheckTile(req.Z, req.X, req.Y, req.Frame); err != nil {
			return nil, err
		}
		// A style whose bands all name a frame renders that frame (TileSource.getTile).
		req.Frame = style.st.EffectiveFrame(req.Frame)
		if req.Frame < 0 || req.Frame >= src.Info().FrameCount() {
			return nil, tilesource.ErrFrameRange
		}
		return p.produceTile(ctx, loc, src, req, enc, edge, style)
	})
	if err != nil {
		return nil, tileError(err)
	}
	return &Result{Data: data, MIME: mime, CacheStatus: status}, nil
}

// tileError maps failures on the tile routes: every source error is a 404
// there (large_image maps TileGeneralError to 404), request errors keep
// their 400. A remote server's failure (502, 504) stays one: the tile
// exists, it could not be fetched now.
func tileError(err error) error {
	err = publicError(err)
	var te *tilesource.Error
	if errors.As(err, &te) && te.Status >= 500 && te.Status != 499 && te.Status != http.StatusServiceUnavailable &&
		te.Status != http.StatusBadGateway && te.Status != http.StatusGatewayTimeout {
		return tilesource.WithStatus(err, http.StatusNotFound)
	}
	return err
}

// produceTile makes the encoded tile on a cache miss.
func (p *Pipeline) produceTile(ctx context.Context, loc Locator, src tilesource.Source, req TileRequest,
	enc string, edge edgeSpec, style styleSpec) ([]byte, error) {
	info := src.Info()
	profile, intent := style.profile(info)
	var img *encode.Image
	switch {
	case style.pixels():
		// Styled: every frame's pixels come unstyled through the raw-tile
		// cache. Bands are read from uncorrected pixels, as large_image
		// does, so no ICC transform applies.
		var err error
		img, err = p.applyStyle(ctx, loc, src, style.st, req.Frame, func(f int) (*encode.Image, error) {
			return p.readRaw(ctx, loc, src, f, req.Z, req.X, req.Y)
		})
		if err != nil {
			return nil, err
		}
		// A reader whose edge tiles stop at the image: large_image styles
		// the partial tile, then pads it with zeros (transparent).
		if info.EdgeTilesPartial && info.Stored[req.Z] && isEdgeTile(info, req.Z, req.X, req.Y) {
			lw, lh := info.LevelSize(req.Z)
			img = padTo(img, info.TileWidth, info.TileHeight)
			encode.ClearOutside(img, lw-req.X*info.TileWidth, lh-req.Y*info.TileHeight)
		}
	case info.Stored[req.Z] && info.AllLevelsPopulated && isEdgeTile(info, req.Z, req.X, req.Y):
		// A DICOM reader's edge tile is black beyond the image, so never
		// passed on as stored: its pixels come through the raw-tile
		// cache, where making a coarser level may have put them, so that
		// the frame is fetched once (a request each, from DICOMweb).
		var err error
		if img, err = p.readRaw(ctx, loc, src, req.Frame, req.Z, req.X, req.Y); err != nil {
			return nil, err
		}
		img = iccTransform(img, profile, intent)
	case info.Stored[req.Z]:
		var t *tilesource.Tile
		err := p.step(ctx, info.TileWidth*info.TileHeight, func() error {
			var err error
			t, err = src.ReadTile(ctx, req.Frame, req.Z, req.X, req.Y)
			return err
		})
		if err != nil {
			return nil, err
		}
		// 3. Passthrough: the stored bytes already are the answer. A
		// source with an ICC profile keeps the fast path by embedding the
		// profile in the JPEG, so viewers colour-manage it; {"icc": false}
		// serves the bytes as stored. A stored JPEG whose header libjpeg
		// refuses is never served as it is: it takes the decode path,
		// which makes a good tile of it or fails as the PNG route does
		// (large_image answers an error for such a tile too).
		if t.Encoded != nil && t.Encoding == enc &&
			(edge.kind == edgeNone || !isEdgeTile(info, req.Z, req.X, req.Y)) &&
			(enc != "JPEG" || encode.CheckJPEGHeader(t.Encoded) == nil) {
			if loc.readsLocalFiles() {
				// Made again by one read of the file (the page cache's,
				// most often): kept in memory from its second request
				// on, so that tiles requested once take none.
				tilecache.MarkCheap(ctx)
			}
			if profile == nil {
				return t.Encoded, nil
			}
			if enc == "JPEG" {
				if seg := encode.ICCSegments(profile); seg != nil {
					return encode.EmbedICC(t.Encoded, seg), nil
				}
			}
		}
		if err := p.step(ctx, info.TileWidth*info.TileHeight, func() error {
			var err error
			img, err = t.Image()
			return err
		}); err != nil {
			return nil, err
		}
		img = iccTransform(padTo(img, info.TileWidth, info.TileHeight), profile, intent)
	default:
		// A synthesised tile: its encoded form is what the cache keeps;
		// the children it is made of went through the cache already.
		var err error
		if img, err = p.produceRaw(ctx, loc, src, req.Frame, req.Z, req.X, req.Y); err != nil {
			return nil, err
		}
		img = iccTransform(img, profile, intent)
	}
	// 4. Decode path: full size, edge, 8 bits, encode (which drops alpha
	// for JPEG).
	var out []byte
	err := p.step(ctx, info.TileWidth*info.TileHeight, func() error {
		img = padTo(img, info.TileWidth, info.TileHeight)
		img = applyEdge(img, info, req.Z, req.X, req.Y, edge)
		var err error
		out, err = encode.Encode(img, encodeOptions(enc, req.Encode))
		return err
	})
	return out, err
}

// cached runs produce through the tile cache, or directly without one.
// produce must use the context it is given, not the caller's: with a
// cache, the production is shared by every caller of key and outlives any
// one of them.
func (p *Pipeline) cached(ctx context.Context, key string, produce func(context.Context) ([]byte, error)) ([]byte, string, error) {
	if p.tiles == nil {
		b, err := produce(ctx)
		return b, "", err
	}
	return p.tiles.GetOrProduce(ctx, key, produce)
}

// readRaw returns the unstyled pixels of tile (x, y) of level z, full size,
// through the tile cache as a raw-pixel entry, synthesising levels the
// source does not store. The returned image may share memory with the
// cache: callers must not modify it.
func (p *Pipeline) readRaw(ctx context.Context, loc Locator, src tilesource.Source, frame, z, x, y int) (*encode.Image, error) {
	key := tilecache.Key(identity(loc), "tile", strconv.Itoa(z), strconv.Itoa(x), strconv.Itoa(y),
		strconv.Itoa(frame), "raw")
	val, _, err := p.cached(ctx, key, func(ctx context.Context) ([]byte, error) {
		img, err := p.produceRaw(ctx, loc, src, frame, z, x, y)
		if err != nil {
			return nil, err
		}
		return marshalRaw(img), nil
	})
	if err != nil {
		return nil, err
	}
	return unmarshalRaw(val)
}

func (p *Pipeline) produceRaw(ctx context.Context, loc Locator, src tilesource.Source, frame, z, x, y int) (*encode.Image, error) {
	info := src.Info()
	if !info.Stored[z] {
		return p.synthesise(ctx, loc, src, frame, z, x, y)
	}
	var img *encode.Image
	var stored []byte
	err := p.step(ctx, info.TileWidth*info.TileHeight, func() error {
		t, err := src.ReadTile(ctx, frame, z, x, y)
		if err != nil {
			return err
		}
		if t.Encoded != nil && t.Encoding == "JPEG" {
			stored = t.Encoded
		}
		if img, err = t.Image(); err != nil {
			return err
		}
		img = padTo(img, info.TileWidth, info.TileHeight)
		return nil
	})
	if err == nil && stored != nil && p.tiles != nil && len(info.ICCProfile) == 0 {
		// The stored JPEG is also the zxy route's answer for this tile
		// (passthrough): keep it, so that a viewer's request does not
		// read the tile again (a frame fetch, for DICOMweb).
		key := tileKey(loc, z, x, y, frame, encodingKey("JPEG", DefaultEncode), "", "")
		p.tiles.GetOrProduce(ctx, key, func(context.Context) ([]byte, error) { return stored, nil })
	}
	return img, err
}

// synthesise builds tile (x, y) of a level the source does not store from
// the tiles of a finer level (TileSource._getTileFromEmptyLevel): LANCZOS for 8-bit images of up to
// 4 bands, nearest neighbour otherwise.
func (p *Pipeline) synthesise(ctx context.Context, loc Locator, src tilesource.Source, frame, z, x, y int) (*encode.Image, error) {
	info := src.Info()
	child := z + 1
	for child < info.Levels && !info.Stored[child] {
		child++
	}
	if child >= info.Levels {
		return nil, tilesource.Errorf(http.StatusInternalServerError, "Internal I/O failure: no stored level")
	}
	// A wider gap is bridged from the stored level down in steps of
	// maxSkippedLevels, the remainder nearest the tile, as large_image's
	// _getTileFromEmptyLevel does (a gap of 4 makes the tile from the
	// level just finer, which is itself made from the stored one): each
	// stage's pixels, and so the tile's, depend on where the stages fall.
	// (Its DICOM reader reads the stored level whatever the gap; we stage
	// DICOM gaps too, which bounds the block.)
	for child-z > maxSkippedLevels {
		child -= maxSkippedLevels
	}
	scale := 1 << (child - z)
	// large_image's DICOM reader (large_image_source_dicom getTile) makes
	// a missing level's tile from the whole block of the finer level,
	// zero-padded to tile size × scale and resized by Pillow's default
	// filter (BICUBIC); the other readers go through
	// _getTileFromEmptyLevel: the children pasted and resized with
	// LANCZOS, for which JPEG children take the DCT-scaling shortcut.
	dicomBlock := info.AllLevelsPopulated && info.Format == encode.Uint8 && info.Bands <= 4
	if !dicomBlock {
		if img, ok, err := p.synthesiseJPEG(ctx, loc, src, frame, z, x, y, child, scale); ok || err != nil {
			return img, err
		}
	}
	tw, th := info.TileWidth, info.TileHeight
	cols, rows := info.TileCount(child)
	cw, ch, coverW, coverH := synthesisCanvas(info, x, y, scale, cols, rows)
	if dicomBlock {
		cw, ch = tw*scale, th*scale
	}
	// Sources opened from files were checked at open
	// (Info.CheckSynthesis); this guards the others.
	if err := limits.CheckDecoded("synthesis canvas", int64(cw), int64(ch), int64(info.Bands), int64(info.Format.Size())); err != nil {
		return nil, &tilesource.Error{Status: http.StatusRequestEntityTooLarge, Message: "Level cannot be synthesised within the size limits", Cause: err}
	}
	canvas := encode.NewImage(cw, ch, info.Bands, info.Format)

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for j := range scale {
		for i := range scale {
			cx, cy := x*scale+i, y*scale+j
			if (i != 0 || j != 0) && (cx >= cols || cy >= rows) {
				continue
			}
			if i*tw >= cw || j*th >= ch {
				continue
			}
			g.Go(func() error {
				t, err := p.readRaw(gctx, loc, src, frame, child, cx, cy)
				if err != nil {
					return err
				}
				// Children cover disjoint areas of the canvas, so they
				// can be pasted concurrently.
				paste(canvas, t, i*tw, j*th)
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	w := min(tw, (cw+scale-1)/scale)
	h := min(th, (ch+scale-1)/scale)
	release, err := p.work.Acquire(ctx, int64(cw*ch))
	if err != nil {
		return nil, err
	}
	defer release()
	var out *encode.Image
	if dicomBlock {
		var ok bool
		if out, ok = pilResize(canvas, tw, th, pilBicubic); !ok {
			return nil, tilesource.Errorf(http.StatusInternalServerError, "Internal I/O failure: cannot resize the DICOM block")
		}
		return out, nil
	}
	if info.Format != encode.Uint8 || info.Bands > 4 || scale >= max(tw, th) {
		out = sampleNearest(canvas, w, h, scale)
	} else {
		// Pillow's LANCZOS, as large_image's _getTileFromEmptyLevel.
		var err error
		if out, err = resizeCanvas(canvas, coverW, coverH, w, h); err != nil {
			return nil, err
		}
	}
	return padTo(out, tw, th), nil
}

// sampleNearest takes every scale-th pixel of img, w×h of them.
func sampleNearest(img *encode.Image, w, h, scale int) *encode.Image {
	out := encode.NewImage(w, h, img.Bands, img.Format)
	ps := img.PixelSize()
	for oy := range h {
		sy := min(oy*scale, img.Height-1)
		for ox := range w {
			sx := min(ox*scale, img.Width-1)
			copy(out.Pix[(oy*w+ox)*ps:], img.Pix[sy*img.Stride()+sx*ps:sy*img.Stride()+(sx+1)*ps])
		}
	}
	return out
}

// paste copies src into dst at (x, y), clipped to dst. Both must have the
// same bands and format.
func paste(dst, src *encode.Image, x, y int) {
	ps := dst.PixelSize()
	if src.PixelSize() != ps {
		return
	}
	x0, y0 := max(x, 0), max(y, 0)
	x1, y1 := min(x+src.Width, dst.Width), min(y+src.Height, dst.Height)
	if x1 <= x0 || y1 <= y0 {
		return
	}
	n := (x1 - x0) * ps
	for r := y0; r < y1; r++ {
		so := (r-y)*src.Stride() + (x0-x)*ps
		copy(dst.Pix[r*dst.Stride()+x0*ps:][:n], src.Pix[so:so+n])
	}
}

// padTo returns img zero-padded to at least w×h (a copy only when needed).
func padTo(img *encode.Image, w, h int) *encode.Image {
	if img.Width >= w && img.Height >= h {
		if img.Width == w && img.Height == h {
			return img
		}
		return encode.Crop(img, 0, 0, w, h)
	}
	return encode.Pad(img, w, h, nil)
}

// isEdgeTile reports whether tile (x, y) of level z extends past the image.
func isEdgeTile(info *tilesource.Info, z, x, y int) bool {
	lw, lh := info.LevelSize(z)
	return (x+1)*info.TileWidth > lw || (y+1)*info.TileHeight > lh
}

// applyEdge crops an edge tile to the image, or fills the part outside the
// image with a colour (the edge option of TileSource._outputTile). img is not modified.
func applyEdge(img *encode.Image, info *tilesource.Info, z, x, y int, edge edgeSpec) *encode.Image {
	if edge.kind == edgeNone || !isEdgeTile(info, z, x, y) {
		return img
	}
	lw, lh := info.LevelSize(z)
	w := min(info.TileWidth, lw-x*info.TileWidth)
	h := min(info.TileHeight, lh-y*info.TileHeight)
	if edge.kind == edgeCrop {
		return encode.Crop(img, 0, 0, w, h)
	}
	img = encode.To8Bit(img)
	out := encode.Pad(encode.Crop(img, 0, 0, w, h), img.Width, img.Height, edge.color.bands(img.Bands))
	return out
}

// Raw-pixel cache entries: a 16-byte header (magic, width, height, bands,
// format) followed by the samples in native byte order.
var rawMagic = [4]byte{'T', 'S', 'R', '1'}

const rawHeader = 16

func marshalRaw(img *encode.Image) []byte {
	b := make([]byte, rawHeader+len(img.Pix))
	copy(b, rawMagic[:])
	binary.LittleEndian.PutUint32(b[4:], uint32(img.Width))
	binary.LittleEndian.PutUint32(b[8:], uint32(img.Height))
	b[12] = byte(img.Bands)
	b[13] = byte(img.Format)
	copy(b[rawHeader:], img.Pix)
	return b
}

func unmarshalRaw(b []byte) (*encode.Image, error) {
	if len(b) < rawHeader || [4]byte(b[:4]) != rawMagic {
		return nil, errors.New("pipeline: malformed raw tile entry")
	}
	img := &encode.Image{
		Width:  int(binary.LittleEndian.Uint32(b[4:])),
		Height: int(binary.LittleEndian.Uint32(b[8:])),
		Bands:  int(b[12]),
		Format: encode.Format(b[13]),
		Pix:    b[rawHeader:],
	}
	if img.Format < encode.Uint8 || img.Format > encode.Float64 || img.Bands < 1 ||
		len(img.Pix) != img.Width*img.Height*img.PixelSize() {
		return nil, errors.New("pipeline: malformed raw tile entry")
	}
	return img, nil
}

// encodingFor resolves the default encoding (PNG for the test source, JPEG
// otherwise) and checks it.
func encodingFor(loc Locator, enc string) (string, string, error) {
	if enc == "" {
		enc = "JPEG"
		if loc.isTest() {
			enc = "PNG"
		}
	}
	mime, err := encode.MIME(enc)
	if err != nil {
		return "", "", tilesource.BadRequest("Invalid encoding %q", enc)
	}
	return enc, mime, nil
}

// encodingKey is the canonical form of the encoding and the options that
// affect it.
func encodingKey(enc string, o EncodeOptions) string {
	switch enc {
	case "JPEG", "JFIF":
		q := o.JPEGQuality
		if q <= 0 {
			q = encode.DefaultJPEGQuality
		}
		if enc == "JPEG" && q == encode.DefaultJPEGQuality && o.JPEGSubsampling == 0 {
			return defaultJPEGKey // every plain tile request: no formatting per hit
		}
		return fmt.Sprintf("%s:q%d:s%d", enc, q, o.JPEGSubsampling)
	case "TIFF":
		return "TIFF:" + o.TIFFCompression
	case "TILED":
		return fmt.Sprintf("TILED:%s:q%d", o.TIFFCompression, o.JPEGQuality)
	}
	return enc
}

// defaultJPEGKey is encodingKey of JPEG at the default quality and
// subsampling.
var defaultJPEGKey = fmt.Sprintf("JPEG:q%d:s0", encode.DefaultJPEGQuality)

func encodeOptions(enc string, o EncodeOptions) encode.Options {
	return encode.Options{Encoding: enc, JPEGQuality: o.JPEGQuality,
		JPEGSubsampling: o.JPEGSubsampling, TIFFCompression: o.TIFFCompression}
}

// Edge handling kinds.
const (
	edgeNone = iota
	edgeCrop
	edgeFill
)

type edgeSpec struct {
	kind  int
	color rgba
	key   string
}

// parseEdge reads the edge parameter: "" (full tiles), "crop", or a colour.
func parseEdge(s string) (edgeSpec, error) {
	switch strings.ToLower(s) {
	case "", "false":
		return edgeSpec{}, nil
	case "crop", "true":
		return edgeSpec{kind: edgeCrop, key: "crop"}, nil
	}
	c, err := parseColour(s, false)
	if err != nil {
		return edgeSpec{}, err
	}
	return edgeSpec{kind: edgeFill, color: c, key: fmt.Sprintf("fill:%02x%02x%02x%02x", c.r, c.g, c.b, c.a)}, nil
}

type rgba struct{ r, g, b, a uint8 }

// bands returns the colour as sample values for an 8-bit image of n bands
// (PIL's conversion to the image mode: L uses the ITU-R 601-2 luma).
func (c rgba) bands(n int) []float64 {
	l := float64((int(c.r)*299 + int(c.g)*587 + int(c.b)*114 + 500) / 1000)
	switch n {
	case 1:
		return []float64{l}
	case 2:
		return []float64{l, float64(c.a)}
	case 3:
		return []float64{float64(c.r), float64(c.g), float64(c.b)}
	}
	return []float64{float64(c.r), float64(c.g), float64(c.b), float64(c.a)}
}

// parseColour reads a colour parameter with the style package's parser,
// Pillow's ImageColor syntax (hex, rgb(), rgba(), hsl(), hsv(), every CSS
// name). withOverrides adds large_image's exact-case R/G/B/RED/GREEN/BLUE,
// which its letterbox fill honours and its edge fill does not.
func parseColour(s string, withOverrides bool) (rgba, error) {
	parse := style.ParsePILColour
	if withOverrides {
		parse = style.ParseColour
	}
	c, ok := parse(s)
	if !ok {
		return rgba{}, tilesource.BadRequest("Value Error: %s", style.ColourError(s))
	}
	// Pillow accepts rgb(300,0,0); the sample is then stored in 8 bits,
	// so clamp rather than wrap.
	b := func(v float64) uint8 { return uint8(math.Round(math.Min(255, math.Max(0, v)))) }
	return rgba{b(c[0]), b(c[1]), b(c[2]), b(c[3])}, nil
}

// clampInt keeps float-derived sizes inside int range.
func clampInt(v float64) int {
	if math.IsNaN(v) {
		return 0
	}
	return int(math.Max(math.MinInt32, math.Min(math.MaxInt32, v)))
}
