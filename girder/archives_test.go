package girder

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/tileserver/tileserver/girder/store"
	"github.com/tileserver/tileserver/tilecache"
	"github.com/tileserver/tileserver/tilesource/dicom/dicomweb"
	"github.com/tileserver/tileserver/tilesource/dicom/dicomweb/orthanctest"
	"github.com/tileserver/tileserver/tilesource/pipeline"
)

// archiveEnv serves an empty slide root and the given archives over the
// data directory data.
func archiveEnv(t *testing.T, data string, list []dicomweb.Archive) (*Server, *httptest.Server, func()) {
	t.Helper()
	slides := filepath.Join(data, "slides")
	if err := os.MkdirAll(slides, 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(data, slides)
	if err != nil {
		t.Fatal(err)
	}
	tiles, err := tilecache.New(tilecache.Config{Mode: tilecache.ModeMemory, MemoryBytes: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	archives, err := dicomweb.NewArchives(list)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := pipeline.New(pipeline.Config{Tiles: tiles, DICOMweb: archives})
	if err != nil {
		t.Fatal(err)
	}
	srv := New(Config{AdminToken: testAdminToken}, pl, st, WithDICOMweb(archives, dicomweb.OpenOptions{Cache: tiles}))
	hs := httptest.NewServer(srv.Handler())
	return srv, hs, func() { hs.Close(); tiles.Close(); st.Close() }
}

// TestArchiveCollections: a configured archive is a collection with study
// folders and series items whose tiles are served; an archive that is
// down fails PUT large_image/import with a 502 and leaves the others
// listed; an archive taken out of the configuration leaves nothing behind.
func TestArchiveCollections(t *testing.T) {
	o := orthanctest.Start(t)
	o.Upload(t, filepath.Join(testdata, "wsi-to-dicom-converter/jpeg.dicom"))
	data := t.TempDir()
	down := fmt.Sprintf("http://127.0.0.1:%d/dicom-web", orthanctest.FreePort(t))
	_, hs, stop := archiveEnv(t, data, []dicomweb.Archive{{Name: "pacs", URL: o.DICOMweb()}, {Name: "down", URL: down}})
	get := func(path string, v any) int {
		t.Helper()
		res, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if v != nil {
			if err := json.NewDecoder(res.Body).Decode(v); err != nil {
				t.Fatal(err)
			}
		}
		return res.StatusCode
	}
	req, _ := http.NewRequest(http.MethodPut, hs.URL+"/api/v1/large_image/import", nil)
	req.Header.Set("Girder-Token", testAdminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	json.NewDecoder(res.Body).Decode(&body)
	res.Body.Close()
	if res.StatusCode != 502 || body["message"] != "DICOMweb archive listing failed" {
		t.Errorf("import with an archive down: %d %v", res.StatusCode, body)
	}

	colID := store.CollectionKeyID("dicomweb:pacs")
	var cols []map[string]any
	get("/api/v1/collection", &cols)
	if len(cols) != 2 || cols[1]["_id"] != colID || cols[1]["name"] != "pacs" || cols[1]["description"] != "DICOMweb archive pacs" {
		t.Fatalf("collections %v", cols)
	}
	var col map[string]any
	if st := get("/api/v1/collection/"+colID, &col); st != 200 || col["name"] != "pacs" {
		t.Errorf("collection: %d %v", st, col)
	}
	var folders []map[string]any
	get("/api/v1/folder?parentType=collection&parentId="+colID, &folders)
	study := "1.2.276.0.7230010.3.1.2.296485632.4444.1646683084.97877"
	if len(folders) != 1 || folders[0]["name"] != study || folders[0]["baseParentId"] != colID {
		t.Fatalf("folders %v", folders)
	}
	var items []map[string]any
	get("/api/v1/item?folderId="+folders[0]["_id"].(string), &items)
	loc := dicomweb.Series{Archive: "pacs", StudyUID: study, SeriesUID: "1.2.276.0.7230010.3.1.3.296485632.4444.1646683084.97878"}.Locator()
	if len(items) != 1 || items[0]["name"] != "test13" || items[0]["_id"] != store.RemoteID(loc) {
		t.Fatalf("items %v", items)
	}
	id := items[0]["_id"].(string)
	var md map[string]any
	if st := get("/api/v1/item/"+id+"/tiles", &md); st != 200 || md["sizeX"] != 957.0 || md["sizeY"] != 715.0 {
		t.Errorf("metadata: %d %v", st, md)
	}
	if st := get("/api/v1/item/"+id+"/tiles/zxy/0/0/0", nil); st != 200 {
		t.Errorf("tile: %d", st)
	}
	stop()

	// The same data directory without the archive: nothing of it is left.
	_, hs, stop = archiveEnv(t, data, nil)
	defer stop()
	srv2Cols := []map[string]any{}
	res, err = http.Get(hs.URL + "/api/v1/item/" + id)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("before the listing the stored item is served: %d", res.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodPut, hs.URL+"/api/v1/large_image/import", nil)
	req.Header.Set("Girder-Token", testAdminToken)
	if res, err = http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 {
		t.Fatalf("import: %v %v", res, err)
	}
	res.Body.Close()
	get("/api/v1/collection", &srv2Cols)
	if len(srv2Cols) != 1 {
		t.Errorf("collections after removing the archive: %v", srv2Cols)
	}
	if st := get("/api/v1/item/"+id, nil); st != 400 {
		t.Errorf("item of a removed archive: %d", st)
	}
}
