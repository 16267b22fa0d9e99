package pipeline

// Fuzz targets over the request parameters of the pixel routes: whatever
// a request declares, the pipeline answers an image or a client error
// (never a 5xx, never a panic) and allocates within the output limit.

import (
	"context"
	"errors"
	"math"
	"net/http"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/tileserver/tileserver/tilecache"
	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/limits"
)

// fuzzLimits keeps each fuzzed request small enough that thousands run in
// seconds, and fuzzHeap is the heap growth one request may cause.
const (
	fuzzOutputPixels = 1 << 20
	fuzzHeap         = 256 << 20
)

// fuzzPipeline is a pipeline with a small tile cache under the fuzzing
// limits; the limits are restored when the target ends.
func fuzzPipeline(f *testing.F) *Pipeline {
	limits.Set(limits.Limits{MaxOutputPixels: fuzzOutputPixels, MaxLoop: 100, MaxStyleBands: 8})
	f.Cleanup(func() { limits.Set(limits.Limits{}) })
	tiles, err := tilecache.New(tilecache.Config{Mode: tilecache.ModeMemory, MemoryBytes: 16 << 20})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(tiles.Close)
	return newPipeline(f, tiles)
}

// checkFuzzResult fails on a server error or a panic-turned-error, and on
// a request that grew the heap beyond fuzzHeap.
func checkFuzzResult(t *testing.T, err error, before uint64) {
	t.Helper()
	var te *tilesource.Error
	if err != nil && (!errors.As(err, &te) || te.Status >= 500) {
		t.Fatalf("server error: %v", err)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapAlloc > before+fuzzHeap {
		t.Fatalf("heap grew by %d MB", (ms.HeapAlloc-before)>>20)
	}
}

func heapNow() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func ptrIf(ok bool, v float64) *float64 {
	if !ok {
		return nil
	}
	return &v
}

// FuzzRegion covers the region path: bounds in every unit, output size,
// fill canvases (letterboxing), magnification, resampling and encodings,
// as large_image reads regions and from the pyramid
// (Config.RegionsFromPyramid).
func FuzzRegion(f *testing.F) {
	exact := fuzzPipeline(f)
	pyramid, err := New(Config{Tiles: exact.tiles, RegionsFromPyramid: true})
	if err != nil {
		f.Fatal(err)
	}
	loc := cmuLoc(f)
	f.Add(0.0, 0.0, 2220.0, 2.0, 100000, 100000, uint8(0xff), "red", "", "", "JPEG")
	f.Add(-100.0, -50.0, 0.5, 0.5, 300, 200, uint8(0x3f), "corner:#00f8", "fraction", "2", "PNG")
	f.Add(10.0, 10.0, 1e300, math.Inf(1), 1, 70000, uint8(0xcf), "none", "mm", "0", "WEBP")
	f.Add(0.0, 0.0, 500.0, 500.0, 0, 0, uint8(0x30), "", "mag_pixels", "3", "TIFF")
	// At 10× (5 + 565 mod 40) from mid-pixel of level 3: a box from the
	// pyramid.
	f.Add(565.0, 741.0, 1665.0, 2224.0, 0, 0, uint8(0x1f), "", "", "", "PNG")
	f.Fuzz(func(t *testing.T, left, top, right, bottom float64, width, height int, given uint8,
		fill, units, resample, enc string) {
		var w, h *int
		if given&0x80 != 0 {
			w = &width
		}
		if given&0x40 != 0 {
			h = &height
		}
		mag := 5 + math.Mod(math.Abs(left), 40)
		req := RegionRequest{
			Left: ptrIf(given&1 != 0, left), Top: ptrIf(given&2 != 0, top),
			Right: ptrIf(given&4 != 0, right), Bottom: ptrIf(given&8 != 0, bottom),
			Magnification: ptrIf(given&0x10 != 0 && w == nil, mag), Exact: given&0x20 != 0,
			Width: w, Height: h, Fill: fill, Units: units, Resample: resample,
			Encode: EncodeOptions{Encoding: enc},
		}
		for _, v := range []*float64{req.Left, req.Top, req.Right, req.Bottom} {
			if v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0)) {
				return // refused by the HTTP layer's parameter parsing
			}
		}
		for _, p := range []*Pipeline{exact, pyramid} {
			before := heapNow()
			_, err := p.Region(context.Background(), loc, req)
			checkFuzzResult(t, err, before)
		}
	})
}

// FuzzThumbnailAndAssociated covers thumbnails (letterboxed with fill)
// and the associated images' resize.
func FuzzThumbnailAndAssociated(f *testing.F) {
	p := fuzzPipeline(f)
	loc := cmuLoc(f)
	f.Add("thumbnail", 0, 145247, "", "JPEG")
	f.Add("label", 30000, 0, "#f00", "PNG")
	f.Add("macro", 7, 3, "corner:red", "TIFF")
	f.Add("nothing", -1, 2, "none", "WEBP")
	f.Fuzz(func(t *testing.T, key string, width, height int, fill, enc string) {
		before := heapNow()
		_, err := p.Associated(context.Background(), loc, AssociatedRequest{Key: key, Width: width, Height: height,
			Encode: EncodeOptions{Encoding: enc}})
		checkFuzzResult(t, err, before)
		if width < 2 && width != 0 || height < 2 && height != 0 {
			return // refused by the handler
		}
		_, err = p.Thumbnail(context.Background(), loc, ThumbnailRequest{Width: width, Height: height, Fill: fill,
			Encode: EncodeOptions{Encoding: enc}})
		checkFuzzResult(t, err, before)
	})
}

