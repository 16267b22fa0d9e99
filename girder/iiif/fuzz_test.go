package iiif

import (
	"strings"
	"testing"
)

// FuzzParseRequest feeds arbitrary image request paths to the parser: it
// never panics, and whatever it accepts is a region inside the image and
// an output size within the limits, whose canonical form parses to the
// same request.
func FuzzParseRequest(f *testing.F) {
	// The seed corpus is in testdata/fuzz/FuzzParseRequest.
	f.Fuzz(func(t *testing.T, path string, version, width, height uint16) {
		v := 2 + int(version%2)
		w, h := 1+int(width%5000), 1+int(height%5000)
		parts := strings.SplitN(path, "/", 4)
		if len(parts) != 4 {
			return
		}
		r, err := parseRequest(v, parts[0], parts[1], parts[2], parts[3], w, h, testLimits)
		if err != nil {
			if statusOf(err) != 400 && statusOf(err) != 501 {
				t.Fatalf("%q: error without a 400/501 status: %v", path, err)
			}
			return
		}
		if r.x < 0 || r.y < 0 || r.w <= 0 || r.h <= 0 || r.x+r.w > w || r.y+r.h > h {
			t.Fatalf("%q on %d×%d: region %d,%d,%d,%d", path, w, h, r.x, r.y, r.w, r.h)
		}
		if r.width <= 0 || r.height <= 0 || r.width > testLimits.maxWidth || r.height > testLimits.maxHeight ||
			int64(r.width)*int64(r.height) > testLimits.maxArea {
			t.Fatalf("%q on %d×%d: size %d×%d", path, w, h, r.width, r.height)
		}
		cn := strings.SplitN(r.canonical(v, w, h, testLimits), "/", 4)
		again, err := parseRequest(v, cn[0], cn[1], cn[2], cn[3], w, h, testLimits)
		if err != nil || again != r {
			t.Fatalf("%q on %d×%d: canonical %v gives %+v (%v), want %+v", path, w, h, cn, again, err, r)
		}
	})
}
