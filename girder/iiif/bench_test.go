package iiif_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/tileserver/tileserver/girder/store"
)

// The benchmark slide: the peers' 30000×30000 slide with 256×256 JPEG
// tiles (../shared/peers/make-slide.sh) when it exists, else the Aperio
// test slide. IIPIMAGE_URL (default http://127.0.0.1:18081) is an
// IIPImage server started by ../shared/peers/iipimage/start.sh over the
// same slide.
var (
	peerSlideDir = envOr("PEER_SLIDE_DIR", "/tmp/peers/data")
	iipURL       = envOr("IIPIMAGE_URL", "http://127.0.0.1:18081")
)

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// benchTiles is the number of distinct full-resolution tiles cycled
// through: all are fetched once before timing, so every timed request is a
// warm cache hit on each server.
const benchTiles = 64

// BenchmarkTileRoutes compares one full-resolution tile through
// large_image's zxy route, the IIIF 3.0 and 2.1 routes (the same cache
// entry through the stored-tile path), an IIIF request off the tile grid
// (the region path, cached under its own key), and IIPImage's IIIF
// endpoint on the same slide when it runs.
func BenchmarkTileRoutes(b *testing.B) {
	slide := filepath.Join(peerSlideDir, "slide.tif")
	name, file := "slide.tif", slide
	tile, z := 256, 7
	if _, err := os.Stat(slide); err != nil {
		name, file, tile, z = "bench.svs", filepath.Join(testdata, "libvips", cmuName), 240, 4
		b.Logf("no %s: benchmarking %s", slide, cmuName)
	}
	e := newEnvWith(b, map[string]string{name: file})
	id := store.ID("item", name)
	cols := 8
	coord := func(i int) (int, int) { i %= benchTiles; return 1 + i%cols, 1 + i/cols }
	routes := []struct {
		name string
		url  func(i int) string
	}{
		{"zxy", func(i int) string {
			x, y := coord(i)
			return fmt.Sprintf("%s/api/v1/item/%s/tiles/zxy/%d/%d/%d", e.url, id, z, x, y)
		}},
		{"iiif3", func(i int) string {
			x, y := coord(i)
			return fmt.Sprintf("%s/iiif/3/%s/%d,%d,%d,%d/%d,%d/0/default.jpg", e.url, id, x*tile, y*tile, tile, tile, tile, tile)
		}},
		{"iiif2", func(i int) string {
			x, y := coord(i)
			return fmt.Sprintf("%s/iiif/2/%s/%d,%d,%d,%d/%d,/0/default.jpg", e.url, id, x*tile, y*tile, tile, tile, tile)
		}},
		{"iiif3-offgrid", func(i int) string {
			x, y := coord(i)
			return fmt.Sprintf("%s/iiif/3/%s/%d,%d,%d,%d/%d,%d/0/default.jpg", e.url, id, x*tile+tile/2, y*tile+tile/2, tile, tile, tile, tile)
		}},
	}
	if name == "slide.tif" {
		routes = append(routes, struct {
			name string
			url  func(i int) string
		}{"iipimage-iiif", func(i int) string {
			x, y := coord(i)
			return fmt.Sprintf("%s/fcgi-bin/iipsrv.fcgi?IIIF=slide.tif/%d,%d,%d,%d/%d,/0/default.jpg", iipURL, x*tile, y*tile, tile, tile, tile)
		}})
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	get := func(b *testing.B, u string) {
		r, err := client.Get(u)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, r.Body)
		r.Body.Close()
		if err != nil || r.StatusCode != http.StatusOK || n == 0 {
			b.Fatalf("GET %s: %d (%d bytes, %v)", u, r.StatusCode, n, err)
		}
	}
	for _, rt := range routes {
		b.Run(rt.name, func(b *testing.B) {
			if rt.name == "iipimage-iiif" {
				if r, err := client.Get(rt.url(0)); err != nil || r.StatusCode != http.StatusOK {
					b.Skipf("no IIPImage at %s (../shared/peers/iipimage/start.sh)", iipURL)
				} else {
					r.Body.Close()
				}
			}
			for i := range benchTiles {
				get(b, rt.url(i))
			}
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				get(b, rt.url(i))
			}
		})
	}
}
