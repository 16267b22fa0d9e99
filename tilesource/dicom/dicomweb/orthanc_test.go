package dicomweb

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/dicom"
	"github.com/tileserver/tileserver/tilesource/dicom/dicomweb/orthanctest"
)

func td(name string) string {
	return filepath.Join("..", "..", "..", "..", "shared", "testdata", name)
}

// counter counts the frame requests that go through it.
type counter struct {
	frames atomic.Int64
	other  atomic.Int64
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.Contains(r.URL.Path, "/frames/") {
		c.frames.Add(1)
	} else {
		c.other.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// tileCache is the smallest cache in front of ReadTile: what the pipeline's
// tile cache does for unstyled tiles.
type tileCache struct {
	src   tilesource.Source
	tiles map[[4]int]*tilesource.Tile
}

func (c *tileCache) read(ctx context.Context, frame, z, x, y int) (*tilesource.Tile, error) {
	k := [4]int{frame, z, x, y}
	if t, ok := c.tiles[k]; ok {
		return t, nil
	}
	t, err := c.src.ReadTile(ctx, frame, z, x, y)
	if err == nil {
		c.tiles[k] = t
	}
	return t, err
}

func seriesOf(t *testing.T, s tilesource.Source) (study, series string) {
	m := s.InternalMetadata()["dicom"].(map[string]any)
	return m["StudyInstanceUID"].(string), m["SeriesInstanceUID"].(string)
}

func TestOrthanc(t *testing.T) {
	o := orthanctest.Start(t)
	cases := []struct {
		name  string
		files []string
	}{
		{"jpeg passthrough, empty BOT", []string{"wsi-to-dicom-converter/jpeg.dicom"}},
		{"uncompressed", []string{"wsi-to-dicom-converter/raw.dicom"}},
		{"two-file series", []string{"openslide-python/boxes_0.dcm", "openslide-python/boxes_1.dcm"}},
		{"jpeg-ls", []string{"highdicom/sm_image_jpegls.dcm"}},
		{"16-bit grey", []string{"highdicom/sm_image_grayscale.dcm"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var paths []string
			for _, f := range c.files {
				paths = append(paths, td(f))
				o.Upload(t, td(f))
			}
			local, err := dicom.OpenSeries(paths)
			if err != nil {
				t.Fatal(err)
			}
			defer local.Close()
			study, series := seriesOf(t, local)
			cnt := &counter{}
			client := &http.Client{Transport: cnt}
			remote, err := Series{BaseURL: o.DICOMweb(), StudyUID: study, SeriesUID: series}.Open(t.Context(), client)
			if err != nil {
				t.Fatal(err)
			}
			defer remote.Close()
			compareInfo(t, local.Info(), remote.Info())
			if fmt.Sprint(local.AssociatedNames()) != fmt.Sprint(remote.AssociatedNames()) {
				t.Errorf("associated %v vs %v", local.AssociatedNames(), remote.AssociatedNames())
			}
			for _, n := range local.AssociatedNames() {
				a, err1 := local.Associated(n)
				b, err2 := remote.Associated(n)
				if err1 != nil || err2 != nil || !sameImage(a, b) {
					t.Errorf("associated %s differs: %v %v", n, err1, err2)
				}
			}
			if cnt.frames.Load() != int64(len(local.AssociatedNames())) {
				t.Errorf("opening fetched %d frames", cnt.frames.Load())
			}
			cnt.frames.Store(0)

			cache := &tileCache{src: remote, tiles: map[[4]int]*tilesource.Tile{}}
			info := local.Info()
			stored := 0
			for pass := range 2 {
				for z := range info.Levels {
					if !info.Stored[z] {
						continue
					}
					cols, rows := info.TileCount(z)
					for y := range rows {
						for x := range cols {
							if pass == 0 {
								stored++
							}
							lt, err := local.ReadTile(t.Context(), 0, z, x, y)
							if err != nil {
								t.Fatal(err)
							}
							rt, err := cache.read(t.Context(), 0, z, x, y)
							if err != nil {
								t.Fatalf("remote tile %d/%d/%d: %v", z, x, y, err)
							}
							compareTile(t, lt, rt, z, x, y)
						}
					}
				}
				t.Logf("pass %d: %d tiles, %d frame requests", pass, stored, cnt.frames.Load())
				if got := cnt.frames.Load(); got != int64(stored) {
					t.Errorf("pass %d: %d frame requests for %d tiles", pass, got, stored)
				}
			}
		})
	}
	t.Run("errors", func(t *testing.T) {
		_, err := Open(t.Context(), nil, o.DICOMweb(), "1.2.3", "4.5.6")
		var te *tilesource.Error
		if !errors.As(err, &te) || te.Status != 404 {
			t.Errorf("unknown series: %v", err)
		}
		o.Upload(t, td("libvips/dicom_test_image.dcm"))
		// The file's study and series UIDs (dcmdump).
		_, err = Open(t.Context(), nil, o.DICOMweb(), "65.2.840.10008.20.4.56.112.48.49.524320.10342861.526813.461",
			"65.2.840.10008.20.4.56.112.48.49.48.48.524320.10342861.526813.46")
		if !errors.As(err, &te) || te.Status != 400 ||
			te.Message != "DICOMweb series: not a whole-slide image (SOP class Nuclear Medicine Image Storage, 1.2.840.10008.5.1.4.1.1.20)" {
			t.Errorf("nuclear medicine series: %v", err)
		}
	})
}

func compareInfo(t *testing.T, a, b *tilesource.Info) {
	t.Helper()
	if a.SizeX != b.SizeX || a.SizeY != b.SizeY || a.TileWidth != b.TileWidth || a.TileHeight != b.TileHeight ||
		a.Levels != b.Levels || fmt.Sprint(a.Stored) != fmt.Sprint(b.Stored) || a.Bands != b.Bands ||
		a.Format != b.Format || a.SourceName != b.SourceName || !bytes.Equal(a.ICCProfile, b.ICCProfile) ||
		(a.MMX == nil) != (b.MMX == nil) ||
		(a.MMX != nil && *a.MMX != *b.MMX) || a.FrameCount() != b.FrameCount() {
		t.Errorf("info differs:\nfile %+v\nweb  %+v", a, b)
	}
}

func compareTile(t *testing.T, a, b *tilesource.Tile, z, x, y int) {
	t.Helper()
	if a.Encoding != b.Encoding {
		t.Fatalf("tile %d/%d/%d: encoding %q vs %q", z, x, y, a.Encoding, b.Encoding)
	}
	if a.Encoded != nil {
		if !bytes.Equal(a.Encoded, b.Encoded) {
			t.Errorf("tile %d/%d/%d: passthrough bytes differ (%d vs %d)", z, x, y, len(a.Encoded), len(b.Encoded))
		}
		return
	}
	ia, err1 := a.Image()
	ib, err2 := b.Image()
	if err1 != nil || err2 != nil || !sameImage(ia, ib) {
		t.Errorf("tile %d/%d/%d: pixels differ (%v, %v)", z, x, y, err1, err2)
	}
}

func sameImage(a, b *encode.Image) bool {
	return a != nil && b != nil && a.Width == b.Width && a.Height == b.Height && a.Bands == b.Bands &&
		a.Format == b.Format && bytes.Equal(a.Pix, b.Pix)
}

// memCache is the smallest Cache: a map.
type memCache struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (c *memCache) GetOrProduce(ctx context.Context, key string, produce func(context.Context) ([]byte, error)) ([]byte, string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m[key]; ok {
		return v, "hit-memory", nil
	}
	v, err := produce(ctx)
	if err == nil {
		c.m[key] = v
	}
	return v, "miss", err
}

// TestArchiveOrthanc lists a real Orthanc that requires Basic
// authentication as a configured archive, and opens its series twice
// through a metadata cache: the second open sends no request.
func TestArchiveOrthanc(t *testing.T) {
	o := orthanctest.StartWith(t, orthanctest.Options{User: "wsi", Password: "pw:with colon"})
	for _, f := range []string{"wsi-to-dicom-converter/jpeg.dicom", "highdicom/sm_image.dcm", "libvips/dicom_test_image.dcm"} {
		o.Upload(t, td(f))
	}
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("wsi:pw:with colon"))
	archives, err := NewArchives([]Archive{{Name: "pacs", URL: o.DICOMweb(), Authorization: auth}, {Name: "anon", URL: o.DICOMweb()}})
	if err != nil {
		t.Fatal(err)
	}
	cnt := &counter{}
	opt := OpenOptions{Client: &http.Client{Transport: cnt}, Cache: &memCache{m: map[string][]byte{}}}

	var te *tilesource.Error
	if _, _, err := archives.ListSeries(t.Context(), "anon", opt); !errors.As(err, &te) || te.Status != 502 ||
		te.Message != "DICOMweb server: status 401" {
		t.Errorf("without credentials: %v", err)
	}
	found, skipped, err := archives.ListSeries(t.Context(), "pacs", opt)
	if err != nil || len(skipped) != 0 {
		t.Fatalf("list: %v %v", err, skipped)
	}
	// The nuclear medicine series is not SM; sorted by study UID; the
	// highdicom study has a date and time.
	if len(found) != 2 || found[0].SeriesDescription != "test13" || found[1].SeriesDescription != "" ||
		found[0].Archive != "pacs" || found[0].Version == "" || found[0].Version == found[1].Version ||
		!found[1].StudyTime.Equal(time.Date(2019, 6, 4, 10, 10, 0, 0, time.UTC)) {
		t.Fatalf("found %+v", found)
	}
	for _, si := range found {
		opt.Version = si.Version
		loc := si.Locator()
		src, err := archives.Open(t.Context(), loc, opt)
		if err != nil {
			t.Fatal(err)
		}
		src.Close()
		before := cnt.other.Load()
		src, err = archives.Open(t.Context(), loc, opt)
		if err != nil {
			t.Fatal(err)
		}
		if n := cnt.other.Load() - before; n != 0 {
			t.Errorf("%s: reopening sent %d metadata requests", si.SeriesUID, n)
		}
		m := src.InternalMetadata()["dicom"].(map[string]any)
		if m["SeriesInstanceUID"] != si.SeriesUID {
			t.Errorf("opened %v for %s", m["SeriesInstanceUID"], si.SeriesUID)
		}
		src.Close()
	}
}

// TestArchiveBearer reaches Orthanc through a gateway that wants a bearer
// token, as cloud DICOMweb services do: the archive's token opens the
// gateway, no token is a 502 naming the status.
func TestArchiveBearer(t *testing.T) {
	o := orthanctest.Start(t)
	o.Upload(t, td("highdicom/sm_image.dcm"))
	origin, err := url.Parse(o.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(origin)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok-42" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer gw.Close()
	archives, err := NewArchives([]Archive{{Name: "cloud", URL: gw.URL + "/dicom-web", Authorization: "Bearer tok-42"},
		{Name: "anon", URL: gw.URL + "/dicom-web"}})
	if err != nil {
		t.Fatal(err)
	}
	found, _, err := archives.ListSeries(t.Context(), "cloud", OpenOptions{})
	if err != nil || len(found) != 1 {
		t.Fatalf("list: %v %v", found, err)
	}
	src, err := archives.Open(t.Context(), found[0].Locator(), OpenOptions{Version: found[0].Version})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.ReadTile(t.Context(), 0, src.Info().Levels-1, 0, 0); err != nil {
		t.Errorf("tile through the gateway: %v", err)
	}
	src.Close()
	var te *tilesource.Error
	anon := found[0].Series
	anon.Archive = "anon"
	if _, err := archives.Open(t.Context(), anon.Locator(), OpenOptions{}); !errors.As(err, &te) || te.Status != 502 ||
		te.Message != "DICOMweb server: status 401" {
		t.Errorf("without the token: %v", err)
	}
}
