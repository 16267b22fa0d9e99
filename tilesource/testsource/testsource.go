// Package testsource is large_image's synthetic "test" source (the large_image_source_test source): coloured tiles labelled with their coordinates, optionally a fractal
// pattern, several frames or a single grey band. It needs no file and is the
// server's built-in demo and a fixture for tests.
package testsource

import (
	"context"
	"fmt"
	"image"
	"math"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gomono"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/style"
	"github.com/tileserver/tileserver/tilesource"
)

// Params lists the query parameters that define a test source; others
// (frame, encoding, style, …) are per request.
var Params = []string{"minLevel", "maxLevel", "tileWidth", "tileHeight", "sizeX", "sizeY",
	"fractal", "frames", "monochrome", "bands"}

// Limits that keep a request from allocating absurd tiles or overflowing the
// level arithmetic.
const (
	maxTileSide = 8192
	maxSize     = 1 << 40
)

// Source is an opened test source.
type Source struct {
	info       tilesource.Info
	minLevel   int
	fractal    bool
	monochrome bool
	// axisText lists, per frame, the extra label lines ("C=1", …).
	axisText [][]string
}

// New opens a test source from its query parameters. Unknown parameters are
// ignored; malformed integers give 400 `"<name>" parameter is an incorrect
// type.`.
func New(params map[string]string) (*Source, error) {
	ints := map[string]int{"minLevel": 0, "maxLevel": 9, "tileWidth": 256, "tileHeight": 256,
		"sizeX": 0, "sizeY": 0}
	for _, name := range []string{"minLevel", "maxLevel", "tileWidth", "tileHeight", "sizeX", "sizeY"} {
		v, ok := params[name]
		if !ok {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return nil, tilesource.BadRequest("%q parameter is an incorrect type.", name)
		}
		ints[name] = n
	}
	if b := params["bands"]; b != "" {
		return nil, tilesource.BadRequest("The bands parameter of the test source is not supported yet.")
	}
	tw, th := ints["tileWidth"], ints["tileHeight"]
	if tw < 1 || th < 1 || tw > maxTileSide || th > maxTileSide {
		return nil, tilesource.BadRequest("tileWidth and tileHeight must be between 1 and %d.", maxTileSide)
	}
	maxLevel := ints["maxLevel"]
	if maxLevel < 0 || maxLevel > 40 {
		return nil, tilesource.BadRequest("maxLevel must be between 0 and 40.")
	}
	sizeX, sizeY := ints["sizeX"], ints["sizeY"]
	// large_image treats 0 (or absent) as "2^maxLevel tiles".
	if sizeX == 0 {
		sizeX = tw << maxLevel
	}
	if sizeY == 0 {
		sizeY = th << maxLevel
	}
	if sizeX < 1 || sizeY < 1 || sizeX > maxSize || sizeY > maxSize {
		return nil, tilesource.BadRequest("sizeX and sizeY must be between 1 and %d.", int64(maxSize))
	}
	levels := tilesource.LevelsFor(sizeX, sizeY, tw, th)
	s := &Source{
		minLevel: min(ints["minLevel"], levels-1),
		// The fractal is only defined for square power-of-two tiles.
		fractal:    params["fractal"] == "true" && tw == th && tw&(tw-1) == 0,
		monochrome: params["monochrome"] == "true",
	}
	bands := 3
	if s.monochrome {
		bands = 1
	}
	s.info = tilesource.Info{
		SizeX: sizeX, SizeY: sizeY, TileWidth: tw, TileHeight: th, Levels: levels,
		Stored: make([]bool, levels), Format: encode.Uint8, Bands: bands, SourceName: "test",
	}
	for z := range s.info.Stored {
		s.info.Stored[z] = true
	}
	if f := params["frames"]; f != "" {
		frames, err := parseFrames(f)
		if err != nil {
			return nil, err
		}
		if len(frames) > 1 {
			s.info.Frames = frames
		}
	}
	for _, f := range s.info.Frames {
		var lines []string
		for _, ax := range [][2]string{{"C", "IndexC"}, {"Z", "IndexZ"}, {"T", "IndexT"}, {"XY", "IndexXY"}} {
			if v, ok := f[ax[1]]; ok {
				lines = append(lines, fmt.Sprintf("%s=%d", ax[0], v))
			}
		}
		s.axisText = append(s.axisText, lines)
	}
	return s, nil
}

