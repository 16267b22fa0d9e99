package trace

import (
	"bytes"
	"math"
	"reflect"
	"testing"
)

// Two real geometries: the 30000 px benchmark slide and large_image's
// sample_image.ptif (TileSource.getMetadata).
var (
	square = Slide{ID: "square", SizeX: 30000, SizeY: 30000, TileWidth: 256, TileHeight: 256, Levels: 8}
	wide   = Slide{ID: "wide", SizeX: 58368, SizeY: 12288, TileWidth: 256, TileHeight: 256, Levels: 9}
)

func gen(t *testing.T, o Options, slides ...Slide) *Trace {
	t.Helper()
	tr, err := Generate(slides, o)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func encode(t *testing.T, tr *Trace) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := tr.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDeterministic(t *testing.T) {
	o := Options{Seed: 42, Users: 3, Views: 30}
	a := encode(t, gen(t, o, square, wide))
	b := encode(t, gen(t, o, square, wide))
	if !bytes.Equal(a, b) {
		t.Fatal("same seed gave different traces")
	}
	o.Seed = 43
	if c := encode(t, gen(t, o, square, wide)); bytes.Equal(a, c) {
		t.Fatal("different seeds gave the same trace")
	}
}

func TestRoundTrip(t *testing.T) {
	tr := gen(t, Options{Seed: 7, Users: 2, Views: 10}, square, wide)
	back, err := Read(bytes.NewReader(encode(t, tr)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(tr, back) {
		t.Fatal("trace changed through JSON lines")
	}
	if _, err := Read(bytes.NewReader([]byte(`{"view":{"user":0,"item":"nope"}}` + "\n"))); err == nil {
		t.Error("a view of an unknown slide was accepted")
	}
}

// covered checks, by sampling points, that every point of vp lies in one
// of the tiles of level z in have.
func covered(t *testing.T, s Slide, z int, vp Rect, have map[Tile]bool) bool {
	t.Helper()
	span := float64(s.TileWidth * s.Scale(z))
	spanY := float64(s.TileHeight * s.Scale(z))
	for i := 0; i <= 16; i++ {
		for j := 0; j <= 16; j++ {
			px := math.Min(vp.X0+(vp.X1-vp.X0)*float64(i)/16, vp.X1-0.5)
			py := math.Min(vp.Y0+(vp.Y1-vp.Y0)*float64(j)/16, vp.Y1-0.5)
			if !have[Tile{Z: z, X: int(px / span), Y: int(py / spanY)}] {
				t.Logf("point (%.0f,%.0f) of level %d not covered", px, py, z)
				return false
			}
		}
	}
	return true
}

func TestShapeWithoutBrowserCache(t *testing.T) {
	for _, s := range []Slide{square, wide} {
		tr := gen(t, Options{Seed: 3, Users: 2, Views: 60, NoBrowserCache: true}, s)
		actions := map[string]int{}
		maxLevel := 0
		for _, v := range tr.Views {
			actions[v.Action]++
			maxLevel = max(maxLevel, v.Level)
			if v.Level < 0 || v.Level >= s.Levels {
				t.Fatalf("%s view %d: level %d outside [0,%d)", s.ID, v.Seq, v.Level, s.Levels)
			}
			vp := v.Viewport
			if vp.X0 < 0 || vp.Y0 < 0 || vp.X1 > float64(s.SizeX) || vp.Y1 > float64(s.SizeY) || vp.X1 <= vp.X0 || vp.Y1 <= vp.Y0 {
				t.Fatalf("%s view %d: viewport %+v outside the slide", s.ID, v.Seq, vp)
			}
			have := map[Tile]bool{}
			prevZ := -1
			for _, tl := range v.Tiles {
				if tl.Z < prevZ {
					t.Fatalf("%s view %d: level %d requested after level %d (coarse levels must come first)", s.ID, v.Seq, tl.Z, prevZ)
				}
				prevZ = tl.Z
				if tl.Z > v.Level || tl.Z < v.Level-2 {
					t.Fatalf("%s view %d: tile level %d for sharp level %d", s.ID, v.Seq, tl.Z, v.Level)
				}
				cols, rows := s.Grid(tl.Z)
				if tl.X < 0 || tl.Y < 0 || tl.X >= cols || tl.Y >= rows {
					t.Fatalf("%s view %d: tile %+v outside the %dx%d grid", s.ID, v.Seq, tl, cols, rows)
				}
				// No wasted tile: each one intersects the viewport.
				span, spanY := float64(s.TileWidth*s.Scale(tl.Z)), float64(s.TileHeight*s.Scale(tl.Z))
				if float64(tl.X)*span >= vp.X1 || float64(tl.X+1)*span <= vp.X0 || float64(tl.Y)*spanY >= vp.Y1 || float64(tl.Y+1)*spanY <= vp.Y0 {
					t.Fatalf("%s view %d: tile %+v does not intersect viewport %+v", s.ID, v.Seq, tl, vp)
				}
				if have[tl] {
					t.Fatalf("%s view %d: tile %+v twice", s.ID, v.Seq, tl)
				}
				have[tl] = true
			}
			for z := max(0, v.Level-2); z <= v.Level; z++ {
				if !covered(t, s, z, vp, have) {
					t.Fatalf("%s view %d: level %d tiles do not cover the viewport", s.ID, v.Seq, z)
				}
			}
			// The sharp level has at least one slide pixel per screen
			// pixel, and the next coarser one would not.
			r := v.Zoom
			if vp.X1-vp.X0 > 1920*r+1e-6 || vp.Y1-vp.Y0 > 1080*r+1e-6 {
				t.Fatalf("%s view %d: viewport %+v larger than the screen at zoom %.2f", s.ID, v.Seq, vp, r)
			}
			if float64(s.Scale(v.Level)) > r*1.0001 || (v.Level > 0 && float64(s.Scale(v.Level-1)) <= r) {
				t.Fatalf("%s view %d: level %d is not the sharp level for %.2f slide px per screen px", s.ID, v.Seq, v.Level, r)
			}
		}
		first := tr.Views[0]
		if first.Action != "open" || first.Viewport != (Rect{0, 0, float64(s.SizeX), float64(s.SizeY)}) {
			t.Errorf("%s: first view %+v is not the whole slide", s.ID, first)
		}
		for _, a := range []string{"open", "zoomin", "zoomout", "pan"} {
			if actions[a] == 0 {
				t.Errorf("%s: no %s action in %v", s.ID, a, actions)
			}
		}
		if maxLevel != s.Levels-1 {
			t.Errorf("%s: users never reached full resolution (max level %d)", s.ID, maxLevel)
		}
	}
}

func TestBrowserCache(t *testing.T) {
	tr := gen(t, Options{Seed: 5, Users: 3, Views: 50}, square)
	for u, views := range tr.ByUser() {
		seen := map[Tile]bool{}
		for _, v := range views {
			for _, tl := range v.Tiles {
				if seen[tl] {
					t.Fatalf("user %d asked twice for %+v", u, tl)
				}
				seen[tl] = true
			}
			// What the user fetched so far covers the screen.
			if !covered(t, square, v.Level, v.Viewport, seen) {
				t.Fatalf("user %d view %d: viewport not covered", u, v.Seq)
			}
		}
	}
	noCache := gen(t, Options{Seed: 5, Users: 3, Views: 50, NoBrowserCache: true}, square)
	if tr.Requests() >= noCache.Requests() {
		t.Errorf("browser cache did not save requests: %d vs %d", tr.Requests(), noCache.Requests())
	}
}

func TestUsersAndSlides(t *testing.T) {
	tr := gen(t, Options{Seed: 1, Users: 4, Views: 5}, square, wide)
	if tr.Users() != 4 || len(tr.Views) != 20 {
		t.Fatalf("users %d views %d", tr.Users(), len(tr.Views))
	}
	for _, v := range tr.Views {
		want := []string{"square", "wide"}[v.User%2]
		if v.Item != want {
			t.Errorf("user %d looks at %s, want %s", v.User, v.Item, want)
		}
	}
}

func TestGeometry(t *testing.T) {
	if c, r := wide.Grid(8); c != 228 || r != 48 {
		t.Errorf("wide full-res grid %dx%d, want 228x48", c, r)
	}
	if c, r := wide.Grid(0); c != 1 || r != 1 {
		t.Errorf("wide level 0 grid %dx%d, want 1x1", c, r)
	}
	if square.DeepZoomMaxLevel() != 15 || wide.DeepZoomMaxLevel() != 16 {
		t.Errorf("DeepZoom max levels %d %d, want 15 16", square.DeepZoomMaxLevel(), wide.DeepZoomMaxLevel())
	}
}

func TestGeometryLevels(t *testing.T) {
	// Spec 1.2: 58368x12288 → 9 levels; 10000x5000 → 7; one tile → 1.
	for _, c := range []struct{ w, h, tile, want int }{{58368, 12288, 256, 9}, {10000, 5000, 256, 7}, {10000, 5000, 1024, 5}, {200, 100, 256, 1}, {30000, 30000, 256, 8}} {
		if got := Geometry("g", c.w, c.h, c.tile).Levels; got != c.want {
			t.Errorf("%dx%d/%d: %d levels, want %d", c.w, c.h, c.tile, got, c.want)
		}
	}
}
