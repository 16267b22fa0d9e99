package dicomweb

import (
	"errors"
	"net/http"
	"testing"

	"github.com/tileserver/tileserver/tilesource"
)

func TestSeriesValidate(t *testing.T) {
	good := Series{BaseURL: "http://127.0.0.1:8042/dicom-web/", StudyUID: "1.2.3", SeriesUID: "4.5.6"}
	loc := good.Locator()
	back, err := ParseLocator(loc)
	if err != nil || back.BaseURL != "http://127.0.0.1:8042/dicom-web" || back.StudyUID != "1.2.3" || back.SeriesUID != "4.5.6" {
		t.Fatalf("round trip %q: %+v %v", loc, back, err)
	}
	cases := []struct {
		s    Series
		want string
	}{
		{Series{BaseURL: "file:///etc", StudyUID: "1", SeriesUID: "2"}, "Invalid DICOMweb URL"},
		{Series{BaseURL: "http://", StudyUID: "1", SeriesUID: "2"}, "Invalid DICOMweb URL"},
		{Series{BaseURL: "http://h", StudyUID: "1/../../x", SeriesUID: "2"}, "Invalid study UID: DICOM UIDs hold only digits and dots"},
		{Series{BaseURL: "http://h", StudyUID: "1", SeriesUID: ""}, "Invalid series UID: empty"},
		{Series{BaseURL: "http://h", StudyUID: "1", SeriesUID: "2?x=1"}, "Invalid series UID: DICOM UIDs hold only digits and dots"},
	}
	for _, c := range cases {
		err := c.s.Validate()
		var te *tilesource.Error
		if !errors.As(err, &te) || te.Status != 400 || te.Message != c.want {
			t.Errorf("%+v: %v", c.s, err)
		}
		if _, err := Open(t.Context(), nil, c.s.BaseURL, c.s.StudyUID, c.s.SeriesUID); !errors.As(err, &te) || te.Message != c.want {
			t.Errorf("open %+v: %v", c.s, err)
		}
	}
	if _, err := ParseLocator("/data/x.svs"); err == nil {
		t.Error("file path parsed as a locator")
	}
}

func TestUIDLength(t *testing.T) {
	// 64 characters is the most DICOM allows; 66 is refused with the reason.
	uid64 := "1.2.826.0.1.3680043.9.7433.3.82970457260936734119270346325882945"
	uid66 := uid64 + ".1"
	if len(uid64) != 64 || len(uid66) != 66 {
		t.Fatal("test UIDs have the wrong length")
	}
	if err := (Series{BaseURL: "http://h", StudyUID: uid64, SeriesUID: uid64}).Validate(); err != nil {
		t.Errorf("64-character UID refused: %v", err)
	}
	err := Series{BaseURL: "http://h", StudyUID: uid64, SeriesUID: uid66}.Validate()
	var te *tilesource.Error
	if !errors.As(err, &te) || te.Status != 400 ||
		te.Message != "Invalid series UID: DICOM UIDs are at most 64 characters, this one has 66" {
		t.Errorf("66-character UID: %v", err)
	}
}

func TestArchiveLocator(t *testing.T) {
	s := Series{Archive: "pacs-1", StudyUID: "1.2", SeriesUID: "3.4"}
	loc := s.Locator()
	if loc != "dicomweb:archive=pacs-1&series=3.4&study=1.2" {
		t.Errorf("locator %q", loc)
	}
	back, err := ParseLocator(loc)
	if err != nil || back != s {
		t.Errorf("round trip: %+v %v", back, err)
	}
	if _, err := ParseLocator("dicomweb:archive=a&url=http://h&study=1&series=2"); err == nil {
		t.Error("locator with both archive and url accepted")
	}
	var te *tilesource.Error
	_, err = (&Archives{}).Open(t.Context(), loc, OpenOptions{})
	if !errors.As(err, &te) || te.Status != 404 || te.Message != "DICOMweb archive pacs-1 is not configured" {
		t.Errorf("unknown archive: %v", err)
	}
}

func TestArchiveConfig(t *testing.T) {
	bad := []Archive{
		{Name: "Pacs", URL: "http://h/dicom-web"},
		{Name: "-x", URL: "http://h/dicom-web"},
		{Name: "pacs", URL: "ftp://h/dicom-web"},
		{Name: "pacs", URL: "http://user:pw@h/dicom-web"},
	}
	for _, a := range bad {
		if _, err := NewArchives([]Archive{a}); err == nil {
			t.Errorf("%+v accepted", a)
		}
	}
	if _, err := NewArchives([]Archive{{Name: "a", URL: "http://h"}, {Name: "a", URL: "http://g"}}); err == nil {
		t.Error("duplicate name accepted")
	}
	a := Archive{Name: "pacs", URL: "http://h/dicom-web", Authorization: "Bearer s3cret"}
	if got := a.String(); got != "pacs=http://h/dicom-web (auth bearer)" {
		t.Errorf("String() = %q", got)
	}
}

// recorder answers every request with 204 and keeps its Authorization.
type recorder struct{ auth map[string]string }

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.auth[req.URL.Host] = req.Header.Get("Authorization")
	return &http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody, Request: req}, nil
}

func TestArchiveCredentialsStayWithTheirHost(t *testing.T) {
	rec := &recorder{auth: map[string]string{}}
	a := Archive{Name: "pacs", URL: "http://archive:8042/dicom-web", Authorization: "Basic dXNlcjpwdw=="}
	c := a.client(&http.Client{Transport: rec})
	for _, u := range []string{"http://archive:8042/dicom-web/studies", "http://elsewhere/x"} {
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if rec.auth["archive:8042"] != "Basic dXNlcjpwdw==" || rec.auth["elsewhere"] != "" {
		t.Errorf("Authorization sent: %v", rec.auth)
	}
}
