// Package dicom reads DICOM VL Whole Slide Microscopy images: single files,
// multi-file pyramids (the instances of one series), TILED_FULL and
// TILED_SPARSE frame organisations, JPEG frames passed through, JPEG 2000,
// JPEG-LS, RLE and uncompressed frames decoded, label, overview and
// thumbnail images as associated images, and optical paths and focal
// planes as frames.
//
// It has its own parser rather than a DICOM library: it reads each file's
// dataset up to the Pixel Data element and indexes the frames by offset, so
// a tile read is one ReadAt of the frame's bytes and opening a multi-GB
// slide costs only its header.
package dicom

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilesource"
)

// maxAssociatedPixels bounds an associated image assembled from frames.
const maxAssociatedPixels = 1 << 26

// part is one instance's share of a level: for TILED_FULL the frame number
// follows from the tile position; for TILED_SPARSE a map gives it.
type part struct {
	in      *Instance
	pathMap []int // local optical path index → global
	tx, ty  int
	sparse  map[tileKey]int32
}

type tileKey struct {
	path, z int16
	x, y    int32
}

// Source serves a DICOM WSI series. It is safe for concurrent use.
type Source struct {
	name    string
	info    tilesource.Info
	levels  [][]*part // by z; nil when the level is not stored
	nPaths  int
	nZ      int
	assoc   map[string]*part
	insts   []*Instance
	closers []io.Closer

	assocMu    sync.Mutex
	assocCache map[string]*encode.Image
}

// Open opens the DICOM file at path together with the files of the same
// series in its directory (SeriesFiles), as one slide. A file without the
// DICM preamble gives an error wrapping tilesource.ErrNotRecognized; a
// DICOM file that is not a whole-slide image gives a 400 error.
func Open(path string) (tilesource.Source, error) {
	name := filepath.Base(path)
	fh, err := os.Open(path)
	if err != nil {
		return nil, &tilesource.Error{Status: http.StatusNotFound, Message: "File not found", Cause: err}
	}
	var magic [132]byte
	n, _ := fh.ReadAt(magic[:], 0)
	fh.Close()
	if n < 132 || string(magic[128:]) != "DICM" {
		return nil, fmt.Errorf("%s: %w", name, tilesource.ErrNotRecognized)
	}
	return OpenSeries(SeriesFiles(path))
}

// OpenSeries opens the given files, instances of one series, as one slide.
// Messages name the first file.
func OpenSeries(paths []string) (tilesource.Source, error) {
	if len(paths) == 0 {
		return nil, tilesource.BadRequest("no DICOM files")
	}
	name := filepath.Base(paths[0])
	var insts []*Instance
	var files []*os.File
	fail := func(err error) (tilesource.Source, error) {
		for _, f := range files {
			f.Close()
		}
		return nil, err
	}
	for _, p := range paths {
		fh, err := os.Open(p)
		if err != nil {
			return fail(&tilesource.Error{Status: http.StatusNotFound, Message: "File not found", Cause: err})
		}
		files = append(files, fh)
		st, err := fh.Stat()
		if err != nil {
			return fail(&tilesource.Error{Status: http.StatusInternalServerError, Message: "Internal I/O failure", Cause: err})
		}
		in, err := openInstance(fh, st.Size())
		if err != nil {
			return fail(openError(filepath.Base(p), err))
		}
		insts = append(insts, in)
	}
	s, err := NewSource(name, insts)
	if err != nil {
		return fail(err)
	}
	for _, f := range files {
		s.closers = append(s.closers, f)
	}
	return s, nil
}

// Reader is one instance file read through an io.ReaderAt (an object in
// object storage): Name is its base name, for messages; Closer, when set,
// is closed with the source.
type Reader struct {
	R      io.ReaderAt
	Size   int64
	Name   string
	Closer io.Closer
}

