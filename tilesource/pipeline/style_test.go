package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilecache"
	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/internal/leavetest"
	"github.com/tileserver/tileserver/tilesource/tiff"
	"github.com/tileserver/tileserver/tilesource/work"
)

func fileLoc(t testing.TB, rel string) Locator {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(testdata, rel))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Skip("test data missing:", err)
	}
	return Locator{ID: rel, Path: p, Version: "1"}
}

// rawTile returns the unstyled full-size pixels of a tile, as the pipeline
// reads them, as float samples.
func rawTile(t testing.TB, p *Pipeline, loc Locator, frame, z, x, y int) (*encode.Image, []float64) {
	t.Helper()
	ctx := context.Background()
	src, release, err := p.acquire(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	img, err := p.readRaw(ctx, loc, src, frame, z, x, y)
	if err != nil {
		t.Fatal(err)
	}
	return img, toRaster(img, 0, img.Height).Pix
}

// frameMinMax returns per-band min and max over the whole full-resolution
// frame (only pixels inside the image).
func frameMinMax(t testing.TB, p *Pipeline, loc Locator, frame int) ([]float64, []float64) {
	t.Helper()
	src, release, err := p.acquire(context.Background(), loc)
	if err != nil {
		t.Fatal(err)
	}
	info := src.Info()
	release()
	z := info.Levels - 1
	cols, rows := info.TileCount(z)
	mn, mx := make([]float64, info.Bands), make([]float64, info.Bands)
	for b := range mn {
		mn[b], mx[b] = math.Inf(1), math.Inf(-1)
	}
	for ty := range rows {
		for tx := range cols {
			img, pix := rawTile(t, p, loc, frame, z, tx, ty)
			for y := range img.Height {
				for x := range img.Width {
					if tx*info.TileWidth+x >= info.SizeX || ty*info.TileHeight+y >= info.SizeY {
						continue
					}
					for b := range info.Bands {
						v := pix[(y*img.Width+x)*img.Bands+b]
						mn[b], mx[b] = math.Min(mn[b], v), math.Max(mx[b], v)
					}
				}
			}
		}
	}
	return mn, mx
}

// to8 is large_image's conversion of a float32 style result to a byte.
func to8(v float64) float64 {
	v = float64(float32(v))
	return math.Trunc(math.Min(math.Max(v, 0), 255))
}

// checkStyled requests a styled PNG tile and compares every pixel with
// want(pixel's raw samples), allowing 1 for float rounding.
func checkStyled(t *testing.T, p *Pipeline, loc Locator, req TileRequest, rawFrame int,
	bands int, want func(raw []float64, x, y int) []float64) {
	t.Helper()
	req.Encode = EncodeOptions{Encoding: "PNG"}
	res, err := p.Tile(context.Background(), loc, req)
	if err != nil {
		t.Fatalf("style %s: %v", req.Style, err)
	}
	got := decode(t, res.Data)
	raw, pix := rawTile(t, p, loc, rawFrame, req.Z, req.X, req.Y)
	if got.Width != raw.Width || got.Height != raw.Height || got.Bands != bands {
		t.Fatalf("style %s: got %dx%dx%d, want %dx%dx%d", req.Style, got.Width, got.Height, got.Bands,
			raw.Width, raw.Height, bands)
	}
	bad := 0
	for y := range got.Height {
		for x := range got.Width {
			i := y*got.Width + x
			w := want(pix[i*raw.Bands:(i+1)*raw.Bands], x, y)
			for b := range bands {
				if g := float64(got.Pix[i*bands+b]); math.Abs(g-w[b]) > 1 {
					if bad == 0 {
						t.Errorf("style %s: pixel (%d,%d) band %d = %v, want %v (raw %v)", req.Style, x, y, b, g, w[b],
							pix[i*raw.Bands:(i+1)*raw.Bands])
					}
					bad++
				}
			}
		}
	}
	if bad > 0 {
		t.Errorf("style %s: %d samples differ", req.Style, bad)
	}
}

func TestStyleKeysOnTestSource(t *testing.T) {
	p := newPipeline(t, nil)
	loc := testLoc(nil)
	tile := TileRequest{Z: 2, X: 1, Y: 1}
	_, pix := rawTile(t, p, loc, 0, 2, 1, 1)
	nodata := pix[0] // red of pixel (0, 0)
	for _, c := range []struct {
		style string
		bands int
		want  func(r []float64) []float64
	}{
		{`{"band":1,"min":0,"max":255,"palette":["#000","#f00"]}`, 4,
			func(r []float64) []float64 { return []float64{r[0], 0, 0, 255} }},
		{`{"band":2,"min":50,"max":150}`, 4, func(r []float64) []float64 {
			v := to8((r[1] - 50) / 100 * 255)
			return []float64{v, v, v, 255}
		}},
		{`{"band":3,"min":0,"max":255,"scheme":"discrete","palette":["#000","#fff"]}`, 4, func(r []float64) []float64 {
			v := 0.0
			if math.Floor(r[2]/255*2) >= 1 {
				v = 255
			}
			return []float64{v, v, v, 255}
		}},
		{fmt.Sprintf(`{"band":1,"min":0,"max":255,"nodata":%v}`, nodata), 4, func(r []float64) []float64 {
			if r[0] == nodata {
				return []float64{0, 0, 0, 0}
			}
			return []float64{r[0], r[0], r[0], 255}
		}},
		{`{"band":1,"min":100,"max":200,"clamp":false}`, 4, func(r []float64) []float64 {
			if r[0] < 100 || r[0] > 200 {
				return []float64{0, 0, 0, 0}
			}
			v := to8((r[0] - 100) / 100 * 255)
			return []float64{v, v, v, 255}
		}},
		{`{"bands":[{"band":1,"min":0,"max":255},{"band":2,"min":0,"max":255,"composite":"multiply"}]}`, 4,
			func(r []float64) []float64 {
				v := to8(r[0] * (r[1] / 255))
				return []float64{v, v, v, 255}
			}},
		{`{"band":1,"min":0,"max":255,"palette":["#000","#0f0"],"axis":1,"dtype":"uint8"}`, 1,
			func(r []float64) []float64 { return []float64{r[0]} }},
		{`{"band":"blue","min":0,"max":255,"palette":["#ff0000","#0000ff"]}`, 4, func(r []float64) []float64 {
			// Piecewise-linear from red to blue.
			f := r[2] / 255
			return []float64{to8(255 * (1 - f)), 0, to8(255 * f), 255}
		}},
		// 8-bit data whose statistics lie in the byte range: auto is 0–255.
		{`{"band":1}`, 4, func(r []float64) []float64 { return []float64{r[0], r[0], r[0], 255} }},
		// An icc-only style renders as no style on a source without a
		// profile.
		{`{"icc": true}`, 3, func(r []float64) []float64 { return r }},
	} {
		req := tile
		req.Style = c.style
		checkStyled(t, p, loc, req, 0, c.bands, func(r []float64, _, _ int) []float64 { return c.want(r) })
	}

	// framedelta reads the same tile of the next frame.
	frames := testLoc(map[string]string{"frames": "3"})
	_, next := rawTile(t, p, frames, 2, 2, 1, 1)
	req := tile
	req.Frame = 1
	req.Style = `{"bands":[{"framedelta":0,"min":0,"max":255,"palette":"#f00"},{"framedelta":1,"min":0,"max":255,"palette":"#0f0"}]}`
	checkStyled(t, p, frames, req, 1, 4, func(r []float64, x, y int) []float64 {
		return []float64{r[1], next[(y*256+x)*3+1], 0, 255}
	})
	// A band frame outside the image is the tile route's 404.
	req.Frame = 2
	_, err := p.Tile(context.Background(), frames, req)
	wantError(t, err, 404, "Frame does not exist")
}

func TestStyle16Bit(t *testing.T) {
	p := newPipeline(t, nil)
	grey := fileLoc(t, "pathml/smalltif.tif")
	mn, mx := frameMinMax(t, p, grey, 0)
	t.Logf("smalltif min %v max %v", mn, mx)
	tile := TileRequest{Z: 2, X: 1, Y: 0}
	for _, c := range []struct {
		style string
		bands int
		want  func(r []float64) []float64
	}{
		{``, 1, func(r []float64) []float64 { return []float64{math.Floor(r[0] / 256)} }},
		{`{"min":"min","max":"max"}`, 1, func(r []float64) []float64 {
			return []float64{to8((r[0] - mn[0]) / (mx[0] - mn[0]) * 255)}
		}},
		// 16-bit statistics are outside the byte range: auto is min/max.
		{`{"min":"auto","max":"auto"}`, 1, func(r []float64) []float64 {
			return []float64{to8((r[0] - mn[0]) / (mx[0] - mn[0]) * 255)}
		}},
		{`{"min":"full","max":"full"}`, 1, func(r []float64) []float64 { return []float64{to8(r[0] / 65535 * 255)} }},
		{`{"min":0,"max":65535,"palette":"#0f0"}`, 4, func(r []float64) []float64 {
			return []float64{0, to8(r[0] / 65535 * 255), 0, 255}
		}},
		{`{"min":0,"max":65535,"dtype":"uint16"}`, 1, func(r []float64) []float64 {
			// uint16 output (v·65535/255 of the 0–255 result, i.e. v
			// again), then 8 bits by v >> 8 for PNG.
			v := math.Trunc(float64(float32(r[0]/65535*255)) * 65535 / 255)
			return []float64{math.Floor(v / 256)}
		}},
	} {
		req := tile
		req.Style = c.style
		checkStyled(t, p, grey, req, 0, c.bands, func(r []float64, _, _ int) []float64 { return c.want(r) })
	}

	rgb := fileLoc(t, "libvips/sample.tif")
	req := TileRequest{Z: 1, X: 0, Y: 1, Style: `{"band":3,"min":0,"max":65535,"palette":["#000","#00f"]}`}
	checkStyled(t, p, rgb, req, 0, 4, func(r []float64, _, _ int) []float64 {
		return []float64{0, 0, to8(r[2] / 65535 * 255), 255}
	})
}

func TestStyleMultiFrame(t *testing.T) {
	p := newPipeline(t, nil)
	loc := fileLoc(t, "libvips/multi-channel-z-series.ome.tif")
	_, f5 := rawTile(t, p, loc, 5, 1, 0, 0)
	// Every band names its frame: the first band's frame is the main one,
	// whatever frame was asked for.
	req := TileRequest{Z: 1, Frame: 3,
		Style: `{"bands":[{"frame":0,"min":-128,"max":127,"palette":"#f00"},{"frame":5,"min":-128,"max":127,"palette":"#0f0"}]}`}
	checkStyled(t, p, loc, req, 0, 4, func(r []float64, x, y int) []float64 {
		// Outside the 439×167 image the tile is zero padding, i.e. 0+128.
		return []float64{to8(r[0] + 128), to8(f5[y*256+x] + 128), 0, 255}
	})
	mn, mx := frameMinMax(t, p, loc, 2)
	lo, hi := mn[0], mx[0]
	if lo >= 0 && lo <= 254 && hi >= 2 && hi <= 255 {
		lo, hi = 0, 255
	}
	t.Logf("frame 2 range %v..%v", mn[0], mx[0])
	req = TileRequest{Z: 1, Frame: 2, Style: `{"min":"auto","max":"auto"}`}
	checkStyled(t, p, loc, req, 2, 1, func(r []float64, _, _ int) []float64 {
		return []float64{to8((r[0] - lo) / (hi - lo) * 255)}
	})
}

func TestStyleErrors(t *testing.T) {
	p := newPipeline(t, nil)
	ctx := context.Background()
	loc := testLoc(nil)
	for _, c := range []struct{ style, msg string }{
		{`[1]`, "Style is not a valid json object."},
		{`{"min":`, "Style is not a valid json object."},
		{`{"bands": 3}`, `Style "bands" must be a list of band objects.`},
		{`{"frame": "x"}`, `Style band 0: "frame" must be an integer.`},
	} {
		_, err := p.Tile(ctx, loc, TileRequest{Z: 1, Style: c.style})
		wantError(t, err, 404, c.msg)
		_, err = p.Thumbnail(ctx, loc, ThumbnailRequest{Style: c.style})
		wantError(t, err, 400, c.msg)
		_, err = p.Region(ctx, loc, RegionRequest{Style: c.style, Width: ptr(100)})
		wantError(t, err, 400, c.msg)
		_, err = p.DZITile(ctx, loc, DZIRequest{Level: 8, Style: c.style})
		wantError(t, err, 400, c.msg)
		_, err = p.Histogram(ctx, loc, HistogramRequest{Region: RegionRequest{Style: c.style, Width: ptr(100)}})
		wantError(t, err, 400, c.msg)
	}
	_, err := p.Tile(ctx, loc, TileRequest{Z: 1, Style: `{"palette":"nosuchpalette"}`})
	var te *tilesource.Error
	if err == nil || !errorsAs(err, &te) || te.Status != 404 {
		t.Errorf("unknown palette: %v", err)
	}
}

func errorsAs(err error, te **tilesource.Error) bool {
	e, ok := publicError(err).(*tilesource.Error)
	*te = e
	return ok
}

func TestStyledAndUnstyledTilesDoNotCollide(t *testing.T) {
	tiles, err := tilecache.New(tilecache.Config{Mode: tilecache.ModeMemory, MemoryBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer tiles.Close()
	p := newPipeline(t, tiles)
	ctx := context.Background()
	loc := cmuLoc(t)
	styled := TileRequest{Z: 4, X: 2, Y: 3, Style: `{"band":1,"min":0,"max":255,"palette":"#f00"}`}
	plain := TileRequest{Z: 4, X: 2, Y: 3}
	a, err := p.Tile(ctx, loc, plain)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Tile(ctx, loc, styled)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Data, b.Data) {
		t.Fatal("styled and unstyled tiles are the same bytes")
	}
	if a.CacheStatus != tilecache.StatusMiss || b.CacheStatus != tilecache.StatusMiss {
		t.Errorf("first requests: %s, %s", a.CacheStatus, b.CacheStatus)
	}
	// An equivalent spelling of the style shares the entry.
	equiv := styled
	equiv.Style = `{"palette": "#FF0000", "max": 255, "min": 0.0, "band": 1}`
	for _, c := range []struct {
		req  TileRequest
		want []byte
	}{{plain, a.Data}, {styled, b.Data}, {equiv, b.Data}} {
		r, err := p.Tile(ctx, loc, c.req)
		if err != nil {
			t.Fatal(err)
		}
		if r.CacheStatus != tilecache.StatusHitMemory || !bytes.Equal(r.Data, c.want) {
			t.Errorf("style %q: status %s, same bytes %v", c.req.Style, r.CacheStatus, bytes.Equal(r.Data, c.want))
		}
	}
	// The styled JPEG's red channel follows the raw green band.
	img := decode(t, b.Data)
	_, raw := rawTile(t, p, loc, 0, 4, 2, 3)
	sum := 0.0
	for i := 0; i < 240*240; i++ {
		sum += math.Abs(float64(img.Pix[i*3]) - raw[i*3+1])
	}
	if d := sum / (240 * 240); d > 3 {
		t.Errorf("styled red differs from raw green by %.2f on average", d)
	}
}

func TestStyledRegionAndThumbnail(t *testing.T) {
	p := newPipeline(t, nil)
	ctx := context.Background()
	loc := fileLoc(t, "pathml/smalltif.tif")
	mn, mx := frameMinMax(t, p, loc, 0)
	// An unscaled region is styled at full resolution.
	res, err := p.Region(ctx, loc, RegionRequest{Left: ptr(100.0), Top: ptr(50.0), Right: ptr(300.0),
		Bottom: ptr(150.0), Style: `{"min":"min","max":"max"}`, Encode: EncodeOptions{Encoding: "PNG"}})
	if err != nil {
		t.Fatal(err)
	}
	got := decode(t, res.Data)
	if got.Width != 200 || got.Height != 100 || got.Bands != 1 {
		t.Fatalf("region %dx%dx%d", got.Width, got.Height, got.Bands)
	}
	_, raw := rawTile(t, p, loc, 0, 2, 0, 0)
	for _, pt := range [][2]int{{0, 0}, {55, 20}, {155, 99}} {
		v := raw[(50+pt[1])*256+100+pt[0]]
		want := to8((v - mn[0]) / (mx[0] - mn[0]) * 255)
		if g := float64(got.Pix[pt[1]*200+pt[0]]); math.Abs(g-want) > 1 {
			t.Errorf("region pixel %v = %v, want %v", pt, g, want)
		}
	}
	// Thumbnails of different styles differ and both are cached apart.
	a, err := p.Thumbnail(ctx, loc, ThumbnailRequest{Width: 64, Encode: EncodeOptions{Encoding: "PNG"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Thumbnail(ctx, loc, ThumbnailRequest{Width: 64, Style: `{"min":"min","max":"max","palette":"#f00"}`,
		Encode: EncodeOptions{Encoding: "PNG"}})
	if err != nil {
		t.Fatal(err)
	}
	ai, bi := decode(t, a.Data), decode(t, b.Data)
	if bi.Width != 64 || ai.Width != 64 || bytes.Equal(a.Data, b.Data) {
		t.Errorf("thumbnails %dx%d and %dx%d", ai.Width, ai.Height, bi.Width, bi.Height)
	}
	// Red-only output: green and blue are zero.
	for i := 0; i < bi.Width*bi.Height; i++ {
		if bi.Pix[i*bi.Bands+1] != 0 || bi.Pix[i*bi.Bands+2] != 0 {
			t.Fatalf("styled thumbnail pixel %d is %v", i, bi.Pix[i*bi.Bands:(i+1)*bi.Bands])
		}
	}
}

// vipsICC runs libvips' command-line icc_transform on an 8-bit PNG.
func vipsICC(t *testing.T, img *encode.Image, profile []byte) *encode.Image {
	t.Helper()
	if _, err := exec.LookPath("vips"); err != nil {
		t.Skip("vips command missing")
	}
	dir := t.TempDir()
	png, err := encode.Encode(img, encode.Options{Encoding: "PNG"})
	if err != nil {
		t.Fatal(err)
	}
	in, icc, out := filepath.Join(dir, "in.png"), filepath.Join(dir, "in.icc"), filepath.Join(dir, "out.png")
	if err := os.WriteFile(in, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(icc, profile, 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("vips", "icc_transform", in, out, "srgb", "--input-profile", icc,
		"--intent", "perceptual").CombinedOutput(); err != nil {
		t.Fatalf("vips icc_transform: %v %s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, b)
}

func TestICCBoxes(t *testing.T) {
	p := newPipeline(t, nil)
	ctx := context.Background()
	loc := fileLoc(t, "openslide-python/boxes.tiff")
	src, release, err := p.acquire(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	profile := src.Info().ICCProfile
	release()
	if len(profile) != 588 {
		t.Fatalf("profile of %d bytes", len(profile))
	}
	raw, _ := rawTile(t, p, loc, 0, 3, 1, 1)
	want := vipsICC(t, raw, profile)
	png := EncodeOptions{Encoding: "PNG"}
	res, err := p.Tile(ctx, loc, TileRequest{Z: 3, X: 1, Y: 1, Encode: png})
	if err != nil {
		t.Fatal(err)
	}
	if d := meanAbsDiff(t, decode(t, res.Data), want); d > 0.01 {
		t.Errorf("corrected tile differs from vips icc_transform by %.3f", d)
	}
	off, err := p.Tile(ctx, loc, TileRequest{Z: 3, X: 1, Y: 1, Encode: png, Style: `{"icc": false}`})
	if err != nil {
		t.Fatal(err)
	}
	if d := meanAbsDiff(t, decode(t, off.Data), raw); d != 0 {
		t.Errorf(`{"icc": false} differs from the raw pixels by %.3f`, d)
	}
	// The embedded profile is sRGB, so the transform is (nearly) the
	// identity, as libvips predicts.
	t.Logf("boxes: corrected vs raw %.3f", meanAbsDiff(t, decode(t, res.Data), raw))
}

// jpegTIFFWithProfile writes a JPEG-tiled TIFF carrying a non-sRGB profile.
func jpegTIFFWithProfile(t *testing.T) (Locator, []byte) {
	t.Helper()
	const a98 = "/usr/share/color/icc/ghostscript/a98.icc"
	profile, err := os.ReadFile(a98)
	if err != nil {
		t.Skip("Adobe RGB profile missing:", err)
	}
	if _, err := exec.LookPath("vips"); err != nil {
		t.Skip("vips command missing")
	}
	out := filepath.Join(t.TempDir(), "a98.tif")
	in := filepath.Join(testdata, "libvips", "sample.jpg")
	if b, err := exec.Command("vips", "tiffsave", in, out, "--tile", "--tile-width", "128", "--tile-height", "128",
		"--compression", "jpeg", "--Q", "90", "--profile", a98).CombinedOutput(); err != nil {
		t.Fatalf("vips tiffsave: %v %s", err, b)
	}
	return Locator{ID: "a98", Path: out, Version: "1"}, profile
}

func TestICCJPEGPassthroughAndDecoded(t *testing.T) {
	p := newPipeline(t, nil)
	ctx := context.Background()
	loc, profile := jpegTIFFWithProfile(t)
	src, err := tiff.Open(loc.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if !bytes.Equal(src.Info().ICCProfile, profile) {
		t.Fatalf("reader profile %d bytes, want %d", len(src.Info().ICCProfile), len(profile))
	}
	info := src.Info()
	z := info.Levels - 1
	stored, err := src.ReadTile(ctx, 0, z, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Encoding != "JPEG" {
		t.Fatalf("stored encoding %q", stored.Encoding)
	}
	// Default: the stored JPEG with the profile embedded, not re-encoded.
	res, err := p.Tile(ctx, loc, TileRequest{Z: z, X: 1, Y: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := encode.ExtractICC(res.Data); !bytes.Equal(got, profile) {
		t.Errorf("passthrough tile carries a %d-byte profile, want the source's %d bytes", len(got), len(profile))
	}
	if bytes.Contains(res.Data[:20], []byte("JFIF")) && !bytes.Contains(stored.Encoded[:20], []byte("JFIF")) {
		t.Error("passthrough tile was re-encoded")
	}
	if len(res.Data) != len(stored.Encoded)+len(encode.ICCSegments(profile)) {
		t.Errorf("passthrough tile is %d bytes, want stored %d + APP2", len(res.Data), len(stored.Encoded))
	}
	// Decoding the passthrough tile gives the stored pixels.
	storedPix, err := stored.Image()
	if err != nil {
		t.Fatal(err)
	}
	if d := meanAbsDiff(t, decode(t, res.Data), storedPix); d != 0 {
		t.Errorf("APP2 changed the pixels by %.3f", d)
	}
	// {"icc": false}: the plain stored bytes.
	off, err := p.Tile(ctx, loc, TileRequest{Z: z, X: 1, Y: 1, Style: `{"icc": false}`})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(off.Data, stored.Encoded) {
		t.Error(`{"icc": false} did not serve the stored bytes`)
	}
	// Decoded output is transformed like libvips' icc_transform.
	png, err := p.Tile(ctx, loc, TileRequest{Z: z, X: 1, Y: 1, Encode: EncodeOptions{Encoding: "PNG"}})
	if err != nil {
		t.Fatal(err)
	}
	got := decode(t, png.Data)
	want := vipsICC(t, storedPix, profile)
	if d := meanAbsDiff(t, got, want); d > 0.01 {
		t.Errorf("decoded tile differs from vips icc_transform by %.3f", d)
	}
	if d := meanAbsDiff(t, got, storedPix); d < 1 {
		t.Errorf("Adobe RGB to sRGB changed the pixels by only %.3f", d)
	}
	plain, err := p.Tile(ctx, loc, TileRequest{Z: z, X: 1, Y: 1, Encode: EncodeOptions{Encoding: "PNG"},
		Style: `{"icc": false}`})
	if err != nil {
		t.Fatal(err)
	}
	if d := meanAbsDiff(t, decode(t, plain.Data), storedPix); d != 0 {
		t.Errorf(`{"icc": false} PNG differs from the stored pixels by %.3f`, d)
	}
}

// TestFrameStatsOutliveTheirFirstCaller: frame statistics (for a style's
// automatic range) shared by two requests do not fail the second when the
// first goes away while they wait for the work budget.
func TestFrameStatsOutliveTheirFirstCaller(t *testing.T) {
	budget := work.New(1<<20, 100)
	p, err := New(Config{Work: budget})
	if err != nil {
		t.Fatal(err)
	}
	loc := cmuLoc(t)
	src, release, err := p.acquire(t.Context(), loc)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	hold, err := budget.Acquire(t.Context(), 1<<20) // all of it
	if err != nil {
		t.Fatal(err)
	}
	stats := func(check bool) func(context.Context) error {
		return func(ctx context.Context) error {
			st, err := p.frameStats(ctx, loc, src, 0)
			if check && err == nil && (st == nil || len(st.Bands) != 3) {
				err = fmt.Errorf("statistics %+v", st)
			}
			return err
		}
	}
	if _, err := leavetest.FirstCallerLeaves(hold, stats(false), stats(true)); err != nil {
		t.Fatalf("second caller, first one cancelled: %v", err)
	}
}
