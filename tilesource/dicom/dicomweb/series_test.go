package dicomweb

import (
	"errors"
	"testing"

	"github.com/tileserver/tileserver/tilesource"
)

func TestSeriesValidate(t *testing.T) {
	good := Series{"http://127.0.0.1:8042/dicom-web/", "1.2.3", "4.5.6"}
	loc := good.Locator()
	back, err := ParseLocator(loc)
	if err != nil || back.BaseURL != "http://127.0.0.1:8042/dicom-web" || back.StudyUID != "1.2.3" || back.SeriesUID != "4.5.6" {
		t.Fatalf("round trip %q: %+v %v", loc, back, err)
	}
	cases := []struct {
		s    Series
		want string
	}{
		{Series{"file:///etc", "1", "2"}, "Invalid DICOMweb URL"},
		{Series{"http://", "1", "2"}, "Invalid DICOMweb URL"},
		{Series{"http://h", "1/../../x", "2"}, "Invalid study UID"},
		{Series{"http://h", "1", ""}, "Invalid series UID"},
		{Series{"http://h", "1", "2?x=1"}, "Invalid series UID"},
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