// OpenReaders opens the given instances of one series as one slide, as
// OpenSeries does for files. A first reader without the DICM preamble
// gives an error wrapping tilesource.ErrNotRecognized. The readers' closers
// are closed on failure too.
func OpenReaders(rs []Reader) (tilesource.Source, error) {
	if len(rs) == 0 {
		return nil, tilesource.BadRequest("no DICOM files")
	}
	fail := func(err error) (tilesource.Source, error) {
		for _, r := range rs {
			if r.Closer != nil {
				r.Closer.Close()
			}
		}
		return nil, err
	}
	insts := make([]*Instance, 0, len(rs))
	for _, r := range rs {
		in, err := openInstance(r.R, r.Size)
		if err != nil {
			return fail(openError(r.Name, err))
		}
		insts = append(insts, in)
	}
	s, err := NewSource(rs[0].Name, insts)
	if err != nil {
		return fail(err)
	}
	for _, r := range rs {
		if r.Closer != nil {
			s.closers = append(s.closers, r.Closer)
		}
	}
	return s, nil
}

// SeriesUIDOf returns the Series Instance UID of the DICOM file read from
// ra, reading only its header, or "" when it is not DICOM.
func SeriesUIDOf(ra io.ReaderAt, size int64) string {
	f, err := parse(ra, size, true)
	if err != nil {
		return ""
	}
	return f.DS.Str(tagSeriesUID)
}

// openError turns a parse error into the public error for file name.
func openError(name string, err error) error {
	var ns *notSlideError
	switch {
	case errors.Is(err, errNotDICOM):
		return fmt.Errorf("%s: %w", name, tilesource.ErrNotRecognized)
	case errors.As(err, &ns):
		return tilesource.BadRequest("%s: %s", name, ns.Error())
	case errors.Is(err, errTruncated):
		return tilesource.BadRequest("%s: invalid DICOM: file is truncated", name)
	}
	return tilesource.BadRequest("%s: invalid DICOM: %s", name, err.Error())
}

// openInstance parses a file and indexes its frames.
func openInstance(ra readerAt, size int64) (*Instance, error) {
	f, err := Parse(ra, size)
	if err != nil {
		return nil, err
	}
	in, err := NewInstance(f.DS, f.TS, nil)
	if err != nil {
		return nil, err
	}
	if !supportedTS(f.TS) {
		return nil, fmt.Errorf("unsupported transfer syntax %s", f.TS)
	}
	fr, err := indexFrames(ra, f, in.Frames, in.frameSize())
	if err != nil {
		return nil, err
	}
	in.frames = fr
	return in, nil
}

type readerAt interface {
	ReadAt(p []byte, off int64) (int, error)
}

