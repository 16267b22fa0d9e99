package girder

import (
	"bytes"
	"image"
	"image/color"
	"math"
	"net/http"
	"net/url"
	"testing"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/tiff"
)

// The HTTP details below were checked against large_image 1.35.2 behind
// Girder: the expected statuses, messages and values are the ones it gives
// for the same files.

func TestRepeatedParameterRefused(t *testing.T) {
	e := newEnv(t)
	// Girder's endpoint decorator refuses a repeated parameter before
	// anything else, on every route (girder/api/rest.py).
	for _, c := range []struct{ path, name string }{
		{itemPath("boxes.tiff", "/thumbnail?width=10&width=20"), "width"},
		{itemPath("boxes.tiff", "/zxy/0/0/0?encoding=PNG&edge=crop&edge=red"), "edge"},
		{"/api/v1/item/nosuch/tiles?style=%7B%7D&style=%7B%7D", "style"},
		{"/api/v1/item?text=a&text=b", "text"},
	} {
		wantError(t, e.get(c.path), http.StatusBadRequest, "rest",
			`Parameter "`+c.name+`" must not be specified multiple times.`)
	}
	// The first repeated name in query order is the one reported.
	r := e.get(itemPath("boxes.tiff", "/region?left=1&width=5&left=2&width=6"))
	wantError(t, r, http.StatusBadRequest, "rest", `Parameter "left" must not be specified multiple times.`)
	// Distinct parameters are fine.
	if r := e.get(itemPath("boxes.tiff", "/thumbnail?width=10&height=20")); r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
}

func TestStyleCheckedWhereTheSourceIsOpened(t *testing.T) {
	e := newEnv(t)
	// large_image opens the source with the style on the metadata routes
	// too, and refuses one that is not a JSON object with a 400.
	for _, route := range []string{"", "/internal_metadata", "/dzi.dzi"} {
		for _, style := range []string{"{bad", "5", "[1]"} {
			r := e.get(itemPath("boxes.tiff", route+"?style="+url.QueryEscape(style)))
			wantError(t, r, http.StatusBadRequest, "rest", "Style is not a valid json object.")
		}
		// A JSON object is only opened, not applied, there.
		if r := e.get(itemPath("boxes.tiff", route+"?style="+url.QueryEscape(`{"band":1}`))); r.status != http.StatusOK {
			t.Fatalf("%s with a valid style: status %d: %s", route, r.status, r.body)
		}
	}
}

func TestInternalMetadataICCProfiles(t *testing.T) {
	e := newEnv(t)
	// large_image's ImageItem.getInternalMetadata adds the profile
	// information Pillow reports (description, then copyright).
	var md map[string]any
	r := e.get(itemPath("boxes.tiff", "/internal_metadata"))
	r.json(t, &md)
	got, _ := md["iccprofiles"].([]any)
	if len(got) != 1 || got[0] != "sRGB built-in\r\n\r\nNo copyright, use freely" {
		t.Fatalf("iccprofiles %q", md["iccprofiles"])
	}
	// A file without a profile has no such key.
	md = nil
	e.get(itemPath("CMU-1-Small-Region.svs", "/internal_metadata")).json(t, &md)
	if _, ok := md["iccprofiles"]; ok || md["tilesource"] != "tiff" {
		t.Fatalf("CMU internal metadata %v", md)
	}
}