// maxFrames bounds the frame list a request can ask for.
const maxFrames = 100000

// parseFrames reads the frames parameter: "N" (generic frames), "c,z,t,xy"
// (counts by position) or "c=2,z=3" (named axes); the first axis varies
// fastest and axes of count 1 are left out of the frame dicts.
func parseFrames(spec string) ([]map[string]any, error) {
	bad := tilesource.BadRequest("The frames parameter is not valid.")
	if n, err := strconv.Atoi(spec); err == nil {
		if n < 1 || n > maxFrames {
			return nil, bad
		}
		frames := make([]map[string]any, n)
		for i := range frames {
			frames[i] = map[string]any{"Index": i}
		}
		return frames, nil
	}
	positional := []string{"C", "Z", "T", "XY"}
	var axes []string
	var counts []int
	for i, part := range strings.Split(spec, ",") {
		name, val, named := strings.Cut(part, "=")
		if !named {
			if i >= len(positional) {
				return nil, bad
			}
			name, val = positional[i], part
		}
		n, err := strconv.Atoi(strings.TrimSpace(val))
		name = strings.ToUpper(strings.TrimSpace(name))
		if err != nil || n < 1 || name == "" {
			return nil, bad
		}
		axes = append(axes, "Index"+name)
		counts = append(counts, n)
	}
	total := 1
	for _, n := range counts {
		total *= n
		if total > maxFrames {
			return nil, bad
		}
	}
	frames := make([]map[string]any, total)
	for i := range frames {
		f := map[string]any{}
		rest := i
		for a, n := range counts {
			if n > 1 {
				f[axes[a]] = rest % n
			}
			rest /= n
		}
		frames[i] = f
	}
	return frames, nil
}

// Info returns the metadata.
func (s *Source) Info() *tilesource.Info { return &s.info }

// ReadTile draws tile (x, y) of level z and frame.
func (s *Source) ReadTile(ctx context.Context, frame, z, x, y int) (*tilesource.Tile, error) {
	if z < s.minLevel || z >= s.info.Levels {
		return nil, tilesource.ErrZRange
	}
	if frame < 0 || frame >= s.info.FrameCount() {
		return nil, tilesource.ErrFrameRange
	}
	return &tilesource.Tile{Pixels: s.draw(frame, z, x, y)}, nil
}

// Color returns the background colour of a tile (the large_image_source_test source).
func (s *Source) Color(frame, z, x, y int) [3]uint8 {
	in := &s.info
	step := math.Ldexp(1, in.Levels-1-z)
	xf := (float64(x) + 0.5) * float64(in.TileWidth) * step / float64(in.SizeX)
	yf := (float64(y) + 0.5) * float64(in.TileHeight) * step / float64(in.SizeY)
	ff := yf
	if n := in.FrameCount(); n > 1 {
		ff = float64(frame) / float64(n-1)
	}
	r, g, b := style.HSVToRGB(xf, 0.3+0.7*ff, 0.3+0.7*yf)
	return [3]uint8{to255(r), to255(g), to255(b)}
}

func to255(v float64) uint8 {
	return uint8(min(max(int(v*255), 0), 255))
}

var (
	fontOnce sync.Once
	fontData *opentype.Font
	fontErr  error
)

// draw renders one tile: background colour, the fractal squares, and the
// label in black.
func (s *Source) draw(frame, z, x, y int) *encode.Image {
	tw, th := s.info.TileWidth, s.info.TileHeight
	col := s.Color(frame, z, x, y)
	rgb := make([]byte, tw*th*3)
	bg := col
	if s.fractal {
		bg = [3]uint8{255, 255, 255}
	}
	for i := 0; i < len(rgb); i += 3 {
		rgb[i], rgb[i+1], rgb[i+2] = bg[0], bg[1], bg[2]
	}
	if s.fractal {
		s.drawFractal(rgb, x, y, 1<<z, col)
	}

	lines := []string{fmt.Sprintf("x=%d", x), fmt.Sprintf("y=%d", y), fmt.Sprintf("z=%d", z)}
	if frame < len(s.axisText) {
		lines = append(lines, s.axisText[frame]...)
	}
	mask := textMask(tw, th, lines)
	if mask != nil {
		for i, a := range mask.Pix {
			if a == 0 {
				continue
			}
			for c := 0; c < 3; c++ {
				rgb[i*3+c] = uint8(int(rgb[i*3+c]) * (255 - int(a)) / 255)
			}
		}
	}
	if !s.monochrome {
		return &encode.Image{Width: tw, Height: th, Bands: 3, Format: encode.Uint8, Pix: rgb}
	}
	grey := make([]byte, tw*th)
	for i := range grey {
		// PIL's RGB→L conversion (ITU-R 601-2 luma).
		r, g, b := int(rgb[i*3]), int(rgb[i*3+1]), int(rgb[i*3+2])
		grey[i] = uint8((r*299 + g*587 + b*114 + 500) / 1000)
	}
	return &encode.Image{Width: tw, Height: th, Bands: 1, Format: encode.Uint8, Pix: grey}
}