// NewSource builds a slide from the instances of one series: the largest
// VOLUME instance is full resolution, other VOLUME instances whose size is
// full/2^k are stored levels, and LABEL, OVERVIEW and THUMBNAIL instances
// are the associated images "label", "macro" and "thumbnail". name is used
// in error messages.
func NewSource(name string, insts []*Instance) (*Source, error) {
	s := &Source{name: name, insts: insts, assoc: map[string]*part{}, assocCache: map[string]*encode.Image{}}
	var base *Instance
	for _, in := range insts {
		if in.Flavor != "VOLUME" {
			continue
		}
		if base == nil || int64(in.TotalCols)*int64(in.TotalRows) > int64(base.TotalCols)*int64(base.TotalRows) {
			base = in
		}
	}
	if base == nil {
		return nil, tilesource.BadRequest("%s: no VOLUME image in the DICOM series", name)
	}
	// Optical paths of every instance, in order of first appearance.
	pathIdx := map[string]int{}
	var pathNames []string
	for _, in := range append([]*Instance{base}, insts...) {
		for i, id := range in.Paths {
			if _, ok := pathIdx[id]; !ok {
				pathIdx[id] = len(pathNames)
				pathNames = append(pathNames, in.PathNames[i])
			}
		}
	}
	s.nPaths = len(pathNames)
	s.nZ = 1
	for _, in := range insts {
		if in.Flavor == "VOLUME" && in.FocalPlanes > s.nZ {
			s.nZ = in.FocalPlanes
		}
	}
	if s.nPaths*s.nZ > 1<<14 {
		return nil, tilesource.BadRequest("%s: too many optical paths and focal planes", name)
	}
	info := &s.info
	info.SizeX, info.SizeY = base.TotalCols, base.TotalRows
	info.TileWidth, info.TileHeight = base.Cols, base.Rows
	info.Levels = tilesource.LevelsFor(info.SizeX, info.SizeY, info.TileWidth, info.TileHeight)
	info.Stored = make([]bool, info.Levels)
	info.AllLevelsPopulated = true
	info.Format = base.format()
	info.Bands = base.Samples
	info.ICCProfile = base.ICC
	info.SourceName = "dicom"
	// large_image's dicom source (getNativeMagnification) derives the
	// magnification from the pixel spacing, 0.01/mm_x, and ignores the
	// objective lens power.
	if x, y, ok := base.mmPerPixel(); ok {
		m := 0.01 / x
		info.MMX, info.MMY, info.Magnification = &x, &y, &m
	}
	if n := s.nPaths * s.nZ; n > 1 {
		info.Frames = make([]map[string]any, 0, n)
		for z := range s.nZ {
			for c := range s.nPaths {
				f := map[string]any{}
				if s.nPaths > 1 {
					f["IndexC"] = c
				}
				if s.nZ > 1 {
					f["IndexZ"] = z
				}
				info.Frames = append(info.Frames, f)
			}
		}
		if s.nPaths > 1 {
			info.Channels = pathNames
		}
	}
	s.levels = make([][]*part, info.Levels)
	for _, in := range insts {
		p := newPart(in, pathIdx)
		switch in.Flavor {
		case "VOLUME":
			if in.Cols != base.Cols || in.Rows != base.Rows || in.Samples != base.Samples || in.format() != base.format() {
				continue // served by synthesis from another level
			}
			for z := info.Levels - 1; z >= 0; z-- {
				w, h := info.LevelSize(z)
				if abs(w-in.TotalCols) <= 1 && abs(h-in.TotalRows) <= 1 {
					s.levels[z] = append(s.levels[z], p)
					info.Stored[z] = true
					break
				}
			}
		case "LABEL", "OVERVIEW", "THUMBNAIL":
			key := map[string]string{"LABEL": "label", "OVERVIEW": "macro", "THUMBNAIL": "thumbnail"}[in.Flavor]
			if _, ok := s.assoc[key]; !ok {
				s.assoc[key] = p
			}
		}
	}
	return s, nil
}

func newPart(in *Instance, pathIdx map[string]int) *part {
	p := &part{in: in, pathMap: make([]int, len(in.Paths))}
	for i, id := range in.Paths {
		p.pathMap[i] = pathIdx[id]
	}
	p.tx, p.ty = in.TilesAcross()
	if in.Sparse {
		p.sparse = make(map[tileKey]int32, len(in.pos))
		for i, fp := range in.pos {
			k := tileKey{path: int16(p.pathMap[fp.path]), z: fp.zIdx, x: fp.col, y: fp.row}
			if _, dup := p.sparse[k]; !dup {
				p.sparse[k] = int32(i)
			}
		}
	}
	return p
}

// frameOf returns the instance frame index of tile (x, y) in global optical
// path c and focal plane z, or false when this part does not hold it.
func (p *part) frameOf(c, z, x, y int) (int, bool) {
	if x >= p.tx || y >= p.ty {
		return 0, false
	}
	if p.sparse != nil {
		i, ok := p.sparse[tileKey{path: int16(c), z: int16(z), x: int32(x), y: int32(y)}]
		return int(i), ok
	}
	lp := -1
	for i, g := range p.pathMap {
		if g == c {
			lp = i
			break
		}
	}
	if lp < 0 || z >= p.in.FocalPlanes {
		return 0, false
	}
	// TILED_FULL order: columns, then rows, then focal planes, then paths.
	i := ((lp*p.in.FocalPlanes+z)*p.ty+y)*p.tx + x - p.in.ConcatOffset
	if i < 0 || i >= p.in.Frames {
		return 0, false
	}
	return i, true
}

