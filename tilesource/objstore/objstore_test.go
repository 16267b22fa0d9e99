package objstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/detect"
	"github.com/tileserver/tileserver/tilesource/dicom"
	"github.com/tileserver/tileserver/tilesource/internal/leavetest"
	"github.com/tileserver/tileserver/tilesource/objstore"
	"github.com/tileserver/tileserver/tilesource/objstore/s3test"
)

const bucket = "slides"

// testdata is the shared folder of real test images.
func testdata(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join("..", "..", "..", "shared", "testdata", rel)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("test image missing: %v", err)
	}
	return p
}

// countingTransport counts the object GETs (ranged or whole) that pass.
type countingTransport struct {
	gets atomic.Int64
	base http.RoundTripper
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet && r.URL.Query().Get("list-type") == "" && !strings.HasSuffix(r.URL.Path, "/") {
		c.gets.Add(1)
	}
	return c.base.RoundTrip(r)
}

// fixture is a SeaweedFS server holding the test images under "demo/".
type fixture struct {
	srv    *s3test.Server
	count  *countingTransport
	slides *objstore.Slides
}

var images = map[string]string{
	"demo/CMU-1-Small-Region.svs": "libvips/CMU-1-Small-Region.svs",
	"demo/boxes.tiff":             "openslide-python/boxes.tiff",
	"demo/series/boxes_0.dcm":     "openslide-python/boxes_0.dcm",
	"demo/series/boxes_1.dcm":     "openslide-python/boxes_1.dcm",
	"demo/jpeg.dicom":             "wsi-to-dicom-converter/jpeg.dicom",
	"demo/plain/sample.jpg":       "libvips/sample.jpg",
	"demo/plain/world.jp2":        "libvips/world.jp2",
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	srv := s3test.Start(t, bucket)
	for key, rel := range images {
		srv.Upload(t, bucket, key, testdata(t, rel))
	}
	srv.Env(t)
	return &fixture{srv: srv}
}

// open returns Slides over the bucket with fresh caches and a counting
// transport.
func (f *fixture) open(t *testing.T, blockBytes, fileBytes int64) *objstore.Slides {
	t.Helper()
	cfg, err := objstore.ParseURL("s3://" + bucket + "/demo?endpoint=http://" + f.srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	f.count = &countingTransport{base: http.DefaultTransport}
	cfg.Transport = f.count
	b, err := objstore.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sl := &objstore.Slides{Bucket: b, Blocks: objstore.NewBlockCache(blockBytes, 0)}
	if fileBytes > 0 {
		if sl.Files, err = objstore.NewFileCache(t.TempDir(), fileBytes); err != nil {
			t.Fatal(err)
		}
	}
	return sl
}

// sameSource asserts that two sources describe and serve the same image:
// metadata, internal metadata, associated images and every stored tile
// byte for byte.
func sameSource(t *testing.T, name string, disk, s3 tilesource.Source) {
	t.Helper()
	js := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if a, b := js(disk.Info()), js(s3.Info()); a != b {
		t.Fatalf("%s: info differs:\ndisk %s\ns3   %s", name, a, b)
	}
	if a, b := js(disk.InternalMetadata()), js(s3.InternalMetadata()); a != b {
		t.Errorf("%s: internal metadata differs:\ndisk %.300s\ns3   %.300s", name, a, b)
	}
	if a, b := js(disk.AssociatedNames()), js(s3.AssociatedNames()); a != b {
		t.Errorf("%s: associated %s vs %s", name, a, b)
	}
	for _, an := range disk.AssociatedNames() {
		a, err1 := disk.Associated(an)
		b, err2 := s3.Associated(an)
		if err1 != nil || err2 != nil || a == nil || b == nil || !bytes.Equal(a.Pix, b.Pix) {
			t.Errorf("%s: associated %s differs (%v, %v)", name, an, err1, err2)
		}
	}
	info := disk.Info()
	ctx := context.Background()
	tiles := 0
	for z := 0; z < info.Levels; z++ {
		if !info.Stored[z] {
			continue
		}
		cols, rows := info.TileCount(z)
		for y := 0; y < rows; y++ {
			for x := 0; x < cols; x++ {
				a, err1 := disk.ReadTile(ctx, 0, z, x, y)
				b, err2 := s3.ReadTile(ctx, 0, z, x, y)
				if err1 != nil || err2 != nil {
					t.Fatalf("%s: tile %d/%d/%d: disk %v, s3 %v", name, z, x, y, err1, err2)
				}
				pa, err1 := a.Image()
				pb, err2 := b.Image()
				if err1 != nil || err2 != nil {
					t.Fatalf("%s: tile %d/%d/%d pixels: %v %v", name, z, x, y, err1, err2)
				}
				if !bytes.Equal(a.Encoded, b.Encoded) || a.Encoding != b.Encoding || !bytes.Equal(pa.Pix, pb.Pix) {
					t.Fatalf("%s: tile %d/%d/%d differs", name, z, x, y)
				}
				tiles++
			}
		}
	}
	if tiles == 0 {
		t.Fatalf("%s: no tile compared", name)
	}
}

// TestObjectStorage runs the object storage tests against one real
// SeaweedFS server; the object replaced last.
func TestObjectStorage(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		name string
		fn   func(*testing.T, *fixture)
	}{
		{"MatchesDisk", testS3MatchesDisk},
		{"GETsPerTile", testGETsPerTile},
		{"FormatsNeedingAFile", testFormatsNeedingAFile},
		{"FileCacheEvicts", testFileCacheEvicts},
		{"FileCacheStarterLeaves", testFileCacheStarterLeaves},
		{"ReplacedObject", testReplacedObject},
	} {
		f.slides = f.open(t, 64<<20, 64<<20)
		t.Run(c.name, func(t *testing.T) { c.fn(t, f) })
	}
}