// TestRegionModesAsLargeImage checks the mode large_image's getRegion
// gives a scaled or letterboxed image: converted to RGB (JPEG) or RGBA
// (PNG, TIFF) before the scaling, so for JPEG an alpha band is dropped
// first and weighs nothing; a single-band 16-bit image scaled by nearest
// neighbour and never converted; tile_frames' frames in their own bands.
// The pixel values are the real large_image's for the same requests.
func TestRegionModesAsLargeImage(t *testing.T) {
	e := newEnvWith(t, map[string]string{
		"rgba.tiff": "large_image/rgba_geotiff.tiff",
		"la.tiff":   "large_image/small_la.tiff",
		"u16.tif":   "pathml/smalltif.tif",
		"ome.tif":   "libvips/multi-channel-z-series.ome.tif",
	}, nil)
	type px struct {
		x, y    int
		r, g, b int
	}
	for _, c := range []struct {
		path string
		w, h int
		px   []px
	}{
		// Edge pixels of the RGBA image: nearly transparent white (alpha
		// 1 in the PNG thumbnail) is the black under the transparent
		// part once alpha is dropped before scaling; scaling with alpha
		// and then dropping it gives white (255).
		{itemPath("rgba.tiff", "/thumbnail?encoding=JPEG"), 256, 256, []px{
			{120, 16, 0, 0, 2}, {61, 2, 8, 8, 8}, {121, 16, 0, 0, 0}, {241, 112, 0, 0, 0},
			{128, 128, 88, 81, 89}, {10, 10, 0, 0, 0}}},
		{itemPath("la.tiff", "/thumbnail?encoding=JPEG"), 256, 128, []px{
			{0, 0, 0, 0, 0}, {64, 64, 1, 1, 1}, {127, 0, 126, 126, 126}, {128, 0, 129, 129, 129},
			{255, 127, 255, 255, 255}}},
	} {
		img, format := decode(t, e.get(c.path))
		if format != "jpeg" {
			t.Fatalf("%s: format %s", c.path, format)
		}
		wantSize(t, img, c.w, c.h)
		for _, p := range c.px {
			r, g, b, _ := img.At(p.x, p.y).RGBA()
			got := [3]int{int(r >> 8), int(g >> 8), int(b >> 8)}
			for i, want := range [3]int{p.r, p.g, p.b} {
				if d := got[i] - want; d < -6 || d > 6 {
					t.Errorf("%s (%d,%d): %v, want %d,%d,%d ±6", c.path, p.x, p.y, got, p.r, p.g, p.b)
					break
				}
			}
		}
	}

	// A 16-bit grey image scaled stays one band: its 8-bit PNG is the
	// full-resolution one sampled at column int(i·640/100), row
	// int(j·480/75).
	full, _ := decode(t, e.get(itemPath("u16.tif", "/region?encoding=PNG")))
	for _, enc := range []string{"PNG", "TIFF"} {
		r := e.get(itemPath("u16.tif", "/region?width=100&encoding="+enc))
		if enc == "TIFF" {
			if r.status != http.StatusOK || r.header.Get("Content-Type") != "image/tiff" {
				t.Fatalf("TIFF region: %d %s", r.status, r.header.Get("Content-Type"))
			}
			continue // Go's image package reads no TIFF; the PNG is the same pixels
		}
		img, _ := decode(t, r)
		g, ok := img.(*image.Gray)
		if !ok {
			t.Fatalf("scaled 16-bit grey region is %T, want one 8-bit band", img)
		}
		wantSize(t, g, 100, 75)
		fg := full.(*image.Gray)
		for j := range 75 {
			for i := range 100 {
				if got, want := g.GrayAt(i, j).Y, fg.GrayAt(i*640/100, j*480/75).Y; got != want {
					t.Fatalf("(%d,%d) = %d, want %d", i, j, got, want)
				}
			}
		}
	}

	// tile_frames of a grey image: one grey band, the empty cell black.
	img, _ := decode(t, e.get(itemPath("ome.tif", "/tile_frames?encoding=PNG&frameList=0,2,4&framesAcross=2&width=400&height=152")))
	g, ok := img.(*image.Gray)
	if !ok {
		t.Fatalf("tile_frames of grey frames is %T, want one 8-bit band", img)
	}
	wantSize(t, g, 800, 304)
	for _, p := range []struct{ x, y, v int }{{0, 0, 128}, {100, 76, 177}, {500, 76, 177}, {100, 228, 177}, {399, 151, 224}, {700, 228, 0}, {799, 303, 0}} {
		if got := int(g.GrayAt(p.x, p.y).Y); got != p.v {
			t.Errorf("tile_frames (%d,%d) = %d, want %d", p.x, p.y, got, p.v)
		}
	}
}