// Info returns the slide's metadata.
func (s *Source) Info() *tilesource.Info { return &s.info }

// ReadTile returns the frame at (x, y) of level z: JPEG frames as stored,
// others decoded. A tile that a sparse level does not store is blank.
func (s *Source) ReadTile(ctx context.Context, frame, z, x, y int) (*tilesource.Tile, error) {
	if z < 0 || z >= len(s.levels) || s.levels[z] == nil {
		return nil, fmt.Errorf("dicom level %d: %w", z, tilesource.ErrLevelNotStored)
	}
	c, zi := frame%s.nPaths, frame/s.nPaths
	for _, p := range s.levels[z] {
		i, ok := p.frameOf(c, zi, x, y)
		if !ok {
			continue
		}
		t, err := p.in.readTile(ctx, i)
		if err != nil {
			return nil, tileError(x, y, err)
		}
		return p.in.blackBeyond(t, x, y), nil
	}
	return &tilesource.Tile{Pixels: s.blank()}, nil
}

// blackBeyond returns frame (x, y) black beyond the total pixel matrix:
// large_image's DICOM reader reads the part of the matrix a tile covers
// and pads it with zeros, so what a writer stored past the matrix's edge
// (white, in some files) never shows. Such a frame is decoded when its
// pixels are needed, never passed on as stored; the others are untouched.
func (in *Instance) blackBeyond(t *tilesource.Tile, x, y int) *tilesource.Tile {
	w, h := in.TotalCols-x*in.Cols, in.TotalRows-y*in.Rows
	if w >= in.Cols && h >= in.Rows {
		return t
	}
	return &tilesource.Tile{Decode: func() (*encode.Image, error) {
		img, err := t.Image()
		if err != nil {
			return nil, err
		}
		out := *img
		out.Pix = slices.Clone(img.Pix)
		encode.ClearOutside(&out, w, h)
		return &out, nil
	}}
}

func tileError(x, y int, err error) error {
	var te *tilesource.Error
	if errors.As(err, &te) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	// A frame that cannot be read or decoded is the file's fault: 404,
	// as large_image answers a TileGeneralError on the tile routes.
	return &tilesource.Error{Status: http.StatusNotFound,
		Message: fmt.Sprintf("Internal I/O failure: cannot read tile %d, %d", x, y), Cause: err}
}

// readTile reads and prepares frame i.
func (in *Instance) readTile(ctx context.Context, i int) (*tilesource.Tile, error) {
	data, ts, err := in.frames.ReadFrame(ctx, i)
	if err != nil {
		return nil, err
	}
	return in.frameTile(data, ts)
}

// blank is the tile of a sparse level's missing frames: white, like an
// empty slide.
func (s *Source) blank() *encode.Image {
	img := encode.NewImage(s.info.TileWidth, s.info.TileHeight, s.info.Bands, s.info.Format)
	if s.info.Format == encode.Uint8 {
		for i := range img.Pix {
			img.Pix[i] = 255
		}
	}
	return img
}

// AssociatedNames lists the associated images.
func (s *Source) AssociatedNames() []string {
	return tilesource.SortedNames(s.assoc)
}

// Associated assembles an associated image from its frames (first optical
// path and focal plane), cropped to its total pixel matrix.
func (s *Source) Associated(name string) (*encode.Image, error) {
	p, ok := s.assoc[name]
	if !ok {
		return nil, nil
	}
	s.assocMu.Lock()
	defer s.assocMu.Unlock()
	if img, ok := s.assocCache[name]; ok {
		return img, nil
	}
	img, err := p.assemble(context.Background())
	if err != nil {
		return nil, tileError(0, 0, err)
	}
	s.assocCache[name] = img
	return img, nil
}