// testS3MatchesDisk: every image served from object storage has the same
// metadata, associated images and tile bytes as the same file on disk:
// TIFFs and DICOM read in place, plain images through a local copy.
func testS3MatchesDisk(t *testing.T, f *fixture) {
	ctx := context.Background()
	for _, key := range []string{"CMU-1-Small-Region.svs", "boxes.tiff", "jpeg.dicom", "plain/sample.jpg", "plain/world.jp2"} {
		t.Run(key, func(t *testing.T) {
			disk, err := detect.Open(testdata(t, images["demo/"+key]))
			if err != nil {
				t.Fatal(err)
			}
			defer disk.Close()
			s3, err := f.slides.Open(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			defer s3.Close()
			sameSource(t, key, disk, s3)
		})
	}
	t.Run("series", func(t *testing.T) {
		disk, err := dicom.OpenSeries([]string{testdata(t, "openslide-python/boxes_0.dcm"), testdata(t, "openslide-python/boxes_1.dcm")})
		if err != nil {
			t.Fatal(err)
		}
		defer disk.Close()
		s3, err := f.slides.OpenSeries(ctx, []string{"series/boxes_0.dcm", "series/boxes_1.dcm"})
		if err != nil {
			t.Fatal(err)
		}
		defer s3.Close()
		sameSource(t, "series", disk, s3)
		if uid := f.slides.SeriesUID(mustStat(t, f.slides, "series/boxes_1.dcm")); uid == "" ||
			uid != f.slides.SeriesUID(mustStat(t, f.slides, "series/boxes_0.dcm")) {
			t.Errorf("series UIDs %q", uid)
		}
	})
	if f.slides.Files.Bytes() == 0 {
		t.Error("plain images were not copied to the local cache")
	}
}

func mustStat(t *testing.T, sl *objstore.Slides, key string) objstore.Object {
	t.Helper()
	o, err := sl.Bucket.Stat(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// testGETsPerTile: opening an Aperio slide costs a few ranged GETs (its
// header and directories through the block cache), each cold tile at most
// one GET, a warm one none; nothing downloads the whole object.
func testGETsPerTile(t *testing.T, f *fixture) {
	ctx := context.Background()
	before := f.count.gets.Load()
	src, err := f.slides.Open(ctx, "CMU-1-Small-Region.svs")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	openGETs := f.count.gets.Load() - before
	// Header, IFD chain and tag arrays of four directories fit in a few
	// 64 KiB blocks.
	if openGETs < 1 || openGETs > 6 {
		t.Errorf("open took %d GETs, want 1 to 6", openGETs)
	}
	info := src.Info()
	z := info.Levels - 1
	cols, rows := info.TileCount(z)
	var cold int64
	for y := 0; y < rows; y++ {
		for x := 0; x < cols; x++ {
			n := f.count.gets.Load()
			if _, err := src.ReadTile(ctx, 0, z, x, y); err != nil {
				t.Fatal(err)
			}
			d := f.count.gets.Load() - n
			if d > 1 {
				t.Fatalf("tile %d,%d took %d GETs", x, y, d)
			}
			cold += d
		}
	}
	if cold == 0 {
		t.Error("no tile was read from object storage")
	}
	t.Logf("open: %d GETs; %d tiles: %d GETs", openGETs, cols*rows, cold)
	if int(cold) > cols*rows {
		t.Errorf("%d GETs for %d tiles", cold, cols*rows)
	}
}

// testReplacedObject: replacing an object gives it a new ETag and version,
// and a reader of the old version fails with ErrReplaced rather than
// mixing bytes.
func testReplacedObject(t *testing.T, f *fixture) {
	ctx := context.Background()
	old := mustStat(t, f.slides, "boxes.tiff")
	objs, err := f.slides.Bucket.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, o := range objs {
		if o.Key == "boxes.tiff" {
			found = o.ETag == old.ETag && o.Size == old.Size
		}
	}
	if !found || len(objs) != len(images) {
		t.Fatalf("listing %d objects, boxes.tiff as stat: %v", len(objs), found)
	}
	r := f.slides.Bucket.NewReader(old, nil)
	f.srv.Upload(t, bucket, "demo/boxes.tiff", testdata(t, "libvips/world.jp2"))
	cur := mustStat(t, f.slides, "boxes.tiff")
	if cur.ETag == old.ETag || cur.Version() == old.Version() {
		t.Fatalf("replaced object kept ETag %s / version %s", cur.ETag, cur.Version())
	}
	if _, err := r.ReadAt(make([]byte, 16), 0); !errors.Is(err, objstore.ErrReplaced) {
		t.Errorf("old version read: %v, want ErrReplaced", err)
	}
	// The new content opens as what it now is (a JPEG 2000, through a
	// local copy).
	src, err := f.slides.Open(ctx, "boxes.tiff")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if w := src.Info().SizeX; w != 800 {
		t.Errorf("replaced object opened with width %d, want 800", w)
	}
}

// testFormatsNeedingAFile: without a local cache, an image only libvips or
// OpenSlide reads is refused with a message that says why; an object larger
// than the cache is refused too.
func testFormatsNeedingAFile(t *testing.T, f *fixture) {
	ctx := context.Background()
	sl := f.open(t, 1<<20, 0)
	_, err := sl.Open(ctx, "plain/sample.jpg")
	var te *tilesource.Error
	if !errors.As(err, &te) || te.Status != http.StatusBadRequest ||
		te.Message != "sample.jpg: only OpenSlide or libvips read this format, and they need a local file: set a local slide cache to serve it from object storage" {
		t.Errorf("no local cache: %v", err)
	}
	sl = f.open(t, 1<<20, 1000)
	_, err = sl.Open(ctx, "plain/sample.jpg")
	if !errors.As(err, &te) || te.Status != http.StatusBadRequest ||
		te.Message != "sample.jpg: this format needs a local copy and the object (22951 bytes) is larger than the local slide cache (1000 bytes)" {
		t.Errorf("small local cache: %v", err)
	}
	if _, err = sl.Open(ctx, "missing.svs"); !errors.As(err, &te) || te.Status != http.StatusNotFound {
		t.Errorf("missing object: %v", err)
	}
}

// testFileCacheEvicts: copies beyond the budget are deleted least recently
// used first, and a cache directory reopened keeps what fits.
func testFileCacheEvicts(t *testing.T, f *fixture) {
	ctx := context.Background()
	dir := t.TempDir()
	fc, err := objstore.NewFileCache(dir, 90000)
	if err != nil {
		t.Fatal(err)
	}
	jpg, jp2 := mustStat(t, f.slides, "plain/sample.jpg"), mustStat(t, f.slides, "plain/world.jp2")
	p1, err := fc.Path(ctx, f.slides.Bucket, jpg)
	if err != nil || filepath.Base(p1) != "sample.jpg" {
		t.Fatalf("copy %s: %v", p1, err)
	}
	disk, _ := os.ReadFile(testdata(t, "libvips/sample.jpg"))
	if got, _ := os.ReadFile(p1); !bytes.Equal(got, disk) {
		t.Fatal("copy differs from the object")
	}
	if _, err := fc.Path(ctx, f.slides.Bucket, jp2); err != nil {
		t.Fatal(err)
	}
	if fc.Bytes() != jpg.Size+jp2.Size {
		t.Errorf("bytes %d", fc.Bytes())
	}
	big := mustStat(t, f.slides, "jpeg.dicom")
	if _, err := fc.Path(ctx, f.slides.Bucket, big); err == nil {
		t.Fatal("object larger than the cache accepted")
	}
	// Reopened with room for both, both are kept. sample.jpg is then read
	// again, so when the cache is reopened with room for one, world.jp2
	// (written last, used least recently) is the copy that goes.
	fc2, err := objstore.NewFileCache(dir, jp2.Size+jpg.Size)
	if err != nil || fc2.Bytes() != jpg.Size+jp2.Size {
		t.Fatalf("reopened: %d %v", fc2.Bytes(), err)
	}
	if p, err := fc2.Path(ctx, f.slides.Bucket, jpg); err != nil || p != p1 {
		t.Fatalf("reading the copy again: %s %v", p, err)
	}
	room := max(jpg.Size, jp2.Size)
	fc3, _ := objstore.NewFileCache(dir, room)
	if fc3.Bytes() != jpg.Size {
		t.Errorf("after shrinking to %d: %d bytes, want sample.jpg's %d", room, fc3.Bytes(), jpg.Size)
	}
	if _, err := os.Stat(p1); err != nil {
		t.Errorf("most recently used copy gone: %v", err)
	}
}

// gatedTransport holds object GETs until gate is closed (or the request's
// context ends).
type gatedTransport struct {
	gate chan struct{}
	base http.RoundTripper
}

func (g *gatedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet {
		select {
		case <-g.gate:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	return g.base.RoundTrip(r)
}

// testFileCacheStarterLeaves: a caller waiting for a copy another one
// started gets it even when the starter goes away mid-download.
func testFileCacheStarterLeaves(t *testing.T, f *fixture) {
	cfg, err := objstore.ParseURL("s3://" + bucket + "/demo?endpoint=http://" + f.srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	gated := &gatedTransport{gate: make(chan struct{}), base: http.DefaultTransport}
	cfg.Transport = gated
	b, err := objstore.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fc, err := objstore.NewFileCache(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	jpg := mustStat(t, f.slides, "plain/sample.jpg")
	var pathB string
	errA, errB := leavetest.FirstCallerLeaves(func() { close(gated.gate) },
		func(ctx context.Context) error {
			_, err := fc.Path(ctx, b, jpg)
			return err
		},
		func(ctx context.Context) (err error) {
			pathB, err = fc.Path(ctx, b, jpg)
			return err
		})
	if !errors.Is(errA, context.Canceled) {
		t.Errorf("starter: %v, want context.Canceled", errA)
	}
	if errB != nil {
		t.Fatalf("waiter, starter gone: %v", errB)
	}
	got, _ := os.ReadFile(pathB)
	if disk, _ := os.ReadFile(testdata(t, "libvips/sample.jpg")); !bytes.Equal(got, disk) {
		t.Fatal("copy differs from the object")
	}
}

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		in   string
		want objstore.Config
		err  string
	}{
		{in: "s3://b/p/q?endpoint=http://127.0.0.1:9000&region=eu", want: objstore.Config{Bucket: "b", Prefix: "p/q/", Endpoint: "127.0.0.1:9000", Region: "eu"}},
		{in: "s3://b", want: objstore.Config{Bucket: "b", Endpoint: "s3.amazonaws.com", Secure: true}},
		{in: "s3://b/?endpoint=minio.local:9000", want: objstore.Config{Bucket: "b", Endpoint: "minio.local:9000", Secure: true}},
		{in: "s3://key:secret@b/", err: "object storage URL must not hold credentials: use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or a credentials file"},
		{in: "s3://b/?endpoint=ftp://x", err: `object storage endpoint "ftp://x": want host:port or an http(s) URL`},
		{in: "s3://b/?secret=x", err: `object storage URL: unknown parameter "secret" (endpoint, region)`},
		{in: "/srv/slides", err: "object storage URL must look like s3://bucket/prefix?endpoint=host:port"},
	} {
		got, err := objstore.ParseURL(c.in)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%s: error %v, want %s", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %+v %v, want %+v", c.in, got, err, c.want)
		}
	}
}
