package main

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
)

// cmu is a single-level 20× SVS (2220×2967, 240² JPEG tiles): z 4 is
// stored, z 3 and below are not.
var cmu = filepath.Join("..", "..", "..", "shared", "testdata", "libvips", "CMU-1-Small-Region.svs")

func get(t *testing.T, h http.Handler, path string) (*http.Response, []byte) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	res := w.Result()
	body, _ := io.ReadAll(res.Body)
	return res, body
}

func decode(t *testing.T, b []byte) image.Image {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestStoredTileAndHeaders(t *testing.T) {
	s, err := open(cmu)
	if err != nil {
		t.Fatal(err)
	}
	s.cache = true
	for i, wantCache := range []string{"miss", "hit-memory"} {
		res, body := get(t, http.HandlerFunc(s.serve), "/api/v1/item/limit/tiles/zxy/4/2/3")
		if res.StatusCode != http.StatusOK {
			t.Fatalf("request %d: status %d %s", i, res.StatusCode, body)
		}
		h := res.Header
		if h.Get("X-Tile-Cache") != wantCache || h.Get("Content-Type") != "image/jpeg" ||
			h.Get("Cache-Control") != "public, max-age=3600" || h.Get("X-Content-Type-Options") != "nosniff" ||
			h.Get("Content-Length") != strconv.Itoa(len(body)) || len(h.Get("Etag")) != 18 {
			t.Fatalf("request %d: headers %v", i, h)
		}
		if b := decode(t, body).Bounds(); b.Dx() != 240 || b.Dy() != 240 {
			t.Fatalf("tile %v, want 240×240", b)
		}
	}
	if res, _ := get(t, http.HandlerFunc(s.serve), "/api/v1/item/limit/tiles/zxy/4/99/0"); res.StatusCode != http.StatusNotFound {
		t.Fatalf("tile outside the level: status %d", res.StatusCode)
	}
	if res, _ := get(t, http.HandlerFunc(s.serve), "/api/v1/item/limit/tiles/zxy/2/0/0"); res.StatusCode != http.StatusNotFound {
		t.Fatalf("two levels below the stored one: status %d", res.StatusCode)
	}
}

// TestMissingLevel checks a tile of a level the file lacks against the
// 2×2 box average of its four stored children: DCT-scaled decoding at
// half size is a low-pass of the same pixels, so the two agree closely.
func TestMissingLevel(t *testing.T) {
	s, err := open(cmu)
	if err != nil {
		t.Fatal(err)
	}
	res, body := get(t, http.HandlerFunc(s.serve), "/api/v1/item/limit/tiles/zxy/3/1/2")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d %s", res.StatusCode, body)
	}
	got := decode(t, body)
	if b := got.Bounds(); b.Dx() != 240 || b.Dy() != 240 {
		t.Fatalf("tile %v, want 240×240", b)
	}
	// Expected: each child decoded in full, averaged 2×2 into its quarter.
	var want [240][240][3]float64
	for j := range 2 {
		for i := range 2 {
			_, cb := get(t, http.HandlerFunc(s.serve), fmt.Sprintf("/api/v1/item/limit/tiles/zxy/4/%d/%d", 2+i, 4+j))
			child := decode(t, cb)
			for y := range 120 {
				for x := range 120 {
					var sum [3]float64
					for _, d := range [][2]int{{0, 0}, {1, 0}, {0, 1}, {1, 1}} {
						r, g, b, _ := child.At(2*x+d[0], 2*y+d[1]).RGBA()
						sum[0] += float64(r >> 8)
						sum[1] += float64(g >> 8)
						sum[2] += float64(b >> 8)
					}
					for c := range 3 {
						want[j*120+y][i*120+x][c] = sum[c] / 4
					}
				}
			}
		}
	}
	var se float64
	for y := range 240 {
		for x := range 240 {
			r, g, b, _ := got.At(x, y).RGBA()
			for c, v := range []uint32{r >> 8, g >> 8, b >> 8} {
				d := float64(v) - want[y][x][c]
				se += d * d
			}
		}
	}
	psnr := 10 * math.Log10(255*255/(se/(240*240*3)))
	if psnr < 32 {
		t.Fatalf("PSNR %.1f dB against the box-averaged children, want ≥ 32", psnr)
	}
	t.Logf("PSNR %.1f dB against the box-averaged children", psnr)
}
