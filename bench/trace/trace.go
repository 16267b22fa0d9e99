// Package trace describes simulated viewer sessions: which tiles a viewer
// asks for, in which order and grouping, and reads and writes them as JSON
// lines so the same trace can be replayed against several servers.
package trace

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// Slide is the part of a slide's tile metadata a viewer needs
// (GET /api/v1/item/{id}/tiles).
type Slide struct {
	ID         string `json:"id"`
	SizeX      int    `json:"sizeX"`
	SizeY      int    `json:"sizeY"`
	TileWidth  int    `json:"tileWidth"`
	TileHeight int    `json:"tileHeight"`
	Levels     int    `json:"levels"`
}

// Validate reports whether the geometry is usable.
func (s Slide) Validate() error {
	if s.SizeX <= 0 || s.SizeY <= 0 || s.TileWidth <= 0 || s.TileHeight <= 0 || s.Levels <= 0 {
		return fmt.Errorf("slide %q: sizes, tile sizes and levels must be positive", s.ID)
	}
	return nil
}

// Scale is the downsample factor of level z relative to full resolution.
func (s Slide) Scale(z int) int { return 1 << (s.Levels - 1 - z) }

// Grid is the number of tile columns and rows of level z (TileSource's level geometry).
func (s Slide) Grid(z int) (cols, rows int) {
	step := s.Scale(z)
	cols = ceilDiv(s.SizeX, step*s.TileWidth)
	rows = ceilDiv(s.SizeY, step*s.TileHeight)
	return cols, rows
}

// DeepZoomMaxLevel is ceil(log2(max(sizeX, sizeY))): the DeepZoom level of
// full resolution, DeepZoom level 0 being 1×1 pixel.
func (s Slide) DeepZoomMaxLevel() int {
	m := max(s.SizeX, s.SizeY)
	return int(math.Ceil(math.Log2(float64(m))))
}

// Tile is one tile request in large_image zxy numbering (0 = lowest
// resolution).
type Tile struct {
	Z int `json:"z"`
	X int `json:"x"`
	Y int `json:"y"`
}

// Rect is a rectangle in full-resolution pixels, [X0,X1)×[Y0,Y1).
type Rect struct {
	X0 float64 `json:"x0"`
	Y0 float64 `json:"y0"`
	X1 float64 `json:"x1"`
	Y1 float64 `json:"y1"`
}

// View is what one viewer shows after one user action: the tiles it
// requests together, coarse levels first.
type View struct {
	User int    `json:"user"`
	Seq  int    `json:"seq"` // position in the user's session, from 0
	Item string `json:"item"`
	// Action is what led here: open, zoomin, zoomout or pan.
	Action string `json:"action"`
	// ThinkMS is how long the user looked at the previous view before
	// this action.
	ThinkMS int `json:"thinkMs"`
	// Zoom is slide pixels per screen pixel.
	Zoom float64 `json:"zoom"`
	// Level is the level that fills the screen at full sharpness.
	Level int `json:"level"`
	// Viewport is the visible part of the slide.
	Viewport Rect `json:"viewport"`
	// Tiles are the requests in viewer order. Tiles this user already
	// fetched are left out when the generator models a browser cache.
	Tiles []Tile `json:"tiles"`
}

// Trace is a set of viewer sessions over one or more slides.
type Trace struct {
	Seed   int64   `json:"seed"`
	Slides []Slide `json:"slides"`
	Views  []View  `json:"views"`
}

// Users returns the number of distinct users.
func (t *Trace) Users() int {
	n := 0
	for _, v := range t.Views {
		n = max(n, v.User+1)
	}
	return n
}

// Requests returns the total number of tile requests.
func (t *Trace) Requests() int {
	n := 0
	for _, v := range t.Views {
		n += len(v.Tiles)
	}
	return n
}

// Slide returns the slide with the given id.
func (t *Trace) Slide(id string) (Slide, bool) {
	for _, s := range t.Slides {
		if s.ID == id {
			return s, true
		}
	}
	return Slide{}, false
}

// ByUser returns each user's views in session order.
func (t *Trace) ByUser() [][]View {
	out := make([][]View, t.Users())
	for _, v := range t.Views {
		out[v.User] = append(out[v.User], v)
	}
	return out
}

// line is one JSON line of a trace file: exactly one field is set.
type line struct {
	Seed  *int64 `json:"seed,omitempty"`
	Slide *Slide `json:"slide,omitempty"`
	View  *View  `json:"view,omitempty"`
}

// Write writes t as JSON lines: the seed, then one line per slide, then
// one line per view.
func (t *Trace) Write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	seed := t.Seed
	if err := enc.Encode(line{Seed: &seed}); err != nil {
		return err
	}
	for i := range t.Slides {
		if err := enc.Encode(line{Slide: &t.Slides[i]}); err != nil {
			return err
		}
	}
	for i := range t.Views {
		if err := enc.Encode(line{View: &t.Views[i]}); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// Read parses a trace written by Write.
func Read(r io.Reader) (*Trace, error) {
	t := &Trace{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	n := 0
	for sc.Scan() {
		n++
		if len(sc.Bytes()) == 0 {
			continue
		}
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("trace line %d: %w", n, err)
		}
		switch {
		case l.Seed != nil:
			t.Seed = *l.Seed
		case l.Slide != nil:
			if err := l.Slide.Validate(); err != nil {
				return nil, fmt.Errorf("trace line %d: %w", n, err)
			}
			t.Slides = append(t.Slides, *l.Slide)
		case l.View != nil:
			t.Views = append(t.Views, *l.View)
		default:
			return nil, fmt.Errorf("trace line %d: no seed, slide or view", n)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(t.Views) == 0 {
		return nil, errors.New("trace has no views")
	}
	for _, v := range t.Views {
		if _, ok := t.Slide(v.Item); !ok {
			return nil, fmt.Errorf("trace view of user %d refers to unknown slide %q", v.User, v.Item)
		}
		if v.User < 0 {
			return nil, fmt.Errorf("trace view has negative user %d", v.User)
		}
	}
	return t, nil
}

// Load reads a trace file.
func Load(path string) (*Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Read(f)
}

// Save writes a trace file.
func (t *Trace) Save(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := t.Write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// Geometry returns a slide of the given size with square tiles and the
// level count large_image computes: ceil(log2(max(w/tile, h/tile))) + 1.
func Geometry(id string, w, h, tile int) Slide {
	levels := 1
	for tile<<(levels-1) < w || tile<<(levels-1) < h {
		levels++
	}
	return Slide{ID: id, SizeX: w, SizeY: h, TileWidth: tile, TileHeight: tile, Levels: levels}
}
