package main

import (
	"bytes"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tileserver/tileserver/girder/store"
	"github.com/tileserver/tileserver/tilesource/dicom"
	"github.com/tileserver/tileserver/tilesource/dicom/dicomweb"
	"github.com/tileserver/tileserver/tilesource/dicom/dicomweb/orthanctest"
)

// TestImportDICOMwebCommand runs `tileserver import-dicomweb` against a
// real Orthanc and reads the item back from the store.
func TestImportDICOMwebCommand(t *testing.T) {
	file := filepath.Join("..", "..", "..", "shared", "testdata", "wsi-to-dicom-converter", "jpeg.dicom")
	o := orthanctest.Start(t)
	o.Upload(t, file)
	src, err := dicom.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	md := src.InternalMetadata()["dicom"].(map[string]any)
	src.Close()
	study, series := md["StudyInstanceUID"].(string), md["SeriesInstanceUID"].(string)

	dir := t.TempDir()
	data, slides := filepath.Join(dir, "data"), filepath.Join(dir, "slides")
	base := []string{importDICOMwebCmd, "--data", data, "--slides", slides, "--url", o.DICOMweb()}
	var out bytes.Buffer
	args := append(append([]string{}, base...), "--study", study, "--series", series, "--name", "from the command")
	if err := run(t.Context(), args, envMap(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	loc := dicomweb.Series{BaseURL: o.DICOMweb(), StudyUID: study, SeriesUID: series}.Locator()
	if got["_id"] != store.RemoteID(loc) || got["name"] != "from the command" {
		t.Errorf("output %v", got)
	}
	st, err := store.Open(data, slides)
	if err != nil {
		t.Fatal(err)
	}
	it, ok := st.Item(got["_id"])
	st.Close()
	if !ok || it.Remote != loc || it.SourceName != "dicomweb" || !strings.HasPrefix(it.Version, "sop-") {
		t.Fatalf("stored item %+v", it)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--study", "1.2.x", "--series", series}, "Invalid study UID: DICOM UIDs hold only digits and dots"},
		{[]string{"--study", study, "--series", "1.2.3"}, "DICOMweb series has no instances"},
		{[]string{"--study", study}, "--url, --study and --series are required"},
	} {
		err := run(t.Context(), append(append([]string{}, base...), c.args...), envMap(nil), io.Discard, io.Discard)
		if err == nil || err.Error() != c.want {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
}
