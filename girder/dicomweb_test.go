package girder

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tileserver/tileserver/girder/store"
	"github.com/tileserver/tileserver/tilecache"
	"github.com/tileserver/tileserver/tilesource/dicom/dicomweb/orthanctest"
	"github.com/tileserver/tileserver/tilesource/pipeline"
)

// frameCounter counts the WADO-RS frame requests the pipeline makes.
type frameCounter struct {
	next   http.RoundTripper
	frames atomic.Int64
}

func (c *frameCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.Contains(r.URL.Path, "/frames/") {
		c.frames.Add(1)
	}
	return c.next.RoundTrip(r)
}

// newEnvWith is newEnv over the given slide files (destination →
// testdata path) and a pipeline that reaches DICOMweb servers with client.
func newEnvWith(t testing.TB, files map[string]string, client *http.Client) *env {
	t.Helper()
	base := t.TempDir()
	e := &env{t: t, data: filepath.Join(base, "data"), slides: filepath.Join(base, "slides")}
	if err := os.MkdirAll(e.data, 0o755); err != nil {
		t.Fatal(err)
	}
	for dst, src := range files {
		copyFile(t, filepath.Join(testdata, src), filepath.Join(e.slides, dst))
	}
	st, err := store.Open(e.data, e.slides)
	if err != nil {
		t.Fatal(err)
	}
	tiles, err := tilecache.New(tilecache.Config{Mode: tilecache.ModeMemory, MemoryBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	sources := tilecache.NewSources(tilecache.SourcesConfig{MemoryBytes: 256 << 20})
	pl, err := pipeline.New(pipeline.Config{Tiles: tiles, Sources: sources, HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	e.store, e.tiles = st, tiles
	e.srv = New(Config{AdminToken: testAdminToken}, pl, st)
	e.http = httptest.NewServer(e.srv.Handler())
	t.Cleanup(func() {
		e.http.Close()
		tiles.Close()
		sources.Close()
		st.Close()
	})
	if _, err := e.srv.Import(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	return e
}

// postJSON sends an admin POST with a JSON body.
func (e *env) postJSON(path string, body any, token string) resp {
	e.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		e.t.Fatal(err)
	}
	h := map[string]string{"Content-Type": "application/json"}
	if token != "" {
		h["Girder-Token"] = token
	}
	return e.do(http.MethodPost, path, h, bytes.NewReader(b))
}

// dicomFiles are the slide-root files of the DICOMweb test and the same
// files uploaded to Orthanc.
var dicomFiles = map[string]string{
	"wsi/jpeg.dicom":    "wsi-to-dicom-converter/jpeg.dicom",
	"boxes/boxes_0.dcm": "openslide-python/boxes_0.dcm",
	"boxes/boxes_1.dcm": "openslide-python/boxes_1.dcm",
	"nm/nm.dcm":         "libvips/dicom_test_image.dcm",
}

// TestDICOMwebAgainstOrthanc imports series held by a real Orthanc through
// POST large_image/dicomweb and checks that every route serves what the
// same files imported from the slide root serve, that each frame crosses
// the network once, and the error cases.
func TestDICOMwebAgainstOrthanc(t *testing.T) {
	o := orthanctest.Start(t)
	for _, src := range dicomFiles {
		o.Upload(t, filepath.Join(testdata, src))
	}
	base := pipeline.DefaultHTTPClient()
	cnt := &frameCounter{next: base.Transport}
	// Short enough for the stalled-server case below, ample on loopback.
	client := &http.Client{Transport: cnt, Timeout: 3 * time.Second}
	e := newEnvWith(t, dicomFiles, client)

	if _, ok := e.store.Item(store.ID("item", "nm/nm.dcm")); ok {
		t.Error("the nuclear medicine file was imported")
	}
	// The two-file series is one item with both files, each downloadable.
	boxesID := store.ID("item", "boxes/boxes_0.dcm")
	var files []map[string]any
	e.get("/api/v1/item/"+boxesID+"/files").json(t, &files)
	if len(files) != 2 || files[0]["name"] != "boxes_0.dcm" || files[1]["name"] != "boxes_1.dcm" {
		t.Fatalf("files of the series item: %v", files)
	}
	for i, name := range []string{"boxes_0.dcm", "boxes_1.dcm"} {
		r := e.get(fmt.Sprintf("/api/v1/file/%s/download", files[i]["_id"]))
		want, _ := os.ReadFile(filepath.Join(testdata, "openslide-python", name))
		if r.status != 200 || !bytes.Equal(r.body, want) || r.header.Get("Content-Type") != "application/dicom" {
			t.Errorf("download %s: %d, %d bytes", name, r.status, len(r.body))
		}
	}
	if _, ok := e.store.Item(store.ID("item", "boxes/boxes_1.dcm")); ok {
		t.Error("the second instance has an item of its own")
	}

	remoteIDs := map[string]string{}
	for _, rel := range []string{"wsi/jpeg.dicom", "boxes/boxes_0.dcm"} {
		t.Run(rel, func(t *testing.T) {
			localID := store.ID("item", rel)
			var im map[string]any
			e.get("/api/v1/item/"+localID+"/tiles/internal_metadata").json(t, &im)
			dm, _ := im["dicom"].(map[string]any)
			study, _ := dm["StudyInstanceUID"].(string)
			series, _ := dm["SeriesInstanceUID"].(string)
			if study == "" || series == "" {
				t.Fatalf("internal metadata of the local item: %v", im)
			}
			req := map[string]any{"url": o.DICOMweb(), "study": study, "series": series, "name": "remote " + rel}
			r := e.postJSON("/api/v1/large_image/dicomweb", req, testAdminToken)
			if r.status != 200 {
				t.Fatalf("import: %d %s", r.status, r.body)
			}
			var item map[string]any
			r.json(t, &item)
			li, _ := item["largeImage"].(map[string]any)
			remoteID, _ := item["_id"].(string)
			remoteIDs[rel] = remoteID
			if li["sourceName"] != "dicomweb" || item["name"] != "remote "+rel || item["folderId"] != store.ID("folder", "") ||
				strings.Contains(string(r.body), "127.0.0.1") {
				t.Fatalf("imported item %s", r.body)
			}
			// Importing again gives the same item and version.
			before, _ := e.store.Item(remoteID)
			if r := e.postJSON("/api/v1/large_image/dicomweb", req, testAdminToken); r.status != 200 {
				t.Fatalf("second import: %d %s", r.status, r.body)
			}
			if after, _ := e.store.Item(remoteID); after.Version != before.Version || !after.Created.Equal(before.Created) {
				t.Errorf("re-import changed the item: %+v vs %+v", after, before)
			}
			var listed []map[string]any
			e.get("/api/v1/item?text=remote").json(t, &listed)
			if !containsID(listed, remoteID) {
				t.Errorf("item list lacks the remote item: %v", listed)
			}

			local := func(route string) resp { return e.get("/api/v1/item/" + localID + "/tiles" + route) }
			remote := func(route string) resp { return e.get("/api/v1/item/" + remoteID + "/tiles" + route) }
			var lm, rm map[string]any
			local("").json(t, &lm)
			remote("").json(t, &rm)
			if !reflect.DeepEqual(lm, rm) {
				t.Errorf("metadata differs:\nfile %v\nweb  %v", lm, rm)
			}
			var rim map[string]any
			remote("/internal_metadata").json(t, &rim)
			// Orthanc's metadata has no file meta group, so the remote
			// instances' transfer syntax is unknown until a frame comes.
			for _, m := range []map[string]any{im, rim} {
				for _, in := range m["dicom"].(map[string]any)["instances"].([]any) {
					delete(in.(map[string]any), "TransferSyntaxUID")
				}
			}
			if !reflect.DeepEqual(im["dicom"], rim["dicom"]) {
				t.Errorf("internal metadata differs:\nfile %v\nweb  %v", im["dicom"], rim["dicom"])
			}

			// Every tile of every level, twice. Both passes must equal the
			// file's tiles byte for byte (the JPEG frames pass through; the
			// rest is the same pixels through the same encoder); only the
			// first may fetch frames, and the second is all cache hits.
			levels := int(lm["levels"].(float64))
			tw, th := lm["tileWidth"].(float64), lm["tileHeight"].(float64)
			sx, sy := lm["sizeX"].(float64), lm["sizeY"].(float64)
			cnt.frames.Store(0)
			tiles := 0
			for pass := range 2 {
				for z := range levels {
					scale := float64(int(1) << (levels - 1 - z))
					cols, rows := ceilDiv(sx/scale, tw), ceilDiv(sy/scale, th)
					for y := range rows {
						for x := range cols {
							route := fmt.Sprintf("/zxy/%d/%d/%d", z, x, y)
							lr, rr := local(route), remote(route)
							if lr.status != 200 || rr.status != 200 {
								t.Fatalf("%s: file %d, web %d %s", route, lr.status, rr.status, rr.body)
							}
							if !bytes.Equal(lr.body, rr.body) {
								t.Errorf("%s: tiles differ (%d vs %d bytes)", route, len(lr.body), len(rr.body))
							}
							status := rr.header.Get("X-Tile-Cache")
							// In the first pass a stored tile may already be
							// cached, read as a child of a lower level.
							if pass == 0 {
								tiles++
							} else if status != "hit-memory" {
								t.Errorf("%s second pass: X-Tile-Cache %q", route, status)
							}
						}
					}
				}
				got := cnt.frames.Load()
				t.Logf("pass %d: %d tiles, %d frame requests in total", pass, tiles, got)
				if pass == 0 && (got == 0 || got > int64(tiles)) {
					t.Errorf("first pass: %d frame requests for %d tiles", got, tiles)
				}
				if pass == 1 && got != 0 {
					t.Errorf("second pass: %d frame requests", got)
				}
				cnt.frames.Store(0)
			}

			// Thumbnails, regions, DeepZoom, associated images.
			for _, route := range []string{"/thumbnail?width=64", "/thumbnail?encoding=PNG",
				"/region?left=3&top=5&right=15&bottom=14&encoding=PNG", "/region?magnification=0.5",
				"/dzi_files/2/0_0.jpeg", "/pixel?left=7&top=9"} {
				lr, rr := local(route), remote(route)
				if lr.status != 200 || rr.status != 200 || !bytes.Equal(lr.body, rr.body) {
					t.Errorf("%s: file %d (%d bytes), web %d (%d bytes) %s", route, lr.status, len(lr.body),
						rr.status, len(rr.body), rr.body)
				}
			}
			var ln, rn []string
			local("/images").json(t, &ln)
			remote("/images").json(t, &rn)
			if fmt.Sprint(ln) != fmt.Sprint(rn) {
				t.Errorf("associated images: file %v, web %v", ln, rn)
			}
			for _, n := range ln {
				lr, rr := local("/images/"+n+"?encoding=PNG"), remote("/images/"+n+"?encoding=PNG")
				if lr.status != 200 || !bytes.Equal(lr.body, rr.body) {
					t.Errorf("associated %s: file %d, web %d", n, lr.status, rr.status)
				}
			}
		})
	}

	t.Run("reference decode", func(t *testing.T) {
		// Orthanc renders a frame with its own JPEG decoder: the
		// full-resolution tiles served through DICOMweb must match it.
		remoteID := remoteIDs["wsi/jpeg.dicom"]
		if remoteID == "" {
			t.Skip("the import failed above")
		}
		var md map[string]any
		e.get("/api/v1/item/"+remoteID+"/tiles").json(t, &md)
		z := int(md["levels"].(float64)) - 1
		cols := ceilDiv(md["sizeX"].(float64), md["tileWidth"].(float64))
		inst := orthancInstance(t, o.URL, "957")
		for _, xy := range [][2]int{{0, 0}, {3, 2}, {1, 1}} {
			r := e.get(fmt.Sprintf("/api/v1/item/%s/tiles/zxy/%d/%d/%d?encoding=PNG", remoteID, z, xy[0], xy[1]))
			got, _ := decode(t, r)
			ref := orthancFrame(t, o.URL, inst, xy[1]*cols+xy[0])
			d := meanAbsDiff(got, ref)
			t.Logf("tile %v: mean difference %.3f from Orthanc's decode", xy, d)
			if d > 1.5 {
				t.Errorf("tile %v: mean difference %.2f from Orthanc's decode", xy, d)
			}
			// The comparison tells tiles apart.
			if other := orthancFrame(t, o.URL, inst, (xy[1]*cols+xy[0]+1)%12); meanAbsDiff(got, other) < 5 {
				t.Errorf("tile %v matches a neighbouring frame too", xy)
			}
		}
	})

	t.Run("errors", func(t *testing.T) {
		good := map[string]any{"url": o.DICOMweb(), "study": "1.2.3", "series": "4.5.6"}
		// with copies good with key/value pairs replaced.
		with := func(kv ...any) map[string]any {
			m := map[string]any{}
			for a, b := range good {
				m[a] = b
			}
			for i := 0; i+1 < len(kv); i += 2 {
				m[kv[i].(string)] = kv[i+1]
			}
			return m
		}
		post := func(body any) resp { return e.postJSON("/api/v1/large_image/dicomweb", body, testAdminToken) }
		wantError(t, e.postJSON("/api/v1/large_image/dicomweb", good, ""), 401, "access", "You must be logged in.")
		wantError(t, e.postJSON("/api/v1/large_image/dicomweb", good, "wrong"), 403, "access", "Administrator access required.")
		wantError(t, post(with("url", "file:///etc/passwd")), 400, "rest", "Invalid DICOMweb URL")
		wantError(t, post(with("url", "gopher://127.0.0.1/")), 400, "rest", "Invalid DICOMweb URL")
		wantError(t, post(with("study", "1.2.x")), 400, "rest", "Invalid study UID: DICOM UIDs hold only digits and dots")
		wantError(t, post(with("series", "../../instances")), 400, "rest", "Invalid series UID: DICOM UIDs hold only digits and dots")
		// 64 characters is DICOM's limit; a 66-character value is refused
		// with the reason.
		wantError(t, post(with("series", "1.2.826.0.1.3680043.9.7433.3.82970457260936734119270346325882945.1")), 400, "rest",
			"Invalid series UID: DICOM UIDs are at most 64 characters, this one has 66")
		wantError(t, post(with("folderId", "0123456789abcdef01234567")), 400, "validation", "No such folder: 0123456789abcdef01234567")
		wantError(t, e.do(http.MethodPost, "/api/v1/large_image/dicomweb",
			map[string]string{"Girder-Token": testAdminToken}, strings.NewReader("{")), 400, "rest", "Invalid JSON body.")
		// Orthanc answers an unknown series with an empty list.
		wantError(t, post(good), 404, "rest", "DICOMweb series has no instances")
		// The nuclear medicine image is in Orthanc but is not a slide.
		wantErrorContains(t, post(with("study", "65.2.840.10008.20.4.56.112.48.49.524320.10342861.526813.461",
			"series", "65.2.840.10008.20.4.56.112.48.49.48.48.524320.10342861.526813.46")), 400,
			"DICOMweb series: not a whole-slide image")
		// Nothing listens: refused at once.
		down := fmt.Sprintf("http://127.0.0.1:%d/dicom-web", orthanctest.FreePort(t))
		wantError(t, post(with("url", down)), 502, "rest", "DICOMweb server: request failed")
		// A server that accepts and never answers: the client's timeout
		// turns it into a 502, not a hung request.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
			}
		}()
		wantError(t, post(with("url", "http://"+ln.Addr().String()+"/dicom-web")), 502, "rest", "DICOMweb server: request failed")

		// A server that goes away after the import: tiles not yet cached
		// fail with a 502, cached ones are still served.
		proxy := httptest.NewServer(httputil.NewSingleHostReverseProxy(mustURL(t, o.URL)))
		var md map[string]any
		localID := store.ID("item", "wsi/jpeg.dicom")
		e.get("/api/v1/item/"+localID+"/tiles/internal_metadata").json(t, &md)
		dm := md["dicom"].(map[string]any)
		r := post(map[string]any{"url": proxy.URL + "/dicom-web", "study": dm["StudyInstanceUID"], "series": dm["SeriesInstanceUID"]})
		if r.status != 200 {
			t.Fatalf("import through the proxy: %d %s", r.status, r.body)
		}
		var item map[string]any
		r.json(t, &item)
		tiles := "/api/v1/item/" + item["_id"].(string) + "/tiles"
		if r := e.get(tiles + "/zxy/2/0/0"); r.status != 200 {
			t.Fatalf("tile through the proxy: %d %s", r.status, r.body)
		}
		proxy.Close()
		if r := e.get(tiles + "/zxy/2/0/0"); r.status != 200 || r.header.Get("X-Tile-Cache") != "hit-memory" {
			t.Errorf("cached tile after the server went away: %d %q", r.status, r.header.Get("X-Tile-Cache"))
		}
		wantError(t, e.get(tiles+"/zxy/2/1/0"), 502, "rest", "DICOMweb server: request failed")
		if r := e.get("/healthz"); r.status != 200 {
			t.Fatalf("healthz %d", r.status)
		}
	})
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func ceilDiv(a, b float64) int { return int((a + b - 1) / b) }

func containsID(list []map[string]any, id string) bool {
	for _, m := range list {
		if m["_id"] == id {
			return true
		}
	}
	return false
}

// orthancInstance finds the Orthanc id of the instance whose
// TotalPixelMatrixColumns is cols.
func orthancInstance(t *testing.T, base, cols string) string {
	t.Helper()
	var ids []string
	getJSON(t, base+"/instances", &ids)
	for _, id := range ids {
		var tags map[string]any
		getJSON(t, base+"/instances/"+id+"/simplified-tags", &tags)
		if tags["TotalPixelMatrixColumns"] == cols {
			return id
		}
	}
	t.Fatalf("Orthanc holds no instance %s pixels wide", cols)
	return ""
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	r, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}

// orthancFrame is frame n (from 0) of an instance as Orthanc decodes it.
func orthancFrame(t *testing.T, base, inst string, n int) image.Image {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/instances/%s/frames/%d/rendered", base, inst, n), nil)
	req.Header.Set("Accept", "image/png")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	img, _, err := image.Decode(r.Body)
	if err != nil {
		t.Fatalf("Orthanc frame %d: %v", n, err)
	}
	return img
}

// meanAbsDiff is the mean absolute difference of the RGB samples of two
// images of the same size (8-bit scale), or 255 when the sizes differ.
func meanAbsDiff(a, b image.Image) float64 {
	ab, bb := a.Bounds(), b.Bounds()
	if ab.Dx() != bb.Dx() || ab.Dy() != bb.Dy() {
		return 255
	}
	var sum, n float64
	for y := 0; y < ab.Dy(); y++ {
		for x := 0; x < ab.Dx(); x++ {
			r1, g1, b1, _ := a.At(ab.Min.X+x, ab.Min.Y+y).RGBA()
			r2, g2, b2, _ := b.At(bb.Min.X+x, bb.Min.Y+y).RGBA()
			for _, d := range [][2]uint32{{r1, r2}, {g1, g2}, {b1, b2}} {
				sum += math.Abs(float64(d[0]>>8) - float64(d[1]>>8))
				n++
			}
		}
	}
	return sum / n
}
