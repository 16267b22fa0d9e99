package iiif

import (
	"errors"
	"net/http"
	"testing"

	"github.com/tileserver/tileserver/tilesource"
)

func statusOf(err error) int {
	var te *tilesource.Error
	if errors.As(err, &te) {
		return te.Status
	}
	return 0
}

var testLimits = limits{maxWidth: 5000, maxHeight: 4000, maxArea: 10_000_000}

func TestParseRegion(t *testing.T) {
	for _, c := range []struct {
		in         string
		x, y, w, h int
		status     int
	}{
		{"full", 0, 0, 1000, 600, 0},
		{"square", 200, 0, 600, 600, 0},
		{"0,0,100,50", 0, 0, 100, 50, 0},
		{"900,500,300,300", 900, 500, 100, 100, 0}, // cropped at the edge
		{"pct:10,50,20,50", 100, 300, 200, 300, 0},
		{"pct:0,0,100,100", 0, 0, 1000, 600, 0},
		{"pct:99.95,0,10,10", 1000, 0, 0, 0, http.StatusBadRequest}, // rounds to outside
		{"pct:.5,0,1.5,100", 5, 0, 15, 600, 0},
		{"1000,0,10,10", 0, 0, 0, 0, http.StatusBadRequest}, // outside
		{"0,600,10,10", 0, 0, 0, 0, http.StatusBadRequest},
		{"0,0,0,10", 0, 0, 0, 0, http.StatusBadRequest},
		{"pct:0,0,0,10", 0, 0, 0, 0, http.StatusBadRequest},
		{"-1,0,10,10", 0, 0, 0, 0, http.StatusBadRequest},
		{"0,0,10", 0, 0, 0, 0, http.StatusBadRequest},
		{"0,0,10,10,1", 0, 0, 0, 0, http.StatusBadRequest},
		{"1.5,0,10,10", 0, 0, 0, 0, http.StatusBadRequest},
		{" 1,0,10,10", 0, 0, 0, 0, http.StatusBadRequest},
		{"pct:a,0,1,1", 0, 0, 0, 0, http.StatusBadRequest},
		{"Full", 0, 0, 0, 0, http.StatusBadRequest},
	} {
		x, y, w, h, err := parseRegion(c.in, 1000, 600)
		if c.status != 0 {
			if statusOf(err) != c.status {
				t.Errorf("%q: error %v, want status %d", c.in, err, c.status)
			}
			continue
		}
		if err != nil || x != c.x || y != c.y || w != c.w || h != c.h {
			t.Errorf("%q = %d,%d,%d,%d (%v), want %d,%d,%d,%d", c.in, x, y, w, h, err, c.x, c.y, c.w, c.h)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in      string
		version int
		rw, rh  int
		w, h    int
		status  int
	}{
		{"max", 3, 1000, 600, 1000, 600, 0},
		{"max", 3, 6000, 1000, 5000, 833, 0},       // maxWidth
		{"max", 3, 5000, 5000, 3162, 3162, 0},      // maxArea
		{"^max", 3, 100, 50, 4472, 2236, 0},        // up to maxArea
		{"^max", 3, 100, 10, 5000, 500, 0},         // up to maxWidth
		{"500,", 3, 1000, 600, 500, 300, 0},        // aspect kept
		{",300", 3, 1000, 600, 500, 300, 0},        //
		{"333,", 3, 1000, 600, 333, 200, 0},        // 199.8 rounds to 200
		{"500,100", 3, 1000, 600, 500, 100, 0},     // distorted
		{"!500,500", 3, 1000, 600, 500, 300, 0},    // confined
		{"!500,100", 3, 1000, 600, 167, 100, 0},    //
		{"!2000,2000", 3, 1000, 600, 1000, 600, 0}, // never enlarged without ^
		{"^!2000,2000", 3, 1000, 600, 2000, 1200, 0},
		{"pct:50", 3, 1000, 600, 500, 300, 0},
		{"pct:12.5", 3, 1000, 600, 125, 75, 0},
		{"^pct:150", 3, 1000, 600, 1500, 900, 0},
		{"^1500,", 3, 1000, 600, 1500, 900, 0},
		{"^1500,100", 3, 1000, 600, 1500, 100, 0},
		{"pct:150", 3, 1000, 600, 0, 0, http.StatusBadRequest},
		{"1500,", 3, 1000, 600, 0, 0, http.StatusBadRequest},
		{",601", 3, 1000, 600, 0, 0, http.StatusBadRequest},
		{"1000,601", 3, 1000, 600, 0, 0, http.StatusBadRequest},
		{"full", 3, 1000, 600, 0, 0, http.StatusBadRequest}, // removed in 3.0
		{"0,", 3, 1000, 600, 0, 0, http.StatusBadRequest},
		{"1,", 3, 1000, 600, 1, 1, 0},                     // 0.6 rounds to 1
		{"1,", 3, 3000, 600, 0, 0, http.StatusBadRequest}, // 0.2 rounds to 0
		{"pct:0", 3, 1000, 600, 0, 0, http.StatusBadRequest},
		{"^6000,", 3, 1000, 600, 0, 0, http.StatusBadRequest},     // beyond maxWidth
		{"^4000,3000", 3, 1000, 600, 0, 0, http.StatusBadRequest}, // beyond maxArea
		{"abc", 3, 1000, 600, 0, 0, http.StatusBadRequest},
		{"!500,", 3, 1000, 600, 0, 0, http.StatusBadRequest},
		{"-5,", 3, 1000, 600, 0, 0, http.StatusBadRequest},
		// Version 2.1: full, upscaling without ^, no ^ syntax.
		{"full", 2, 1000, 600, 1000, 600, 0},
		{"max", 2, 6000, 1000, 5000, 833, 0},
		{"1500,", 2, 1000, 600, 1500, 900, 0},
		{"pct:150", 2, 1000, 600, 1500, 900, 0},
		{"!2000,2000", 2, 1000, 600, 2000, 1200, 0},
		{"^max", 2, 1000, 600, 0, 0, http.StatusBadRequest},
		{"full", 2, 6000, 1000, 0, 0, http.StatusBadRequest}, // beyond maxWidth
	} {
		w, h, err := parseSize(c.in, c.version, c.rw, c.rh, testLimits)
		if c.status != 0 {
			if statusOf(err) != c.status {
				t.Errorf("v%d %q of %d×%d: %d×%d, error %v, want status %d", c.version, c.in, c.rw, c.rh, w, h, err, c.status)
			}
			continue
		}
		if err != nil || w != c.w || h != c.h {
			t.Errorf("v%d %q of %d×%d = %d×%d (%v), want %d×%d", c.version, c.in, c.rw, c.rh, w, h, err, c.w, c.h)
		}
	}
}

func TestParseRotationQualityFormat(t *testing.T) {
	for _, c := range []struct {
		in     string
		mirror bool
		deg    int
		status int
	}{
		{"0", false, 0, 0}, {"90", false, 90, 0}, {"180.0", false, 180, 0}, {"270", false, 270, 0},
		{"360", false, 0, 0}, {"!0", true, 0, 0}, {"!90", true, 90, 0},
		{"45", false, 0, http.StatusNotImplemented}, {"!22.5", false, 0, http.StatusNotImplemented},
		{"361", false, 0, http.StatusBadRequest}, {"-90", false, 0, http.StatusBadRequest},
		{"", false, 0, http.StatusBadRequest}, {"!!90", false, 0, http.StatusBadRequest},
		{"ninety", false, 0, http.StatusBadRequest},
	} {
		m, d, err := parseRotation(c.in)
		if c.status != 0 {
			if statusOf(err) != c.status {
				t.Errorf("rotation %q: %v, want status %d", c.in, err, c.status)
			}
			continue
		}
		if err != nil || m != c.mirror || d != c.deg {
			t.Errorf("rotation %q = %v %d (%v)", c.in, m, d, err)
		}
	}
	for _, c := range []struct {
		in              string
		version         int
		quality, format string
		status          int
	}{
		{"default.jpg", 3, "default", "jpg", 0},
		{"color.png", 3, "color", "png", 0},
		{"gray.webp", 3, "gray", "webp", 0},
		{"bitonal.tif", 3, "bitonal", "tif", 0},
		{"native.jpg", 2, "default", "jpg", 0},
		{"native.jpg", 3, "", "", http.StatusBadRequest},
		{"grey.jpg", 3, "", "", http.StatusBadRequest},
		{"default.gif", 3, "", "", http.StatusNotImplemented},
		{"default.jp2", 2, "", "", http.StatusNotImplemented},
		{"default.pdf", 3, "", "", http.StatusNotImplemented},
		{"default.bmp", 3, "", "", http.StatusBadRequest},
		{"default", 3, "", "", http.StatusBadRequest},
		{"default.JPG", 3, "", "", http.StatusBadRequest},
	} {
		q, f, err := parseQualityFormat(c.in, c.version)
		if c.status != 0 {
			if statusOf(err) != c.status {
				t.Errorf("v%d %q: %v, want status %d", c.version, c.in, err, c.status)
			}
			continue
		}
		if err != nil || q != c.quality || f != c.format {
			t.Errorf("v%d %q = %q %q (%v)", c.version, c.in, q, f, err)
		}
	}
}

func TestCanonical(t *testing.T) {
	for _, c := range []struct {
		version                   int
		region, size, rot, qf, cn string
	}{
		{3, "full", "max", "0", "default.jpg", "full/max/0/default.jpg"},
		{3, "pct:0,0,100,100", "1000,", "360", "color.png", "full/max/0/color.png"},
		{3, "0,0,500,300", "250,", "!90", "gray.jpg", "0,0,500,300/250,150/!90/gray.jpg"},
		{3, "square", "^!700,700", "0", "default.jpg", "200,0,600,600/^700,700/0/default.jpg"},
		{3, "full", "500,100", "180", "bitonal.png", "full/500,100/180/bitonal.png"},
		{2, "full", "full", "0", "native.jpg", "full/full/0/default.jpg"},
		{2, "full", "pct:50", "0", "default.jpg", "full/500,/0/default.jpg"},
		{2, "0,0,240,240", "240,240", "0", "default.jpg", "0,0,240,240/full/0/default.jpg"},
		{2, "full", "500,100", "90", "default.jpg", "full/500,100/90/default.jpg"},
	} {
		r, err := parseRequest(c.version, c.region, c.size, c.rot, c.qf, 1000, 600, testLimits)
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		if got := r.canonical(c.version, 1000, 600, testLimits); got != c.cn {
			t.Errorf("v%d %s/%s/%s/%s canonical %q, want %q", c.version, c.region, c.size, c.rot, c.qf, got, c.cn)
		}
	}
}

func TestTileOf(t *testing.T) {
	// 2220×2967 with 240×240 tiles: five levels, 4 is full resolution.
	in := &tilesource.Info{SizeX: 2220, SizeY: 2967, TileWidth: 240, TileHeight: 240, Levels: 5}
	for _, c := range []struct {
		path    string
		z, x, y int
		ok      bool
	}{
		{"0,0,240,240/240,240/0/default.jpg", 4, 0, 0, true},
		{"240,480,240,240/max/0/color.jpg", 4, 1, 2, true},
		{"960,1920,960,960/240,240/0/default.jpg", 2, 1, 2, true},
		{"0,0,3840,3840/240,240/0/default.jpg", 0, 0, 0, false}, // cropped: an edge tile
		{"960,0,480,480/240,240/0/default.jpg", 3, 2, 0, true},
		{"1920,0,480,480/240,240/0/default.jpg", 0, 0, 0, false}, // past the image: cropped
		{"2160,0,240,240/60,240/0/default.jpg", 0, 0, 0, false},  // edge tile, cropped
		{"0,0,240,240/240,240/0/default.png", 0, 0, 0, false},
		{"0,0,240,240/240,240/0/gray.jpg", 0, 0, 0, false},
		{"0,0,240,240/240,240/90/default.jpg", 0, 0, 0, false},
		{"0,0,240,240/240,240/!0/default.jpg", 0, 0, 0, false},
		{"120,0,240,240/240,240/0/default.jpg", 0, 0, 0, false}, // off the grid
		{"0,0,720,720/240,240/0/default.jpg", 0, 0, 0, false},   // factor 3
		{"0,0,480,240/240,120/0/default.jpg", 0, 0, 0, false},
	} {
		var parts [4]string
		copy(parts[:], splitPath(c.path))
		r, err := parseRequest(3, parts[0], parts[1], parts[2], parts[3], in.SizeX, in.SizeY, testLimits)
		if err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		z, x, y, ok := tileOf(in, r)
		if ok != c.ok || (ok && (z != c.z || x != c.x || y != c.y)) {
			t.Errorf("%s: tile %d/%d/%d %v, want %d/%d/%d %v", c.path, z, x, y, ok, c.z, c.x, c.y, c.ok)
		}
	}
}

func splitPath(p string) []string {
	var out []string
	start := 0
	for i := range len(p) {
		if p[i] == '/' {
			out = append(out, p[start:i])
			start = i + 1
		}
	}
	return append(out, p[start:])
}
