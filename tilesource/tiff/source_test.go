package tiff

import (
	"bytes"
	"errors"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilesource"
)

const cmu = "libvips/CMU-1-Small-Region.svs"

func TestCMUSmallRegion(t *testing.T) {
	s := openT(t, cmu)
	in := s.Info()
	if in.SizeX != 2220 || in.SizeY != 2967 || in.TileWidth != 240 || in.TileHeight != 240 || in.Levels != 5 {
		t.Fatalf("geometry %dx%d tile %dx%d levels %d", in.SizeX, in.SizeY, in.TileWidth, in.TileHeight, in.Levels)
	}
	if !slices.Equal(in.Stored, []bool{false, false, false, false, true}) {
		t.Fatalf("stored %v", in.Stored)
	}
	if in.Magnification == nil || *in.Magnification != 20 || in.MMX == nil || *in.MMX != 0.000499 || *in.MMY != 0.000499 {
		t.Fatalf("magnification %v mm %v", in.Magnification, in.MMX)
	}
	if in.Format != encode.Uint8 || in.Bands != 3 || in.SourceName != "tiff" || in.FrameCount() != 1 {
		t.Fatalf("format %v bands %d source %q", in.Format, in.Bands, in.SourceName)
	}
	if got := s.AssociatedNames(); !slices.Equal(got, []string{"label", "macro", "thumbnail"}) {
		t.Fatalf("associated %v", got)
	}
	for name, size := range map[string][2]int{"label": {387, 463}, "macro": {1280, 431}, "thumbnail": {574, 768}} {
		img, err := s.Associated(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if img.Width != size[0] || img.Height != size[1] || img.Bands != 3 {
			t.Fatalf("%s: %dx%d×%d, want %v", name, img.Width, img.Height, img.Bands, size)
		}
		// Compare with libvips' decode of the same directory (pages 1–3).
		page := map[string]int{"thumbnail": 1, "label": 2, "macro": 3}[name]
		if d := meanAbsDiff(t, img, pageImage(t, cmu, page), 0, 0); d > 1 {
			t.Fatalf("%s differs from libvips by %.2f", name, d)
		}
	}
	if img, err := s.Associated("nope"); img != nil || err != nil {
		t.Fatalf("unknown associated image: %v %v", img, err)
	}
	if _, err := s.ReadTile(t.Context(), 0, 3, 0, 0); !errors.Is(err, tilesource.ErrLevelNotStored) {
		t.Fatalf("level 3: %v", err)
	}
	meta := s.InternalMetadata()
	if meta["populatedLevels"] != 1 {
		t.Fatalf("populatedLevels %v", meta["populatedLevels"])
	}
	if ap, _ := meta["aperio"].(map[string]string); ap["AppMag"] != "20" || ap["MPP"] != "0.4990" {
		t.Fatalf("aperio metadata %v", meta["aperio"])
	}
	if s.MemoryEstimate() <= 0 {
		t.Fatal("no memory estimate")
	}
}

// TestAperioColour checks that a passed-through Aperio tile decodes to the
// colours libvips' TIFF loader produces, and that without the Adobe marker
// it would not.
func TestAperioColour(t *testing.T) {
	s := openT(t, cmu)
	// libvips' TIFF loader (from the file's bytes) decodes Aperio JPEG with
	// the right colours; encode.OpenFile would pick OpenSlide for an .svs.
	ref := pageImage(t, cmu, 0)
	d := s.frame[0][4]
	for _, xy := range [][2]int{{0, 0}, {4, 6}, {9, 12}} {
		x, y := xy[0], xy[1]
		tl, img := tileImage(t, s, 0, 4, x, y)
		if tl.Encoding != "JPEG" || !bytes.HasPrefix(tl.Encoded, []byte{0xFF, 0xD8, 0xFF, 0xEE, 0, 14, 'A', 'd', 'o', 'b', 'e'}) {
			t.Fatalf("tile %d,%d: encoding %q, starts % x", x, y, tl.Encoding, tl.Encoded[:16])
		}
		if img.Width != 240 || img.Height != 240 || img.Bands != 3 {
			t.Fatalf("tile %d,%d decoded %dx%d×%d", x, y, img.Width, img.Height, img.Bands)
		}
		// Edge tiles are full-size as stored; compare the part in the image.
		w, h := min(240, 2220-x*240), min(240, 2967-y*240)
		want := encode.Crop(ref, x*240, y*240, w, h)
		diff := meanAbsDiff(t, encode.Crop(img, 0, 0, w, h), want, 0, 0)
		t.Logf("tile %d,%d: mean abs diff from libvips %.3f", x, y, diff)
		if diff >= 3 {
			t.Fatalf("tile %d,%d: mean abs diff %.2f from libvips", x, y, diff)
		}
		// The same tile spliced without the Adobe marker decodes as YCbCr.
		raw, err := s.readChunks(d, x, y)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(tl.Encoded, encode.SpliceJPEG(d.jpegTables, raw[0], true)) {
			t.Fatalf("tile %d,%d: fast read differs from SpliceJPEG", x, y)
		}
		bad, err := encode.Decode(encode.SpliceJPEG(d.jpegTables, raw[0], false), "")
		if err != nil {
			t.Fatal(err)
		}
		diff = meanAbsDiff(t, encode.Crop(bad, 0, 0, w, h), want, 0, 0)
		t.Logf("tile %d,%d: without Adobe marker %.3f", x, y, diff)
		if diff < 20 {
			t.Fatalf("tile %d,%d without Adobe marker differs only by %.2f", x, y, diff)
		}
	}
}

// pixelCase is one tile compared with libvips' decode of its page.
type pixelCase struct {
	file           string
	frame, z, x, y int
	page           int // libvips page holding the level
	tol            float64
}

func TestPixelsMatchLibvips(t *testing.T) {
	cases := []pixelCase{
		{"openslide-python/boxes.tiff", 0, 3, 0, 0, 0, 0},
		{"openslide-python/boxes.tiff", 0, 3, 4, 3, 0, 0},
		{"openslide-python/boxes.tiff", 0, 2, 1, 1, 1, 0},
		{"openslide-python/boxes.tiff", 0, 1, 1, 0, 2, 0},
		{"openslide-python/boxes.tiff", 0, 0, 0, 0, 3, 0},
		{"openslide-python/openslide_small.svs", 0, 0, 0, 0, 0, 2},
		{"large_image/yb10kx5k.zstd.tiff", 0, 4, 9, 4, 0, 0},
		{"large_image/yb10kx5k.zstd.tiff", 0, 2, 1, 1, 2, 0},
		{"large_image/yb10kx5k.zstd.tiff", 0, 0, 0, 0, 4, 0},
		{"large_image/rgba_geotiff.tiff", 0, 1, 1, 1, 0, 0},
		{"large_image/rgba_geotiff.tiff", 0, 0, 0, 0, 1, 0},
		{"large_image/test_orient0.tif", 0, 2, 1, 2, 0, 2},
		{"large_image/test_orient1.tif", 0, 1, 0, 1, 1, 2},
		{"large_image/grey10kx5k.tif", 0, 6, 0, 0, 0, 0},
		{"large_image/grey10kx5k.tif", 0, 6, 21, 13, 0, 0},
		{"large_image/grey10kx5k.tif", 0, 6, 39, 19, 0, 0}, // edge: 16×136
		{"large_image/global_dem.tif", 0, 1, 1, 0, 0, 0},
		{"large_image/rgb_geotiff.tiff", 0, 0, 0, 0, 0, 0},
		{"pathml/smalltif.tif", 0, 2, 1, 1, 0, 0},
		{"pathml/smalltif.tif", 0, 2, 2, 1, 0, 0},
		{"libvips/sample.tif", 0, 1, 1, 1, 0, 0},
		{"libvips/1bit.tif", 0, 0, 0, 0, 0, 0},
		{"libvips/4bit.tif", 0, 0, 0, 0, 0, 0},
		{"libvips/multi-channel-z-series.ome.tif", 0, 1, 0, 0, 0, 0},
		{"libvips/multi-channel-z-series.ome.tif", 5, 1, 1, 0, 5, 0},   // C=1, Z=0
		{"libvips/multi-channel-z-series.ome.tif", 14, 1, 1, 0, 14, 0}, // C=2, Z=4
		{"libvips/multi-channel-z-series.ome.tif", 7, 1, 0, 0, 7, 0},   // C=1, Z=2
	}
	for _, c := range cases {
		s := openT(t, c.file)
		in := s.Info()
		_, img := tileImage(t, s, c.frame, c.z, c.x, c.y)
		ref := pageImage(t, c.file, c.page)
		lw, lh := in.LevelSize(c.z)
		if ref.Width < lw || ref.Height < lh {
			t.Fatalf("%s: page %d is %dx%d, level %d is %dx%d", c.file, c.page, ref.Width, ref.Height, c.z, lw, lh)
		}
		if img.Width < min(in.TileWidth, lw-c.x*in.TileWidth) || img.Height < min(in.TileHeight, lh-c.y*in.TileHeight) {
			t.Fatalf("%s: tile %dx%d too small", c.file, img.Width, img.Height)
		}
		if d := meanAbsDiff(t, img, ref, c.x*in.TileWidth, c.y*in.TileHeight); d > c.tol {
			t.Errorf("%s frame %d z %d tile %d,%d: mean abs diff %.3f", c.file, c.frame, c.z, c.x, c.y, d)
		}
	}
}

func TestFileFacts(t *testing.T) {
	cases := []struct {
		file               string
		w, h, tw, th, lvls int
		stored             []bool
		format             encode.Format
		bands              int
		passthrough        bool
	}{
		{"openslide-python/boxes.tiff", 300, 250, 64, 64, 4, []bool{true, true, true, true}, encode.Uint8, 3, false},
		{"openslide-python/openslide_small.svs", 16, 16, 64, 64, 1, []bool{true}, encode.Uint8, 3, true},
		{"large_image/yb10kx5k.zstd.tiff", 10000, 5000, 1024, 1024, 5, []bool{true, true, true, true, true}, encode.Uint8, 3, false},
		{"large_image/rgba_geotiff.tiff", 600, 600, 512, 512, 2, []bool{true, true}, encode.Uint8, 4, false},
		{"large_image/small_la.tiff", 2, 1, 256, 256, 1, []bool{true}, encode.Uint8, 2, false},
		{"large_image/test_orient1.tif", 120, 180, 64, 64, 3, []bool{true, true, true}, encode.Uint8, 1, true},
		{"large_image/test_orient3.tif", 120, 180, 64, 64, 3, []bool{true, true, true}, encode.Uint8, 1, false},
		{"large_image/test_orient6.tif", 180, 120, 64, 64, 3, []bool{true, true, true}, encode.Uint8, 1, false},
		{"large_image/grey10kx5k.tif", 10000, 5000, 256, 256, 7, []bool{false, false, false, false, false, false, true}, encode.Uint8, 1, false},
		{"pathml/smalltif.tif", 640, 480, 256, 256, 3, []bool{false, false, true}, encode.Uint16, 1, false},
		{"libvips/sample.tif", 290, 442, 256, 256, 2, []bool{false, true}, encode.Uint16, 3, false},
		{"libvips/ojpeg-strip.tif", 160, 160, 256, 256, 1, []bool{true}, encode.Uint8, 3, false},
		{"libvips/multi-channel-z-series.ome.tif", 439, 167, 256, 256, 2, []bool{false, true}, encode.Int8, 1, false},
	}
	for _, c := range cases {
		s := openT(t, c.file)
		in := s.Info()
		if in.SizeX != c.w || in.SizeY != c.h || in.TileWidth != c.tw || in.TileHeight != c.th || in.Levels != c.lvls {
			t.Errorf("%s: %dx%d tile %dx%d levels %d", c.file, in.SizeX, in.SizeY, in.TileWidth, in.TileHeight, in.Levels)
		}
		if !slices.Equal(in.Stored, c.stored) || in.Format != c.format || in.Bands != c.bands {
			t.Errorf("%s: stored %v format %s bands %d", c.file, in.Stored, in.Format.DType(), in.Bands)
		}
		tl, err := s.ReadTile(t.Context(), 0, c.lvls-1, 0, 0)
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if (tl.Encoding == "JPEG") != c.passthrough {
			t.Errorf("%s: encoding %q", c.file, tl.Encoding)
		}
	}
}

func TestBoxesInfo(t *testing.T) {
	s := openT(t, "openslide-python/boxes.tiff")
	in := s.Info()
	if len(in.ICCProfile) != 588 {
		t.Fatalf("ICC profile %d bytes", len(in.ICCProfile))
	}
	// 28.346 px/cm is below large_image's threshold of 100: no pixel size.
	if in.MMX != nil || in.MMY != nil || in.Magnification != nil {
		t.Fatalf("mm %v %v magnification %v", in.MMX, in.MMY, in.Magnification)
	}
	if s.AssociatedNames() == nil || len(s.AssociatedNames()) != 0 {
		t.Fatalf("associated %v", s.AssociatedNames())
	}
	if s.InternalMetadata()["populatedLevels"] != 4 {
		t.Fatalf("metadata %v", s.InternalMetadata())
	}
}

func TestOMETIFF(t *testing.T) {
	s := openT(t, "libvips/multi-channel-z-series.ome.tif")
	in := s.Info()
	if in.SourceName != "ometiff" || in.Format.DType() != "int8" || in.FrameCount() != 15 {
		t.Fatalf("source %q dtype %s frames %d", in.SourceName, in.Format.DType(), in.FrameCount())
	}
	// File order, as large_image numbers them: the XML's TiffData list runs
	// Z fastest (IFD 0-4 are C=0).
	want := []map[string]any{{"IndexC": 0, "IndexZ": 0}, {"IndexC": 0, "IndexZ": 1}, {"IndexC": 0, "IndexZ": 4}, {"IndexC": 1, "IndexZ": 0}}
	at := []int{0, 1, 4, 5}
	for i, w := range want {
		f := in.Frames[at[i]]
		// IndexT too: the TiffData entries name FirstT="0".
		if len(f) != 3 || f["IndexC"] != w["IndexC"] || f["IndexZ"] != w["IndexZ"] || f["IndexT"] != 0 {
			t.Fatalf("frame %d = %v, want %v", at[i], f, w)
		}
		if d := s.frame[at[i]][in.Levels-1]; d.page != at[i] {
			t.Fatalf("frame %d reads IFD %d", at[i], d.page)
		}
	}
	m := tilesource.FrameMetadata(in)
	if !reflect.DeepEqual(m["IndexStride"], map[string]any{"IndexC": 5, "IndexZ": 1}) ||
		!reflect.DeepEqual(m["IndexRange"], map[string]any{"IndexC": 3, "IndexZ": 5}) {
		t.Fatalf("IndexStride %v IndexRange %v", m["IndexStride"], m["IndexRange"])
	}
	if f := in.Frames[14]; f["IndexC"] != 2 || f["IndexZ"] != 4 {
		t.Fatalf("frame 14 = %v", f)
	}
	// The XML's channels carry no Name attribute.
	if in.Channels != nil || in.MMX != nil || in.Magnification != nil {
		t.Fatalf("channels %v mm %v mag %v", in.Channels, in.MMX, in.Magnification)
	}
}

// TestOMEChannelNamesAndUnits rereads the real file's OME XML with channel
// names and a physical size added.
func TestOMEChannelNamesAndUnits(t *testing.T) {
	s := openT(t, "libvips/multi-channel-z-series.ome.tif")
	desc := s.tf.IFDs[0].String(tagImageDescription)
	for i, name := range []string{"DAPI", "GFP", "RFP"} {
		id := `ID="Channel:0:` + strconv.Itoa(i) + `"`
		desc = strings.Replace(desc, id, id+` Name="`+name+`"`, 1)
	}
	desc = strings.Replace(desc, `SizeZ="5"`, `SizeZ="5" PhysicalSizeX="0.5" PhysicalSizeY="500" PhysicalSizeYUnit="nm"`, 1)
	if ok, err := s.setupOME(desc); !ok || err != nil {
		t.Fatalf("setupOME: %v %v", ok, err)
	}
	s.finish(false)
	in := s.Info()
	if !slices.Equal(in.Channels, []string{"DAPI", "GFP", "RFP"}) {
		t.Fatalf("channels %v", in.Channels)
	}
	if in.MMX == nil || *in.MMX != 0.0005 || *in.MMY != 0.0005 || *in.Magnification != 20 {
		t.Fatalf("mm %v %v magnification %v", in.MMX, in.MMY, in.Magnification)
	}
	// Duplicate names are dropped, as large_image does.
	dup := strings.Replace(desc, `Name="RFP"`, `Name="GFP"`, 1)
	s.setupOME(dup)
	if s.info.Channels != nil {
		t.Fatalf("duplicate names kept: %v", s.info.Channels)
	}
}

func TestNotRecognized(t *testing.T) {
	for _, f := range []string{"histolab/broken.svs", "libvips/sample.jpg", "libvips/world.jp2", "openslide-python/boxes_0.dcm"} {
		_, err := Open(tdPath(f))
		if !errors.Is(err, tilesource.ErrNotRecognized) {
			t.Errorf("%s: %v", f, err)
		}
	}
	if _, err := Open(tdPath("no/such/file.tif")); err == nil || errors.Is(err, tilesource.ErrNotRecognized) {
		t.Errorf("missing file: %v", err)
	}
}

func TestUnservableTIFF(t *testing.T) {
	cases := map[string]string{
		"openslide-python/unopenable.tiff": "unopenable.tiff: unsupported TIFF compression 52479",
		"large_image/zero_gi.tif":          "zero_gi.tif: invalid image height 0",
	}
	for f, msg := range cases {
		_, err := Open(tdPath(f))
		var te *tilesource.Error
		if !errors.As(err, &te) || te.Message != msg || te.Status != http.StatusBadRequest {
			t.Errorf("%s: %v", f, err)
		}
		if errors.Is(err, tilesource.ErrNotRecognized) {
			t.Errorf("%s: should be claimed", f)
		}
	}
}

func TestUnreadableSVS(t *testing.T) {
	s := openT(t, "openslide-python/unreadable.svs")
	// The source hands the stored tile bytes over as they are (the
	// pipeline checks a JPEG's header before serving it as stored)...
	tl, err := s.ReadTile(t.Context(), 0, 0, 0, 0)
	if err != nil || tl.Encoding != "JPEG" {
		t.Fatalf("ReadTile: %v %v", tl, err)
	}
	// ...and fail only when decoded, with a clean public error.
	_, err = tl.Image()
	var te *tilesource.Error
	if !errors.As(err, &te) || te.Status != http.StatusNotFound || te.Message != "Internal I/O failure: cannot decode tile 0, 0" {
		t.Fatalf("decode error: %#v", err)
	}
	if _, err := s.Associated("thumbnail"); !errors.As(err, &te) || te.Message != "Internal I/O failure: cannot decode thumbnail image" {
		t.Fatalf("thumbnail error: %v", err)
	}
	// The intact twin decodes.
	good := openT(t, "openslide-python/openslide_small.svs")
	if _, img := tileImage(t, good, 0, 0, 0, 0); img.Width != 64 {
		t.Fatalf("small.svs tile %dx%d", img.Width, img.Height)
	}
}

func TestSmallLA(t *testing.T) {
	// Two JPEG components, grey and alpha: neither TurboJPEG nor libvips
	// takes them; libjpeg reads them as they are, as libtiff does for
	// large_image, whose pixel route gives (0, 0) and (255, 255).
	s := openT(t, "large_image/small_la.tiff")
	tl, err := s.ReadTile(t.Context(), 0, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tl.Image()
	if err != nil {
		t.Fatal(err)
	}
	if img.Width != 256 || img.Height != 256 || img.Bands != 2 || img.Format != encode.Uint8 {
		t.Fatalf("tile %d×%d×%d %s", img.Width, img.Height, img.Bands, img.Format.DType())
	}
	if got := img.Pix[:4]; !slices.Equal(got, []byte{0, 0, 255, 255}) {
		t.Fatalf("first two pixels %v, want [0 0 255 255]", got)
	}
}

func mustRead(t testing.TB, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestConcurrentReads reads the same tiles from many goroutines (strip
// cache, passthrough, mini-TIFF decode) and checks the results agree.
func TestConcurrentReads(t *testing.T) {
	for _, f := range []string{"large_image/grey10kx5k.tif", cmu, "openslide-python/boxes.tiff"} {
		s := openT(t, f)
		in := s.Info()
		z := in.Levels - 1
		cols, rows := in.TileCount(z)
		type key struct{ x, y int }
		want := map[key][]byte{}
		for y := 0; y < min(rows, 3); y++ {
			for x := 0; x < min(cols, 3); x++ {
				_, img := tileImage(t, s, 0, z, x, y)
				want[key{x, y}] = img.Pix
			}
		}
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k, w := range want {
					tl, err := s.ReadTile(t.Context(), 0, z, k.x, k.y)
					if err == nil {
						var img *encode.Image
						if img, err = tl.Image(); err == nil && !bytes.Equal(img.Pix, w) {
							err = errors.New("pixels differ")
						}
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("%s: %v", f, err)
		}
	}
}

func BenchmarkReadTilePassthrough(b *testing.B) {
	s := openT(b, cmu)
	ctx := b.Context()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tl, err := s.ReadTile(ctx, 0, 4, i%9, (i/9)%12)
		if err != nil || tl.Encoding != "JPEG" {
			b.Fatal(err)
		}
	}
}

// libtiffRGBA decodes a test file with libtiff's RGBA interface (the
// tiff2rgba tool), which handles layouts libvips refuses: the reference for
// subsampled YCbCr and old-style JPEG. The alpha band is dropped.
func libtiffRGBA(t *testing.T, rel string) *encode.Image {
	t.Helper()
	tool, err := exec.LookPath("tiff2rgba")
	if err != nil {
		t.Fatal("tiff2rgba (libtiff-tools) is required")
	}
	out := filepath.Join(t.TempDir(), "rgba.tif")
	if b, err := exec.Command(tool, tdPath(rel), out).CombinedOutput(); err != nil {
		t.Fatalf("tiff2rgba: %v\n%s", err, b)
	}
	img, err := encode.Decode(mustRead(t, out), "")
	if err != nil {
		t.Fatal(err)
	}
	rgb := encode.NewImage(img.Width, img.Height, 3, encode.Uint8)
	for i := range img.Width * img.Height {
		copy(rgb.Pix[3*i:3*i+3], img.Pix[img.Bands*i:])
	}
	return rgb
}

func TestSubsampledYCbCr(t *testing.T) {
	const f = "libvips/subsampled.tif"
	s := openT(t, f)
	in := s.Info()
	if in.SizeX != 250 || in.SizeY != 325 || in.Bands != 3 || !slices.Equal(in.Stored, []bool{false, true}) {
		t.Fatalf("%dx%d bands %d stored %v", in.SizeX, in.SizeY, in.Bands, in.Stored)
	}
	ref := libtiffRGBA(t, f)
	for _, y := range []int{0, 1} {
		_, img := tileImage(t, s, 0, 1, 0, y)
		if img.Width != 250 || img.Height != min(256, 325-256*y) {
			t.Fatalf("tile 0,%d is %dx%d", y, img.Width, img.Height)
		}
		d := meanAbsDiff(t, img, ref, 0, 256*y)
		t.Logf("tile 0,%d: mean abs diff from libtiff %.3f", y, d)
		if d > 1.5 {
			t.Fatalf("tile 0,%d differs from libtiff by %.2f", y, d)
		}
	}
}

func TestOldStyleJPEG(t *testing.T) {
	for _, c := range []struct {
		file       string
		w, h, tw   int
		passthough bool
	}{
		{"libvips/ojpeg-tile.tif", 234, 213, 240, false},
		{"libvips/ojpeg-strip.tif", 160, 160, 256, false},
	} {
		s := openT(t, c.file)
		in := s.Info()
		if in.SizeX != c.w || in.SizeY != c.h || in.TileWidth != c.tw || in.Bands != 3 || in.Levels != 1 {
			t.Fatalf("%s: %dx%d tile %d bands %d levels %d", c.file, in.SizeX, in.SizeY, in.TileWidth, in.Bands, in.Levels)
		}
		_, img := tileImage(t, s, 0, 0, 0, 0)
		d := meanAbsDiff(t, img, libtiffRGBA(t, c.file), 0, 0)
		t.Logf("%s: mean abs diff from libtiff %.3f", c.file, d)
		if d > 3 {
			t.Fatalf("%s differs from libtiff by %.2f", c.file, d)
		}
	}
}

// TestResolutionTrust checks large_image's rule for resolution tags
// (tiff_reader._loadMetadata): trusted only at 100 or more pixels per inch
// or centimetre with ResolutionUnit present.
func TestResolutionTrust(t *testing.T) {
	for _, c := range []struct {
		file string
		mm   float64 // 0: null
	}{
		{"openslide-python/boxes.tiff", 0},  // 28.3465 px/cm
		{"large_image/grey10kx5k.tif", 0},   // 72 px/inch
		{"large_image/global_dem.tif", 0},   // 100, no ResolutionUnit
		{"pathml/smalltif.tif", 0},          // 96 px/inch
		{"libvips/sample.tif", 10 / 118.11}, // px/cm
		{"libvips/ojpeg-strip.tif", 0.254},  // 100 px/inch
	} {
		s := openT(t, c.file)
		in := s.Info()
		if c.mm == 0 {
			if in.MMX != nil || in.MMY != nil || in.Magnification != nil {
				t.Errorf("%s: mm %v %v magnification %v, want null", c.file, in.MMX, in.MMY, in.Magnification)
			}
			continue
		}
		if in.MMX == nil || in.MMY == nil || in.Magnification == nil ||
			math.Abs(*in.MMX-c.mm) > 1e-6 || math.Abs(*in.MMY-c.mm) > 1e-6 || math.Abs(*in.Magnification-0.01/c.mm) > 1e-6 {
			t.Errorf("%s: mm %v %v magnification %v, want %g", c.file, in.MMX, in.MMY, in.Magnification, c.mm)
		}
	}
}

// TestOrientationTiles checks every full-resolution tile of the
// test_orient files against the whole stored page, decoded by libvips and
// reoriented independently here; orientations 0 and 1 keep JPEG passthrough.
func TestOrientationTiles(t *testing.T) {
	for o := range 9 {
		name := "large_image/test_orient" + strconv.Itoa(o) + ".tif"
		s := openT(t, name)
		in := s.Info()
		wantW, wantH := 120, 180
		if o >= 5 {
			wantW, wantH = 180, 120
		}
		if in.SizeX != wantW || in.SizeY != wantH || in.TileWidth != 64 || in.TileHeight != 64 || in.Levels != 3 ||
			!slices.Equal(in.Stored, []bool{true, true, true}) {
			t.Fatalf("%s: %dx%d tile %dx%d levels %d stored %v", name, in.SizeX, in.SizeY, in.TileWidth, in.TileHeight, in.Levels, in.Stored)
		}
		data, err := os.ReadFile(tdPath(name))
		if err != nil {
			t.Fatal(err)
		}
		page, err := encode.Decode(data, "page=0")
		if err != nil {
			t.Fatal(err)
		}
		checkOriented(t, s, page, o, o <= 1)
	}
}

// TestOrientationStrips checks an untiled file with an Orientation tag: the
// virtual tiles are assembled from strips and reoriented.
func TestOrientationStrips(t *testing.T) {
	vips, err := exec.LookPath("vips")
	if err != nil {
		t.Fatal("the vips command (libvips-tools) is required")
	}
	out := filepath.Join(t.TempDir(), "strips.tif")
	// libvips keeps the Orientation tag and writes strips of 128 rows.
	if b, err := exec.Command(vips, "tiffsave", tdPath("large_image/test_orient7.tif"), out, "--compression", "deflate").CombinedOutput(); err != nil {
		t.Fatalf("vips: %v\n%s", err, b)
	}
	so, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer so.Close()
	s := so.(*Source)
	if d := s.frame[0][s.info.Levels-1]; d.tiled || d.orient != 7 {
		t.Fatalf("tiled %v orientation %d", d.tiled, d.orient)
	}
	if in := s.Info(); in.SizeX != 180 || in.SizeY != 120 || in.TileWidth != 256 {
		t.Fatalf("%dx%d tile %d", in.SizeX, in.SizeY, in.TileWidth)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	page, err := encode.Decode(data, "")
	if err != nil {
		t.Fatal(err)
	}
	checkOriented(t, s, page, 7, false)
}

// checkOriented compares every full-resolution tile of s with page, the
// stored image, displayed with orientation o: displayed (x, y) reads stored
// (u, v) after a transpose, then flips, as large_image's _getTileRotated.
func checkOriented(t *testing.T, s *Source, page *encode.Image, o int, passthrough bool) {
	t.Helper()
	at := func(x, y int) uint8 {
		u, v := x, y
		if o >= 5 {
			u, v = y, x
		}
		if o == 2 || o == 3 || o == 6 || o == 7 {
			u = page.Width - 1 - u
		}
		if o == 3 || o == 4 || o == 7 || o == 8 {
			v = page.Height - 1 - v
		}
		return page.Pix[(v*page.Width+u)*page.Bands]
	}
	in := s.Info()
	z := in.Levels - 1
	cols, rows := in.TileCount(z)
	for ty := range rows {
		for tx := range cols {
			tl, err := s.ReadTile(t.Context(), 0, z, tx, ty)
			if err != nil {
				t.Fatalf("orientation %d tile %d,%d: %v", o, tx, ty, err)
			}
			if (tl.Encoding == "JPEG") != passthrough {
				t.Errorf("orientation %d: encoding %q", o, tl.Encoding)
			}
			img, err := tl.Image()
			if err != nil {
				t.Fatal(err)
			}
			x0, y0 := tx*in.TileWidth, ty*in.TileHeight
			for y := 0; y < img.Height && y0+y < in.SizeY; y++ {
				for x := 0; x < img.Width && x0+x < in.SizeX; x++ {
					if got, want := img.Pix[(y*img.Width+x)*img.Bands], at(x0+x, y0+y); got != want {
						t.Fatalf("orientation %d tile %d,%d pixel %d,%d = %d, want %d", o, tx, ty, x, y, got, want)
					}
				}
			}
		}
	}
}

// BenchmarkOrientedTile reads a full-resolution tile of a rotated file
// (decode of the stored tiles and reorientation) against the passthrough
// read of the same tile as stored.
func BenchmarkOrientedTile(b *testing.B) {
	for _, name := range []string{"large_image/test_orient1.tif", "large_image/test_orient6.tif"} {
		s := openT(b, name)
		b.Run(filepath.Base(name), func(b *testing.B) {
			for b.Loop() {
				tl, err := s.ReadTile(b.Context(), 0, 2, 1, 1)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := tl.Image(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