// drawFractal paints nested squares in col: at every scale sq (from the
// level's full width down to 4 pixels) a square of half the size sits in the
// middle of each sq×sq cell.
func (s *Source) drawFractal(rgb []byte, x, y, widthCount int, col [3]uint8) {
	tw, th := s.info.TileWidth, s.info.TileHeight
	px, py := x*tw, y*th
	for sq := widthCount * tw; sq >= 4; sq /= 2 {
		sq1 := sq / 4
		sq2 := sq1 + sq/2
		for t := -(py % sq); t < th; t += sq {
			for u := -(px % sq); u < tw; u += sq {
				fillRect(rgb, tw, th, u+sq1, t+sq1, u+sq2, t+sq2, col)
			}
		}
	}
}

func fillRect(rgb []byte, tw, th, x0, y0, x1, y1 int, col [3]uint8) {
	x0, y0 = max(x0, 0), max(y0, 0)
	x1, y1 = min(x1, tw), min(y1, th)
	for yy := y0; yy < y1; yy++ {
		row := rgb[yy*tw*3:]
		for xx := x0; xx < x1; xx++ {
			row[xx*3], row[xx*3+1], row[xx*3+2] = col[0], col[1], col[2]
		}
	}
}

// textMask renders the label lines as coverage at (10, 10) with a size of
// int(min(0.15, 0.8/lines)·min(tw, th)) pixels, like large_image's
// multiline_text (4 pixels between lines).
func textMask(tw, th int, lines []string) *image.Alpha {
	size := int(math.Min(0.15, 0.8/float64(len(lines))) * float64(min(tw, th)))
	if size < 1 {
		return nil
	}
	fontOnce.Do(func() { fontData, fontErr = opentype.Parse(gomono.TTF) })
	if fontErr != nil {
		return nil
	}
	// Faces keep per-glyph buffers and are not safe for concurrent use, so
	// each tile gets its own; creating one is cheap once the font is parsed.
	face, err := opentype.NewFace(fontData, &opentype.FaceOptions{Size: float64(size), DPI: 72, Hinting: font.HintingFull})
	if err != nil {
		return nil
	}
	defer face.Close()
	mask := image.NewAlpha(image.Rect(0, 0, tw, th))
	m := face.Metrics()
	d := font.Drawer{Dst: mask, Src: image.Opaque, Face: face}
	lineStep := m.Ascent + m.Descent + fixed.I(4)
	for i, line := range lines {
		d.Dot = fixed.Point26_6{X: fixed.I(10), Y: fixed.I(10) + m.Ascent + lineStep*fixed.Int26_6(i)}
		d.DrawString(line)
	}
	return mask
}

// AssociatedNames returns no names: the test source has no associated
// images.
func (s *Source) AssociatedNames() []string { return []string{} }

// Associated returns nil, nil: there are no associated images.
func (s *Source) Associated(name string) (*encode.Image, error) { return nil, nil }

// InternalMetadata returns {"fractal": …, "monochrome": …} as large_image.
func (s *Source) InternalMetadata() map[string]any {
	return map[string]any{"fractal": s.fractal, "monochrome": s.monochrome}
}

// MemoryEstimate is small: tiles are drawn on demand.
func (s *Source) MemoryEstimate() int64 { return 4096 + int64(len(s.info.Frames))*256 }

// Close does nothing.
func (s *Source) Close() error { return nil }

var _ tilesource.Source = (*Source)(nil)
