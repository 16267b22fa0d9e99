package trace

import (
	"errors"
	"math"
	"math/rand/v2"
	"sort"
)

// Options control trace generation. Zero fields take the defaults of
// DefaultOptions.
type Options struct {
	Seed int64
	// Users is the number of simultaneous viewers; user u looks at
	// Slides[u % len(Slides)].
	Users int
	// Views is the number of views (user actions, the opening included)
	// per user.
	Views int
	// ViewportW and ViewportH are the screen size in pixels.
	ViewportW, ViewportH int
	// Coarse is how many levels below the sharp one a view also requests
	// (a viewer draws a blurry image first); 0 means the default, a
	// negative value none.
	Coarse int
	// ThinkMS is the mean time a user looks at a view before acting.
	ThinkMS int
	// NoBrowserCache makes every view request all its tiles, as if the
	// browser cached nothing. By default a user never asks twice for a
	// tile, as a browser honouring Cache-Control would.
	NoBrowserCache bool
	// MaxOverZoom is how far past full resolution a user may zoom
	// (screen pixels per slide pixel); 1 means not at all.
	MaxOverZoom float64
}

// DefaultOptions are a pathologist at a 1920×1080 screen.
func DefaultOptions() Options {
	return Options{Seed: 1, Users: 1, Views: 40, ViewportW: 1920, ViewportH: 1080, Coarse: 2, ThinkMS: 1500, MaxOverZoom: 1}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.Users <= 0 {
		o.Users = d.Users
	}
	if o.Views <= 0 {
		o.Views = d.Views
	}
	if o.ViewportW <= 0 {
		o.ViewportW = d.ViewportW
	}
	if o.ViewportH <= 0 {
		o.ViewportH = d.ViewportH
	}
	switch {
	case o.Coarse == 0:
		o.Coarse = d.Coarse
	case o.Coarse < 0:
		o.Coarse = 0
	}
	if o.ThinkMS < 0 {
		o.ThinkMS = 0
	}
	if o.MaxOverZoom < 1 {
		o.MaxOverZoom = 1
	}
	return o
}

// Generate makes a deterministic trace: the same slides and options give
// the same trace. Each user opens the whole slide, then zooms in, zooms
// out and pans at random; each view asks for the tiles covering the
// viewport at the sharp level and at up to Coarse coarser levels, coarse
// levels first and, within a level, from the centre outwards, as
// OpenSeadragon does.
func Generate(slides []Slide, o Options) (*Trace, error) {
	if len(slides) == 0 {
		return nil, errors.New("trace: no slides")
	}
	for _, s := range slides {
		if err := s.Validate(); err != nil {
			return nil, err
		}
	}
	o = o.withDefaults()
	t := &Trace{Seed: o.Seed, Slides: append([]Slide(nil), slides...)}
	for u := 0; u < o.Users; u++ {
		t.Views = append(t.Views, session(u, slides[u%len(slides)], o)...)
	}
	return t, nil
}

