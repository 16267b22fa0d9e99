package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tileserver/tileserver/tilesource/objstore/s3test"
)

// TestSlidesOnS3: a server whose --slides is a bucket prefix of a real S3
// server (SeaweedFS) lists the same items under the same ids as a server
// over the same files on disk, and answers metadata, tiles and thumbnails
// with the same bytes: a TIFF read in place, a two-file DICOM series, and a
// plain JPEG through a local copy.
func TestSlidesOnS3(t *testing.T) {
	const bucket = "wsi"
	srv := s3test.Start(t, bucket)
	srv.Env(t)
	dir := t.TempDir()
	slides := filepath.Join(dir, "slides")
	files := map[string]string{
		"CMU-1-Small-Region.svs": "libvips/CMU-1-Small-Region.svs",
		"dicom/boxes_0.dcm":      "openslide-python/boxes_0.dcm",
		"dicom/boxes_1.dcm":      "openslide-python/boxes_1.dcm",
		"plain/sample.jpg":       "libvips/sample.jpg",
	}
	for key, rel := range files {
		src := filepath.Join("..", "..", "..", "shared", "testdata", rel)
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(slides, filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		srv.Upload(t, bucket, "lab/slides/"+key, src)
	}
	common := []string{"--warm-on-import=false", "--prefetch=false"}
	disk := startServer(t, append([]string{"--data", filepath.Join(dir, "d1"), "--slides", slides}, common...), nil)
	defer disk.stop(t)
	s3 := startServer(t, append([]string{"--data", filepath.Join(dir, "d2"),
		"--slides", "s3://" + bucket + "/lab/slides?endpoint=http://" + srv.Endpoint}, common...), nil)
	defer s3.stop(t)

	items := func(sv *server) []string {
		t.Helper()
		var out []string
		for i := 0; i < 600; i++ {
			var list []map[string]any
			getJSON(t, sv.base+"/api/v1/item?text=.&limit=0", &list)
			out = out[:0]
			for _, it := range list {
				if it["name"] != "test (synthetic image)" {
					out = append(out, it["_id"].(string)+" "+it["name"].(string)+" "+it["folderId"].(string))
				}
			}
			if len(out) == 3 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		sort.Strings(out)
		return out
	}
	a, b := items(disk), items(s3)
	if len(a) != 3 || strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Fatalf("items differ:\ndisk %v\ns3   %v", a, b)
	}
	get := func(url string) (int, []byte, string) {
		t.Helper()
		res, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, body, res.Header.Get("Content-Type")
	}
	for _, line := range a {
		id, name, _ := strings.Cut(line, " ")
		for _, route := range []string{"tiles", "tiles/zxy/0/0/0", "tiles/zxy/3/1/1", "tiles/thumbnail?width=128", "tiles/internal_metadata"} {
			sa, ba, ca := get(disk.base + "/api/v1/item/" + id + "/" + route)
			sb, bb, cb := get(s3.base + "/api/v1/item/" + id + "/" + route)
			if sa != sb || ca != cb || !bytes.Equal(ba, bb) {
				t.Errorf("%s %s: disk %d %s %d bytes, s3 %d %s %d bytes", name, route, sa, ca, len(ba), sb, cb, len(bb))
			}
			if route == "tiles" && sa != http.StatusOK {
				t.Errorf("%s: metadata %d %s", name, sa, ba)
			}
		}
	}
}
