package tiff

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sync/singleflight"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/limits"
)

// virtualTile is the tile size served for stripped (untiled) images.
const virtualTile = 256

// maxPageFallback is the largest file whose pages may be decoded whole when
// a chunk cannot be expressed as a mini-TIFF.
const maxPageFallback = 64 << 20

// Source serves a TIFF file. It is safe for concurrent use.
type Source struct {
	r     io.ReaderAt
	c     io.Closer
	name  string // base name, for messages
	tf    *File
	info  tilesource.Info
	frame [][]*dir // frame → level → directory (nil: not stored)
	assoc map[string]*dir
	meta  map[string]any

	strips *stripCache
	// stripFlight makes concurrent readers of one strip share its decode.
	stripFlight singleflight.Group

	// qpiMag is the objective magnification a QPTIFF file records.
	qpiMag float64

	pageMu sync.Mutex
	pages  map[int]*encode.Image // whole decoded pages (fallback path)
}

// Open opens path as a TIFF source. Files that are not TIFF, and Aperio
// JPEG 2000 slides (which must go to OpenSlide), give an error wrapping
// tilesource.ErrNotRecognized.
func Open(path string) (tilesource.Source, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, &tilesource.Error{Status: http.StatusNotFound, Message: "File not found", Cause: err}
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, &tilesource.Error{Status: http.StatusInternalServerError, Message: "Internal I/O failure", Cause: err}
	}
	s, err := newSource(fh, st.Size(), filepath.Base(path))
	if err != nil {
		fh.Close()
		return nil, err
	}
	s.c = fh
	return s, nil
}