// FuzzSynthesis covers tiles of levels the file does not store (made from
// finer ones), DeepZoom tiles over them, and their edges.
func FuzzSynthesis(f *testing.F) {
	p := fuzzPipeline(f)
	loc := cmuLoc(f)
	f.Add(0, 0, 0, 0, "", 256, 0)
	f.Add(1, 1, 0, 0, "crop", 512, 3)
	f.Add(2, 9, 7, 1, "#123", 1024, 256)
	f.Add(99, 1<<40, -1, 0, "blue", 1<<30, 1<<40)
	f.Fuzz(func(t *testing.T, z, x, y, frame int, edge string, tileSize, overlap int) {
		before := heapNow()
		_, err := p.Tile(context.Background(), loc, TileRequest{Z: z, X: x, Y: y, Frame: frame, Edge: edge})
		if te := (*tilesource.Error)(nil); errors.As(err, &te) && te.Status == http.StatusNotFound {
			err = nil // the tile routes' status for a missing tile
		}
		checkFuzzResult(t, err, before)
		_, err = p.DZITile(context.Background(), loc, DZIRequest{Level: z, X: x, Y: y, TileSize: tileSize, Overlap: overlap})
		checkFuzzResult(t, err, before)
	})
}

// FuzzQuadInfo covers tile_frames/quad_info's layout loops with a
// multi-frame image's metadata.
func FuzzQuadInfo(f *testing.F) {
	limits.Set(limits.Limits{MaxLoop: 100})
	f.Cleanup(func() { limits.Set(limits.Limits{}) })
	frames := make([]any, 120)
	for i := range frames {
		frames[i] = map[string]any{"Frame": i}
	}
	md := map[string]any{"sizeX": 2220, "sizeY": 2967, "tileWidth": 240, "tileHeight": 240, "frames": frames,
		"IndexRange": map[string]any{"IndexC": 3, "IndexZ": 40}}
	f.Add("0", "1", "1", "", 4.0, 0, 0, 0, 0, 0)
	f.Add("c", "z", "c", "auto", 2.0, 4096, 4, 1<<24, 32, 128)
	f.Add("3", "9223372036854775807", "7", "9223372036854775807", 0.5, 1<<20, 1024, 1, 1<<20, 1<<30)
	f.Fuzz(func(t *testing.T, base, stride, group, groupStride string, factor float64,
		texSize, textures, total, align, frameSize int) {
		req := QuadInfoRequest{FrameBase: base, FrameStride: stride, FrameGroup: group, FrameGroupStride: groupStride,
			FrameGroupFactor: factor, MaxTextureSize: texSize, MaxTextures: textures, MaxTotalTexturePixels: total,
			Alignment: align, MaxFrameSize: frameSize}
		_, err := quadInfo(context.Background(), md, req)
		checkFuzzResult(t, err, heapNow())
	})
}

// fuzzOME is a multi-frame slide for the frame-list routes.
func fuzzOME(f *testing.F) Locator {
	p, err := filepath.Abs(filepath.Join(testdata, "libvips", "multi-channel-z-series.ome.tif"))
	if err != nil {
		f.Fatal(err)
	}
	return Locator{ID: "ome", Path: p, Version: "1"}
}

// FuzzFrames covers tile_frames montages and per-frame pixels.
func FuzzFrames(f *testing.F) {
	p := fuzzPipeline(f)
	loc := fuzzOME(f)
	f.Add(0, 3, 1, 64, 64, "red", 0.0, 0.0)
	f.Add(-1, 1000, 0, 10, 700, "", 5.5, -3.0)
	f.Add(14, 2, 5, 1024, 1024, "corner:#0000", 1e9, 1e9)
	f.Fuzz(func(t *testing.T, first, count, across, width, height int, fill string, left, top float64) {
		list := make([]int, 0, 8)
		for i := range min(max(count, 0), 200) {
			list = append(list, first+i)
		}
		before := heapNow()
		_, err := p.TileFrames(context.Background(), loc, TileFramesRequest{FrameList: list, FramesAcross: across,
			Region: RegionRequest{Width: &width, Height: &height, Fill: fill}})
		checkFuzzResult(t, err, before)
		if math.IsNaN(left) || math.IsNaN(top) || math.IsInf(left, 0) || math.IsInf(top, 0) {
			return
		}
		_, err = p.Pixel(context.Background(), loc, PixelRequest{Left: left, Top: top, FrameList: list})
		checkFuzzResult(t, err, before)
	})
}