// TestSynthesisedEdgeTilesAsLargeImage checks the edge tiles of levels a
// single-level SVS lacks against the real large_image (its tiff source on
// CMU-1-Small-Region.svs, PNG): _getTileFromEmptyLevel pastes the stored
// edge tiles whole, the writer's white padding beyond the image included,
// on an RGBA canvas whose uncovered rest is transparent (so the LANCZOS
// carries the children's colour a few pixels into it), and bridges the
// four missing levels from the stored one down in steps of three: level 0
// is made from level 1, not 3.
func TestSynthesisedEdgeTilesAsLargeImage(t *testing.T) {
	e := newEnv(t)
	type px struct{ x, y, v int }
	for _, c := range []struct {
		tile string
		px   []px
	}{
		{"0/0/0", []px{{146, 100, 255}, {148, 100, 251}, {149, 100, 255}, {150, 100, 162}, {151, 100, 93},
			{152, 100, 0}, {153, 100, 4}, {154, 100, 0}, {60, 190, 255}, {60, 196, 93}, {60, 199, 0}}},
		{"3/0/6", []px{{50, 119, 255}, {50, 120, 255}, {50, 121, 0}, {50, 122, 255}, {50, 123, 0}, {50, 125, 0}}},
		{"2/2/3", []px{{10, 10, 243}, {70, 10, 243}, {100, 10, 255}, {119, 60, 255}, {121, 10, 0}, {125, 10, 0},
			{10, 25, 255}, {10, 70, 0}}},
	} {
		img, _ := decode(t, e.get(itemPath("CMU-1-Small-Region.svs", "/zxy/"+c.tile+"?encoding=PNG")))
		for _, p := range c.px {
			r, g, b, _ := img.At(p.x, p.y).RGBA()
			for _, v := range []uint32{r >> 8, g >> 8, b >> 8} {
				if d := int(v) - p.v; d < -2 || d > 2 {
					t.Errorf("tile %s (%d,%d): %d,%d,%d, want %d ±2", c.tile, p.x, p.y, r>>8, g>>8, b>>8, p.v)
					break
				}
			}
		}
	}
}

// TestDICOMEdgeTilesBlack: large_image's DICOM reader reads the part of
// the image a tile covers and pads it with zeros, so the white a writer
// stored beyond boxes_0.dcm's 16×16 image in its 64×64 frame is black in
// both encodings (values from large_image 1.35.2).
func TestDICOMEdgeTilesBlack(t *testing.T) {
	e := newEnvWith(t, map[string]string{"boxes_0.dcm": "openslide-python/boxes_0.dcm"}, nil)
	for _, enc := range []string{"PNG", "JPEG"} {
		img, _ := decode(t, e.get(itemPath("boxes_0.dcm", "/zxy/0/0/0?encoding="+enc)))
		wantSize(t, img, 64, 64)
		for _, p := range []struct{ x, y, r, g, b int }{{5, 5, 244, 233, 244}, {15, 15, 234, 238, 248},
			{16, 16, 0, 0, 0}, {63, 0, 0, 0, 0}, {40, 40, 0, 0, 0}} {
			r, g, b, _ := img.At(p.x, p.y).RGBA()
			for i, v := range []int{int(r >> 8), int(g >> 8), int(b >> 8)} {
				if d := v - []int{p.r, p.g, p.b}[i]; d < -8 || d > 8 {
					t.Errorf("%s (%d,%d): %d,%d,%d, want %d,%d,%d", enc, p.x, p.y, r>>8, g>>8, b>>8, p.r, p.g, p.b)
					break
				}
			}
		}
	}
}