// OpenReaderAt opens a TIFF read through r (an object in object storage),
// of size bytes, named name in messages. Errors are those of Open. The
// source does not close r.
func OpenReaderAt(r io.ReaderAt, size int64, name string) (tilesource.Source, error) {
	s, err := newSource(r, size, name)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// openError returns the public error for a TIFF file this reader cannot
// serve: the file's base name and the problem.
func openError(name string, cause error) error {
	e := &tilesource.Error{Status: http.StatusBadRequest, Message: name + ": " + cause.Error()}
	switch {
	case errors.Is(cause, limits.ErrTooLarge):
		// The cause is kept for errors.Is; its text is said once.
		e.Message = strings.TrimSuffix(e.Message, ": "+limits.ErrTooLarge.Error())
		e.Cause = limits.ErrTooLarge
	case errors.Is(cause, tilesource.ErrDamaged):
		e.Cause = tilesource.ErrDamaged
	}
	return e
}

// newSource parses r and works out levels, frames and associated images.
func newSource(r io.ReaderAt, size int64, name string) (*Source, error) {
	tf, err := Parse(r, size)
	if err != nil {
		if errors.Is(err, errNotTIFF) {
			return nil, fmt.Errorf("%s: %w", name, tilesource.ErrNotRecognized)
		}
		return nil, openError(name, damagedError{fmt.Errorf("invalid TIFF: %w", err)})
	}
	s := &Source{r: r, name: name, tf: tf, assoc: map[string]*dir{}, pages: map[int]*encode.Image{}}
	s.strips = newStripCache(64 << 20)
	first := tf.IFDs[0]
	desc := first.String(tagImageDescription)
	aperio := strings.HasPrefix(desc, "Aperio")

	// Aperio JPEG 2000 decodes with wrong colours through libvips: leave it
	// to OpenSlide.
	if aperio {
		bad := false
		tf.walk(func(d *IFD, _ int, _ *IFD) {
			c := d.Uint(tagCompression, 1)
			bad = bad || c == compJP2KYCbCr || c == compJP2KRGB
		})
		if bad {
			return nil, fmt.Errorf("%s: Aperio JPEG 2000: %w", name, tilesource.ErrNotRecognized)
		}
	}
	if strings.Contains(desc, "<OME") {
		ok, err := s.setupOME(desc)
		if err != nil {
			return nil, openError(name, err)
		}
		if ok {
			return s, s.finish(aperio)
		}
	}
	if strings.Contains(desc, "<"+qpiRoot) {
		ok, err := s.setupQPTIFF()
		if err != nil {
			return nil, openError(name, err)
		}
		if ok {
			return s, s.finish(aperio)
		}
	}
	if err := s.setupPyramid(aperio); err != nil {
		return nil, openError(name, err)
	}
	return s, s.finish(aperio)
}

// setupPyramid finds the full-resolution image, its levels and the
// associated images of a non-OME file.
func (s *Source) setupPyramid(aperio bool) error {
	var all []*dir
	var firstErr error
	s.tf.walk(func(d *IFD, idx int, _ *IFD) {
		dd, err := newDir(d, idx)
		if err != nil {
			// A directory over a size limit makes the whole file
			// suspect: refuse it rather than serve another directory
			// as the image.
			if firstErr == nil || (errors.Is(err, limits.ErrTooLarge) && !errors.Is(firstErr, limits.ErrTooLarge)) {
				firstErr = err
			}
			return
		}
		all = append(all, dd)
	})
	// The full-resolution image: the largest tiled directory that is not a
	// label or macro, or the largest directory when none is tiled.
	var main *dir
	for _, tiledOnly := range []bool{true, false} {
		for _, d := range all {
			if (tiledOnly && !d.tiled) || d.isLabel() || d.isMacro() {
				continue
			}
			if aperio && (d.subfile == 1 || d.subfile == 9) && d.page > 0 {
				continue
			}
			if main == nil || d.w*d.h > main.w*main.h {
				main = d
			}
		}
		if main != nil {
			break
		}
	}
	if errors.Is(firstErr, limits.ErrTooLarge) {
		return firstErr
	}
	if main == nil {
		if firstErr == nil {
			firstErr = errors.New("no usable image")
		}
		return firstErr
	}
	if err := checkDecodable(main); err != nil {
		return err
	}
	levels := s.levelsFor(main, all)
	s.frame = [][]*dir{levels}
	s.setInfo(main, len(levels))

	used := map[*dir]bool{}
	for _, l := range levels {
		used[l] = l != nil
	}
	for _, d := range all {
		// Associated images are decoded whole: one too large for the
		// decode limit is not offered.
		if used[d] || d.page < 0 || checkDecodable(d) != nil ||
			limits.CheckDecoded("associated image", int64(d.w), int64(d.h), int64(max(d.spp, d.bands)), sampleBytes(d.bps)) != nil {
			continue
		}
		var key string
		switch {
		case d.isLabel() || (aperio && d.subfile == 1):
			key = "label"
		case d.isMacro() || d.subfile == 9:
			key = "macro"
		case aperio && !d.tiled && main.page >= 0 && d.page == main.page+1:
			key = "thumbnail"
		}
		if key != "" && s.assoc[key] == nil {
			s.assoc[key] = d
		}
	}
	return nil
}

// checkDecodable rejects layouts that neither the mini-TIFF path nor
// libvips can decode, so that the failure is reported when the file is
// opened rather than on every tile.
func checkDecodable(d *dir) error {
	if !supportedCompression[d.compression] {
		return fmt.Errorf("unsupported TIFF compression %d", d.compression)
	}
	if d.compression == compOJPEG && d.ifd.Uint(tagJPEGIFOffset, 0) == 0 && !hasOJPEGTables(d) {
		return errors.New("unsupported old-style JPEG (compression 6) without tables")
	}
	if subsampledYCbCr(d) {
		return checkYCbCr(d)
	}
	return nil
}

// levelsFor returns the directories of every level of main's pyramid
// (index = large_image level; nil where not stored) chosen from cands.
func (s *Source) levelsFor(main *dir, cands []*dir) []*dir {
	tw, th := main.tileSize()
	mw, mh := main.orient.size(main.w, main.h)
	n := tilesource.LevelsFor(mw, mh, tw, th)
	levels := make([]*dir, n)
	levels[n-1] = main
	for _, d := range cands {
		if d == main || d.tiled != main.tiled || d.orient != main.orient || d.spp != main.spp || d.bps != main.bps ||
			d.sampleFormat != main.sampleFormat || d.isLabel() || d.isMacro() || checkDecodable(d) != nil {
			continue
		}
		if d.tiled && (d.tw != main.tw || d.th != main.th) {
			continue
		}
		for k := 1; k < n; k++ {
			if matchesScale(main.w, d.w, k) && matchesScale(main.h, d.h, k) {
				if levels[n-1-k] == nil {
					levels[n-1-k] = d
				}
				break
			}
		}
	}
	return levels
}

// matchesScale reports whether v is full/2^k rounded down or up.
func matchesScale(full, v, k int) bool {
	f := full >> k
	return v == f || v == (full+(1<<k)-1)>>k
}

// setInfo fills the metadata from the full-resolution directory.
func (s *Source) setInfo(main *dir, levels int) {
	in := &s.info
	in.SizeX, in.SizeY = main.orient.size(main.w, main.h)
	in.TileWidth, in.TileHeight = main.tileSize()
	in.Levels = levels
	in.Format = main.format
	in.Bands = main.bands
	in.SourceName = "tiff"
	in.ICCProfile = main.ifd.Bytes(tagICCProfile)
}

// finish computes Stored, magnification and internal metadata.
func (s *Source) finish(aperio bool) error {
	in := &s.info
	in.Stored = make([]bool, in.Levels)
	populated := 0
	for z := range in.Stored {
		in.Stored[z] = s.frame[0][z] != nil
		if in.Stored[z] {
			populated++
		}
	}
	main := s.frame[0][in.Levels-1]
	meta := map[string]any{"populatedLevels": populated}
	tags := map[string]any{}
	for tag, key := range map[uint16]string{
		tagImageDescription: "ImageDescription", tagSoftware: "Software", tagMake: "Make",
		tagModel: "Model", tagDateTime: "DateTime",
	} {
		if v := main.ifd.String(tag); v != "" && (tag != tagImageDescription || len(v) < 1<<16) {
			tags[key] = v
		}
	}
	tags["Compression"] = main.compression
	tags["Photometric"] = main.photometric
	tags["BitsPerSample"] = main.bps
	tags["SamplesPerPixel"] = main.spp
	if o := main.ifd.Uint(tagOrientation, 0); o != 0 {
		tags["Orientation"] = o
	}
	meta["tiff"] = tags
	var mmx, mmy, mag float64
	if aperio {
		kv := parseAperio(main.desc)
		meta["aperio"] = kv
		if v, err := strconv.ParseFloat(kv["MPP"], 64); err == nil && v > 0 {
			mmx, mmy = v/1000, v/1000
		}
		if v, err := strconv.ParseFloat(kv["AppMag"], 64); err == nil && v > 0 {
			mag = v
		}
	}
	if mag == 0 {
		mag = s.qpiMag
	}
	// As large_image: the description's pixel size first, then trusted
	// resolution tags (tiff_reader._loadMetadata), then the OME physical
	// size (ometiff's getNativeMagnification), each axis on its own.
	rx, ry := resolutionMM(main.ifd)
	if mmx == 0 {
		mmx = rx
	}
	if mmy == 0 {
		mmy = ry
	}
	if mmx == 0 && s.info.MMX != nil {
		mmx = *s.info.MMX
	}
	if mmy == 0 && s.info.MMY != nil {
		mmy = *s.info.MMY
	}
	// Magnification is the stored value or 0.01/mm_x, and null whenever
	// mm_x is unknown (large_image's getNativeMagnification).
	in.MMX, in.MMY, in.Magnification = nil, nil, nil
	if mmy > 0 {
		in.MMY = &mmy
	}
	if mmx > 0 {
		in.MMX = &mmx
		if mag == 0 {
			mag = 0.01 / mmx
		}
		in.Magnification = &mag
	}
	s.meta = meta
	return nil
}

// minTrustedResolution is the smallest XResolution/YResolution taken as a
// real pixel size. large_image's tiff_reader (TiledTiffDirectory.
// _loadMetadata) ignores smaller values as probable defaults (72 or 96
// dpi, small metric values).
const minTrustedResolution = 100

// resolutionMM returns the pixel size in mm from the resolution tags, each
// axis zero when large_image would not trust it: the tag is absent or below
// minTrustedResolution, or ResolutionUnit is not present and inch (2) or
// centimetre (3).
func resolutionMM(d *IFD) (float64, float64) {
	var unit float64
	if d.Entries[tagResolutionUnit] != nil {
		switch d.Uint(tagResolutionUnit, 0) {
		case 2:
			unit = 25.4
		case 3:
			unit = 10
		}
	}
	mm := func(tag uint16) float64 {
		r := d.Float(tag, 0)
		if unit == 0 || r < minTrustedResolution {
			return 0
		}
		return unit / r
	}
	return mm(tagXResolution), mm(tagYResolution)
}

// parseAperio splits an Aperio description's "|key = value" fields.
func parseAperio(desc string) map[string]string {
	kv := map[string]string{}
	parts := strings.Split(desc, "|")
	if len(parts) > 0 {
		kv["header"] = strings.TrimSpace(parts[0])
	}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		kv[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return kv
}

// Info returns the metadata.
func (s *Source) Info() *tilesource.Info { return &s.info }

// ReadTile returns the stored tile (x, y) of level z of a frame.
func (s *Source) ReadTile(ctx context.Context, frame, z, x, y int) (*tilesource.Tile, error) {
	if frame < 0 || frame >= len(s.frame) {
		return nil, tilesource.ErrFrameRange
	}
	if z < 0 || z >= len(s.frame[frame]) {
		return nil, tilesource.ErrZRange
	}
	d := s.frame[frame][z]
	if d == nil {
		return nil, fmt.Errorf("tiff level %d: %w", z, tilesource.ErrLevelNotStored)
	}
	if !d.orient.stored() {
		img, err := s.orientedTile(ctx, d, x, y)
		if err != nil {
			return nil, ioError(fmt.Sprintf("cannot read tile %d, %d", x, y), err)
		}
		return &tilesource.Tile{Pixels: img}, nil
	}
	if !d.tiled {
		img, err := s.stripTile(ctx, d, x, y)
		if err != nil {
			return nil, ioError(fmt.Sprintf("cannot read tile %d, %d", x, y), err)
		}
		return &tilesource.Tile{Pixels: img}, nil
	}
	if x < 0 || y < 0 || x >= d.across || y >= d.down {
		return nil, tilesource.ErrXRange
	}
	if d.passthrough {
		data, err := s.readJPEG(d, x, y)
		if err != nil {
			return nil, ioError(fmt.Sprintf("cannot read tile %d, %d", x, y), err)
		}
		return &tilesource.Tile{
			Encoded:  data,
			Encoding: "JPEG",
			Decode: func() (*encode.Image, error) {
				img, err := encode.Decode(data, "")
				if err != nil {
					return nil, ioError(fmt.Sprintf("cannot decode tile %d, %d", x, y), err)
				}
				return img, nil
			},
		}, nil
	}
	chunks, err := s.readChunks(d, x, y)
	if err != nil {
		return nil, ioError(fmt.Sprintf("cannot read tile %d, %d", x, y), err)
	}
	img, err := s.decodeChunks(ctx, d, d.tw, d.th, true, chunks, x*d.tw, y*d.th)
	if err != nil {
		return nil, ioError(fmt.Sprintf("cannot decode tile %d, %d", x, y), err)
	}
	return &tilesource.Tile{Pixels: img}, nil
}

// ioError wraps a read or decode failure as large_image's public error
// ("Internal I/O failure: ...", from the tiff source's
// getTileIOTiffError); the detail stays in the cause.
func ioError(what string, err error) error {
	var te *tilesource.Error
	if errors.As(err, &te) {
		return err
	}
	return &tilesource.Error{Status: http.StatusNotFound, Message: "Internal I/O failure: " + what, Cause: err}
}

// readJPEG reads a JPEG tile and splices it into a complete stream. The
// common case reads the tile straight into the output after the prefix
// (SOI, Adobe marker, tables) prepared at open time, its SOI landing on the
// prefix's last two bytes, which are then restored: one allocation, one
// read. Anything unusual goes through encode.SpliceJPEG.
func (s *Source) readJPEG(d *dir, col, row int) ([]byte, error) {
	i := d.chunkIndex(col, row, 0)
	off, n := d.offsets[i], d.counts[i]
	if n == 0 || off == 0 {
		return nil, fmt.Errorf("tile %d,%d is missing", col, row)
	}
	if n < 4 || n > maxChunkBytes || off > uint64(s.tf.Size) || n > uint64(s.tf.Size)-off {
		return nil, fmt.Errorf("tile %d,%d is outside the file", col, row)
	}
	p := d.jpegPrefix
	out := make([]byte, len(p)-2+int(n))
	copy(out, p[:len(p)-2])
	if _, err := s.readAt(out[len(p)-2:], int64(off)); err != nil {
		return nil, fmt.Errorf("reading tile %d,%d: %w", col, row, err)
	}
	body := out[len(p)-2:]
	ok := body[0] == 0xFF && body[1] == 0xD8 && body[len(body)-2] == 0xFF && body[len(body)-1] == 0xD9
	if ok && d.jpegAdobe {
		ok = !encode.HasAdobe(body[2:])
	}
	if !ok {
		return encode.SpliceJPEG(d.jpegTables, append([]byte(nil), body...), d.photometric == photoRGB), nil
	}
	copy(body[:2], p[len(p)-2:])
	return out, nil
}

// readChunks reads the stored bytes of chunk (col, row), one per plane.
func (s *Source) readChunks(d *dir, col, row int) ([][]byte, error) {
	out := make([][]byte, d.chunksPerTile)
	for p := range out {
		i := d.chunkIndex(col, row, p)
		off, n := d.offsets[i], d.counts[i]
		if n == 0 || off == 0 {
			return nil, fmt.Errorf("tile %d,%d is missing", col, row)
		}
		if n > maxChunkBytes || off > uint64(s.tf.Size) || n > uint64(s.tf.Size)-off {
			return nil, fmt.Errorf("tile %d,%d is outside the file", col, row)
		}
		b := make([]byte, n)
		if _, err := s.readAt(b, int64(off)); err != nil {
			return nil, fmt.Errorf("reading tile %d,%d: %w", col, row, err)
		}
		out[p] = b
	}
	return out, nil
}

func (s *Source) readAt(b []byte, off int64) (int, error) {
	n, err := s.r.ReadAt(b, off)
	if err == io.EOF && n == len(b) {
		err = nil
	}
	return n, err
}

// decodeChunks decodes one stored chunk (all planes) of w×h pixels whose
// top-left corner in the directory is (px, py).
func (s *Source) decodeChunks(ctx context.Context, d *dir, w, h int, tiled bool, chunks [][]byte, px, py int) (*encode.Image, error) {
	n := int64(w) * int64(h) * int64(max(d.spp, d.bands)) * sampleBytes(d.bps)
	if err := limits.CheckDecoded("tile", int64(w), int64(h), int64(max(d.spp, d.bands)), sampleBytes(d.bps)); err != nil {
		return nil, err
	}
	release, err := acquireDecode(ctx, n)
	if err != nil {
		return nil, err
	}
	defer release()
	if d.compression == compOJPEG {
		// A complete embedded stream (JPEGInterchangeFormat) is the most
		// reliable: chunk byte counts in such files are often wrong.
		if d.ifd.Uint(tagJPEGIFOffset, 0) != 0 || !hasOJPEGTables(d) {
			return s.decodeFromPage(d, px, py, w, h)
		}
		stream, err := buildOJPEG(d, s.r, s.tf.Size, chunks[0], w, h)
		if err != nil {
			return nil, err
		}
		img, err := encode.Decode(stream, "")
		if err != nil {
			return nil, fmt.Errorf("decoding old-style JPEG: %w", err)
		}
		if img.Bands == 3 && img.Format == encode.Uint8 && d.photometric == photoYCbCr {
			conv := ycbcrConverter(d)
			for i := 0; i+3 <= len(img.Pix); i += 3 {
				conv(img.Pix[i:], img.Pix[i], img.Pix[i+1], img.Pix[i+2])
			}
		}
		return img, nil
	}
	if d.compression == compJPEG && d.spp == 2 && d.bps == 8 && len(chunks) == 1 {
		// Grey and alpha in one JPEG stream: libvips' TIFF loader refuses
		// it, libjpeg reads the two components as they are, as libtiff
		// does for large_image.
		img, err := encode.Decode(encode.SpliceJPEG(d.jpegTables, chunks[0], false), "")
		if err != nil {
			return nil, fmt.Errorf("decoding: %w", err)
		}
		if img.Width != w || img.Height != h || img.Bands != 2 {
			return nil, fmt.Errorf("decoding: %d×%d×%d JPEG in a %d×%d×2 chunk", img.Width, img.Height, img.Bands, w, h)
		}
		return img, nil
	}
	if subsampledYCbCr(d) {
		if len(chunks) != 1 {
			return nil, errors.New("subsampled YCbCr in several chunks")
		}
		return decodeYCbCr(d, chunks[0], w, h)
	}
	mini, err := buildMiniTIFF(d, s.tf.ByteOrder, w, h, w, h, tiled, chunks)
	if err != nil {
		return nil, err
	}
	img, err := encode.Decode(mini, "")
	if err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	return img, nil
}

// decodeFromPage decodes a whole page through libvips (for layouts a
// mini-TIFF cannot express, such as old-style JPEG) and crops the w×h area
// at (x, y). Decoded pages are kept, so only small files qualify.
func (s *Source) decodeFromPage(d *dir, x, y, w, h int) (*encode.Image, error) {
	if s.tf.Size > maxPageFallback || d.page < 0 {
		return nil, fmt.Errorf("compression %d is only supported in files under %d MB", d.compression, maxPageFallback>>20)
	}
	// The whole page is decoded and kept.
	if err := limits.CheckDecoded("page", int64(d.w), int64(d.h), int64(max(d.spp, d.bands)), sampleBytes(d.bps)); err != nil {
		return nil, err
	}
	s.pageMu.Lock()
	img := s.pages[d.page]
	s.pageMu.Unlock()
	if img == nil {
		var err error
		img, err = s.decodePage(d)
		if err != nil {
			return nil, err
		}
		s.pageMu.Lock()
		s.pages[d.page] = img
		s.pageMu.Unlock()
	}
	return encode.Crop(img, x, y, w, h), nil
}

// decodePage decodes directory d as a whole image.
func (s *Source) decodePage(d *dir) (*encode.Image, error) {
	// Old-style JPEG often embeds a complete JPEG stream (JPEGInterchangeFormat).
	if d.compression == compOJPEG {
		off, n := d.ifd.Uint(tagJPEGIFOffset, 0), d.ifd.Uint(tagJPEGIFOffset+1, 0)
		if off > 0 && n > 0 && n <= maxChunkBytes && off+n <= uint64(s.tf.Size) {
			b := make([]byte, n)
			if _, err := s.readAt(b, int64(off)); err != nil {
				return nil, err
			}
			if img, err := encode.Decode(b, ""); err == nil && img.Width == d.w && img.Height == d.h {
				return img, nil
			}
		}
	}
	b := make([]byte, s.tf.Size)
	if _, err := s.readAt(b, 0); err != nil {
		return nil, err
	}
	img, err := encode.Decode(b, "page="+strconv.Itoa(d.page))
	if err != nil {
		return nil, fmt.Errorf("decoding page %d: %w", d.page, err)
	}
	return img, nil
}

// AssociatedNames lists the associated images, sorted.
func (s *Source) AssociatedNames() []string {
	return tilesource.SortedNames(s.assoc)
}

// Associated decodes an associated image; nil, nil when there is none.
// Its Orientation tag is applied, as large_image's _addAssociatedImage does.
func (s *Source) Associated(name string) (*encode.Image, error) {
	d := s.assoc[name]
	if d == nil {
		return nil, nil
	}
	img, err := s.associated(name, d)
	if err != nil {
		return nil, err
	}
	return d.orient.apply(img), nil
}

// associated decodes an associated image as stored.
func (s *Source) associated(name string, d *dir) (*encode.Image, error) {
	if err := limits.CheckDecoded("associated image", int64(d.w), int64(d.h), int64(max(d.spp, d.bands)), sampleBytes(d.bps)); err != nil {
		return nil, &tilesource.Error{Status: http.StatusRequestEntityTooLarge, Message: name + " image is too large", Cause: err}
	}
	if d.compression == compOJPEG {
		img, err := s.decodeFromPage(d, 0, 0, d.w, d.h)
		if err != nil {
			return nil, ioError("cannot decode "+name+" image", err)
		}
		return img, nil
	}
	if subsampledYCbCr(d) {
		return nil, ioError("subsampled YCbCr "+name+" image not supported", nil)
	}
	// Every chunk of the directory goes into one mini-TIFF.
	n := d.across * d.down * d.chunksPerTile
	chunks := make([][]byte, n)
	for i := range chunks {
		off, c := d.offsets[i], d.counts[i]
		if c > maxChunkBytes || off > uint64(s.tf.Size) || c > uint64(s.tf.Size)-off {
			return nil, ioError(name+" image data outside the file", nil)
		}
		chunks[i] = make([]byte, c)
		if _, err := s.readAt(chunks[i], int64(off)); err != nil {
			return nil, ioError("cannot read "+name+" image", err)
		}
	}
	mini, err := buildMiniTIFF(d, s.tf.ByteOrder, d.w, d.h, d.tw, d.th, d.tiled, chunks)
	if err != nil {
		return nil, ioError("cannot read "+name+" image", err)
	}
	img, err := encode.Decode(mini, "")
	if err != nil {
		return nil, ioError("cannot decode "+name+" image", err)
	}
	return img, nil
}

// InternalMetadata returns the TIFF tags that matter and populatedLevels.
func (s *Source) InternalMetadata() map[string]any {
	out := make(map[string]any, len(s.meta))
	for k, v := range s.meta {
		out[k] = v
	}
	return out
}

// MemoryEstimate counts parsed structures and caches.
func (s *Source) MemoryEstimate() int64 {
	n := int64(4096) + s.tf.loaded + int64(s.tf.count)*512
	n += s.strips.bytes()
	s.pageMu.Lock()
	for _, p := range s.pages {
		n += int64(len(p.Pix))
	}
	s.pageMu.Unlock()
	return n
}

// Close closes the file.
func (s *Source) Close() error {
	if s.c == nil {
		return nil
	}
	return s.c.Close()
}