// session simulates one user. Positions are in full-resolution pixels;
// r is slide pixels per screen pixel (the zoom).
func session(user int, s Slide, o Options) []View {
	rng := rand.New(rand.NewPCG(uint64(o.Seed), uint64(user)+1))
	W, H := float64(o.ViewportW), float64(o.ViewportH)
	w, h := float64(s.SizeX), float64(s.SizeY)
	home := math.Max(w/W, h/H)
	minR := math.Min(1/o.MaxOverZoom, home)
	cx, cy, r := w/2, h/2, home
	seen := map[Tile]bool{}
	views := make([]View, 0, o.Views)
	for seq := 0; seq < o.Views; seq++ {
		action, think := "open", 0
		if seq > 0 {
			think = thinkTime(rng, o.ThinkMS)
			action = pickAction(rng, r, home, minR)
			switch action {
			case "zoomin":
				// Zoom towards a point the user is interested in,
				// somewhere in the middle of the screen.
				px := cx + (rng.Float64()-0.5)*0.6*W*r
				py := cy + (rng.Float64()-0.5)*0.6*H*r
				r = math.Max(r/2, minR)
				cx, cy = (cx+px)/2, (cy+py)/2
			case "zoomout":
				r = math.Min(r*2, home)
			case "pan":
				a := rng.Float64() * 2 * math.Pi
				d := 0.3 + 0.6*rng.Float64()
				cx += math.Cos(a) * d * W * r
				cy += math.Sin(a) * d * H * r
			}
			cx = math.Min(math.Max(cx, 0), w)
			cy = math.Min(math.Max(cy, 0), h)
		}
		vp := Rect{
			X0: math.Max(cx-W*r/2, 0), Y0: math.Max(cy-H*r/2, 0),
			X1: math.Min(cx+W*r/2, w), Y1: math.Min(cy+H*r/2, h),
		}
		level := sharpLevel(s, r)
		v := View{User: user, Seq: seq, Item: s.ID, Action: action, ThinkMS: think, Zoom: r, Level: level, Viewport: vp}
		for z := max(0, level-o.Coarse); z <= level; z++ {
			for _, tl := range Cover(s, z, vp) {
				if !o.NoBrowserCache {
					if seen[tl] {
						continue
					}
					seen[tl] = true
				}
				v.Tiles = append(v.Tiles, tl)
			}
		}
		views = append(views, v)
	}
	return views
}

func thinkTime(rng *rand.Rand, mean int) int {
	if mean == 0 {
		return 0
	}
	// Mostly short looks, sometimes a long one; capped so one draw
	// cannot stall a run.
	t := rng.ExpFloat64() * float64(mean)
	return int(math.Min(math.Max(t, 100), 5*float64(mean)))
}

func pickAction(rng *rand.Rand, r, home, minR float64) string {
	canIn := r > minR*1.0001
	canOut := r < home*0.9999
	p := rng.Float64()
	switch {
	case p < 0.35 && canIn:
		return "zoomin"
	case p < 0.55 && canOut:
		return "zoomout"
	case !canOut && canIn && p < 0.7:
		// At the whole-slide view there is little to pan over.
		return "zoomin"
	default:
		return "pan"
	}
}

// sharpLevel is the lowest-resolution level with at least one slide pixel
// per screen pixel (zoom r slide pixels per screen pixel).
func sharpLevel(s Slide, r float64) int {
	if r <= 1 {
		return s.Levels - 1
	}
	z := s.Levels - 1 - int(math.Floor(math.Log2(r)+1e-9))
	return min(max(z, 0), s.Levels-1)
}

// Cover returns the tiles of level z that intersect vp, ordered from the
// centre of vp outwards (ties by row, then column).
func Cover(s Slide, z int, vp Rect) []Tile {
	if z < 0 || z >= s.Levels || vp.X1 <= vp.X0 || vp.Y1 <= vp.Y0 {
		return nil
	}
	cols, rows := s.Grid(z)
	sw := float64(s.TileWidth * s.Scale(z))
	sh := float64(s.TileHeight * s.Scale(z))
	x0 := max(int(math.Floor(vp.X0/sw)), 0)
	y0 := max(int(math.Floor(vp.Y0/sh)), 0)
	x1 := min(int(math.Ceil(vp.X1/sw)), cols)
	y1 := min(int(math.Ceil(vp.Y1/sh)), rows)
	var out []Tile
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			out = append(out, Tile{Z: z, X: x, Y: y})
		}
	}
	mx, my := (vp.X0+vp.X1)/2, (vp.Y0+vp.Y1)/2
	dist := func(t Tile) float64 {
		dx := (float64(t.X)+0.5)*sw - mx
		dy := (float64(t.Y)+0.5)*sh - my
		return dx*dx + dy*dy
	}
	sort.SliceStable(out, func(i, j int) bool { return dist(out[i]) < dist(out[j]) })
	return out
}