// TestStyledPartialEdgeTile: large_image's openjpeg reader reads an edge
// tile of issue412.jp2 (256×100 in a 256×256 tile) as the image's 100
// rows; _outputTileNumpyStyle styles them and pads the tile after with
// zeros, so below the image the styled tile is transparent, not the
// style applied to black (values from large_image 1.35.2).
func TestStyledPartialEdgeTile(t *testing.T) {
	e := newEnvWith(t, map[string]string{"issue412.jp2": "libvips/issue412.jp2"}, nil)
	style := url.QueryEscape(`{"min": 20, "max": 200, "gamma": 0.5}`)
	img, _ := decode(t, e.get(itemPath("issue412.jp2", "/zxy/0/0/0?encoding=PNG&style="+style)))
	wantSize(t, img, 256, 256)
	for _, p := range []struct{ x, y, v, a int }{{10, 50, 0, 255}, {200, 20, 89, 255}, {128, 99, 187, 255},
		{128, 100, 0, 0}, {10, 150, 0, 0}, {255, 255, 0, 0}} {
		c := color.NRGBAModel.Convert(img.At(p.x, p.y)).(color.NRGBA)
		if int(c.R) != p.v || c.G != c.R || c.B != c.R || int(c.A) != p.a {
			t.Errorf("(%d,%d): %v, want grey %d alpha %d", p.x, p.y, c, p.v, p.a)
		}
	}
}

// TestTiledRegion: encoding=TILED gives the region as large_image's TILED
// output does: a BigTIFF of 256×256 tiles with a pyramid, LZW by default,
// the pixel size recorded, full-resolution pixels exactly the region's,
// a scaled region made by libvips' LANCZOS3 (close to Pillow's).
func TestTiledRegion(t *testing.T) {
	e := newEnv(t)
	area := "/region?left=100&top=200&right=1100&bottom=1000"
	open := func(r resp) tilesource.Source {
		t.Helper()
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "image/tiff" {
			t.Fatalf("TILED region: %d %s %.200s", r.status, r.header.Get("Content-Type"), r.body)
		}
		if !bytes.HasPrefix(r.body, []byte("II+\x00")) {
			t.Fatalf("not a little-endian BigTIFF: % x", r.body[:8])
		}
		src, err := tiff.OpenReaderAt(bytes.NewReader(r.body), int64(len(r.body)), "region.tiff")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { src.Close() })
		return src
	}
	pixels := func(src tilesource.Source) *encode.Image {
		t.Helper()
		info := src.Info()
		out := encode.NewImage(info.SizeX, info.SizeY, info.Bands, info.Format)
		z := info.Levels - 1
		cols, rows := info.TileCount(z)
		for y := range rows {
			for x := range cols {
				tl, err := src.ReadTile(t.Context(), 0, z, x, y)
				if err != nil {
					t.Fatal(err)
				}
				img, err := tl.Image()
				if err != nil {
					t.Fatal(err)
				}
				for r := range min(img.Height, info.SizeY-y*256) {
					n := min(img.Width, info.SizeX-x*256) * img.PixelSize()
					copy(out.Pix[((y*256+r)*info.SizeX+x*256)*img.PixelSize():][:n], img.Pix[r*img.Stride():][:n])
				}
			}
		}
		return out
	}
	src := open(e.get(itemPath("CMU-1-Small-Region.svs", area+"&encoding=TILED")))
	info := src.Info()
	if info.SizeX != 1000 || info.SizeY != 800 || info.TileWidth != 256 || info.TileHeight != 256 ||
		!info.Stored[info.Levels-1] || !info.Stored[info.Levels-2] || info.MMX == nil || math.Abs(*info.MMX-0.000499) > 1e-9 {
		t.Fatalf("TILED region info %+v", info)
	}
	ref, _ := decode(t, e.get(itemPath("CMU-1-Small-Region.svs", area+"&encoding=PNG")))
	got := pixels(src)
	for y := range 800 {
		for x := range 1000 {
			r, g, b, _ := ref.At(x, y).RGBA()
			o := (y*1000 + x) * 3
			if got.Pix[o] != uint8(r>>8) || got.Pix[o+1] != uint8(g>>8) || got.Pix[o+2] != uint8(b>>8) {
				t.Fatalf("(%d,%d): %v, want %d,%d,%d", x, y, got.Pix[o:o+3], r>>8, g>>8, b>>8)
			}
		}
	}
	// Scaled by half, JPEG-compressed inside: within a few levels of the
	// PNG region Pillow's LANCZOS makes.
	src = open(e.get(itemPath("CMU-1-Small-Region.svs", area+"&width=500&encoding=TILED&tiffCompression=jpeg")))
	if info := src.Info(); info.SizeX != 500 || info.SizeY != 400 || math.Abs(*info.MMX-0.000998) > 1e-9 {
		t.Fatalf("scaled TILED region info %+v", info)
	}
	got = pixels(src)
	ref, _ = decode(t, e.get(itemPath("CMU-1-Small-Region.svs", area+"&width=500&encoding=PNG")))
	var se float64
	for y := range 400 {
		for x := range 500 {
			r, g, b, _ := ref.At(x, y).RGBA()
			for i, v := range []uint32{r >> 8, g >> 8, b >> 8} {
				d := float64(got.Pix[(y*500+x)*3+i]) - float64(v)
				se += d * d
			}
		}
	}
	if psnr := 10 * math.Log10(255*255/(se/(500*400*3))); psnr < 30 {
		t.Errorf("scaled TILED region %.1f dB from the PNG region", psnr)
	}
	wantError(t, e.get(itemPath("CMU-1-Small-Region.svs", area+"&encoding=TILED&tiffCompression=bogus")), 400, "rest",
		`Value Error: Invalid tiffCompression "bogus".`)
}