func (p *part) assemble(ctx context.Context) (*encode.Image, error) {
	in := p.in
	if int64(in.TotalCols)*int64(in.TotalRows) > maxAssociatedPixels {
		return nil, tilesource.BadRequest("associated image too large")
	}
	var dst *encode.Image
	c := 0
	if len(p.pathMap) > 0 {
		c = p.pathMap[0]
	}
	for y := range p.ty {
		for x := range p.tx {
			i, ok := p.frameOf(c, 0, x, y)
			if !ok {
				continue
			}
			t, err := in.readTile(ctx, i)
			if err != nil {
				return nil, err
			}
			img, err := t.Image()
			if err != nil {
				return nil, err
			}
			if dst == nil {
				dst = encode.NewImage(in.TotalCols, in.TotalRows, img.Bands, img.Format)
			}
			if img.Bands != dst.Bands || img.Format != dst.Format {
				return nil, errors.New("frames differ in bands or format")
			}
			x0, y0 := x*in.Cols, y*in.Rows
			w, h := min(img.Width, dst.Width-x0), min(img.Height, dst.Height-y0)
			ps := dst.PixelSize()
			for r := 0; r < h; r++ {
				copy(dst.Pix[(y0+r)*dst.Stride()+x0*ps:(y0+r)*dst.Stride()+(x0+w)*ps], img.Pix[r*img.Stride():])
			}
		}
	}
	if dst == nil {
		return nil, errors.New("no frames")
	}
	return dst, nil
}

// InternalMetadata describes the series and each instance.
func (s *Source) InternalMetadata() map[string]any {
	base := s.insts[0]
	for _, in := range s.insts {
		if in.Flavor == "VOLUME" && in.TotalCols == s.info.SizeX && in.TotalRows == s.info.SizeY {
			base = in
			break
		}
	}
	// Files come in directory order and DICOMweb instances in the server's
	// order: list them by SOP Instance UID so both read the same.
	insts := slices.Clone(s.insts)
	slices.SortStableFunc(insts, func(a, b *Instance) int { return strings.Compare(a.SOPInstanceUID, b.SOPInstanceUID) })
	var list []map[string]any
	for _, in := range insts {
		list = append(list, map[string]any{
			"SOPInstanceUID":              in.SOPInstanceUID,
			"ImageType":                   in.Flavor,
			"TransferSyntaxUID":           in.TransferSyntax,
			"PhotometricInterpretation":   in.Photometric,
			"TotalPixelMatrixColumns":     in.TotalCols,
			"TotalPixelMatrixRows":        in.TotalRows,
			"Columns":                     in.Cols,
			"Rows":                        in.Rows,
			"NumberOfFrames":              in.Frames,
			"DimensionOrganizationType":   map[bool]string{true: "TILED_SPARSE", false: "TILED_FULL"}[in.Sparse],
			"TotalPixelMatrixFocalPlanes": in.FocalPlanes,
		})
	}
	meta := map[string]any{
		"StudyInstanceUID":  base.StudyUID,
		"SeriesInstanceUID": base.SeriesUID,
		"SOPClassUID":       base.SOPClassUID,
		"instances":         list,
	}
	if base.Manufacturer != "" {
		meta["Manufacturer"] = base.Manufacturer
	}
	if base.Model != "" {
		meta["ManufacturerModelName"] = base.Model
	}
	return map[string]any{"dicom": meta}
}

// MemoryEstimate counts the frame indexes, datasets and cached associated
// images.
func (s *Source) MemoryEstimate() int64 {
	n := int64(4096)
	for _, in := range s.insts {
		n += int64(len(in.pos))*48 + 16<<10
		if ff, ok := in.frames.(*fileFrames); ok {
			n += int64(len(ff.frags))*16 + int64(len(ff.starts))*4
		}
	}
	s.assocMu.Lock()
	for _, img := range s.assocCache {
		n += int64(len(img.Pix))
	}
	s.assocMu.Unlock()
	return n
}

// Close closes the files.
func (s *Source) Close() error {
	var first error
	for _, f := range s.closers {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	s.closers = nil
	return first
}
