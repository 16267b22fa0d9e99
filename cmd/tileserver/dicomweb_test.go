package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// TestDICOMwebSettings: --dicomweb is repeatable (and a comma list in the
// environment), credentials come from the environment or a file, and
// mistakes are refused with a reason.
func TestDICOMwebSettings(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("tok-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"TILESERVER_DICOMWEB_PACS_1_BASIC":      "user:pw",
		"TILESERVER_DICOMWEB_CLOUD_BEARER_FILE": tokenFile,
	}
	s, err := loadSettings([]string{"--dicomweb", "pacs-1=http://a:8042/dicom-web", "--dicomweb", "cloud=https://b/dicomWeb/",
		"--dicomweb", "open=http://c/dicom-web", "--dicomweb-refresh", "0"}, envMap(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := []dicomweb.Archive{
		{Name: "pacs-1", URL: "http://a:8042/dicom-web", Authorization: "Basic dXNlcjpwdw=="},
		{Name: "cloud", URL: "https://b/dicomWeb/", Authorization: "Bearer tok-123"},
		{Name: "open", URL: "http://c/dicom-web"},
	}
	if fmt.Sprint(s.DICOMweb) != fmt.Sprint(want) || s.DICOMweb[0].Authorization != want[0].Authorization ||
		s.DICOMweb[1].Authorization != want[1].Authorization || s.DICOMwebRefresh != 0 {
		t.Errorf("archives %v refresh %v", s.DICOMweb, s.DICOMwebRefresh)
	}
	if s, err := loadSettings(nil, envMap(map[string]string{"TILESERVER_DICOMWEB": "a=http://a,b=http://b"}), io.Discard); err != nil ||
		len(s.DICOMweb) != 2 || s.DICOMwebRefresh != 10*time.Minute {
		t.Errorf("from the environment: %v %v", s.DICOMweb, err)
	}
	bad := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--dicomweb", "http://a"}, nil, `--dicomweb "http://a": want NAME=URL`},
		{[]string{"--dicomweb", "a=http://u:p@h/dw"}, nil, "--dicomweb: archive a: put credentials in the environment, not in the URL"},
		{[]string{"--dicomweb", "a=http://h,a=http://g"}, nil, "--dicomweb: archive a configured twice"},
		{[]string{"--dicomweb", "a=http://h"}, map[string]string{"TILESERVER_DICOMWEB_A_BASIC": "nocolon"},
			"TILESERVER_DICOMWEB_A_BASIC: want user:password"},
		{[]string{"--dicomweb", "a=http://h"}, map[string]string{"TILESERVER_DICOMWEB_A_BASIC": "u:p", "TILESERVER_DICOMWEB_A_BEARER": "t"},
			"archive a: credentials set more than once (TILESERVER_DICOMWEB_A_BEARER, TILESERVER_DICOMWEB_A_BASIC): use one"},
	}
	for _, c := range bad {
		_, err := loadSettings(c.args, envMap(c.env), io.Discard)
		if err == nil || err.Error() != c.want {
			t.Errorf("%v %v: %v, want %q", c.args, c.env, err, c.want)
		}
	}
}