// TestTiledOnOtherRoutes: TILED is a tiled pyramidal TIFF on the thumbnail
// and tile_frames routes, as large_image's getRegion and tileFrames make
// it, and a plain TIFF on tiles and associated images (its
// _encodeImageBinary); DeepZoom refuses it as other encodings.
func TestTiledOnOtherRoutes(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		route string
		tiled bool
		w, h  int
	}{
		{itemPath("CMU-1-Small-Region.svs", "/thumbnail?encoding=TILED&width=1000"), true, 1000, 1336},
		{itemPath("CMU-1-Small-Region.svs", "/zxy/4/0/0?encoding=TILED"), false, 240, 240},
		{itemPath("CMU-1-Small-Region.svs", "/images/label?encoding=TILED"), false, 387, 463},
	} {
		r := e.get(c.route)
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "image/tiff" {
			t.Fatalf("%s: %d %s %.100s", c.route, r.status, r.header.Get("Content-Type"), r.body)
		}
		if bigTIFF := bytes.HasPrefix(r.body, []byte("II+\x00")); bigTIFF != c.tiled {
			t.Errorf("%s: BigTIFF %v, want %v", c.route, bigTIFF, c.tiled)
		}
		src, err := tiff.OpenReaderAt(bytes.NewReader(r.body), int64(len(r.body)), "out.tiff")
		if err != nil {
			t.Fatal(err)
		}
		info := src.Info()
		if info.SizeX != c.w || info.SizeY != c.h || (c.tiled && (info.TileWidth != 256 || info.Levels < 3)) {
			t.Errorf("%s: %+v", c.route, info)
		}
		if c.tiled && (info.MMX == nil || math.Abs(*info.MMX-0.000499*2220/1000) > 1e-7) {
			t.Errorf("%s: pixel size %v", c.route, info.MMX)
		}
		src.Close()
	}
	wantError(t, e.get(itemPath("CMU-1-Small-Region.svs", "/dzi_files/8/0_0.png?encoding=TILED")), 400, "rest",
		"Only JPEG and PNG encodings are supported")
}
