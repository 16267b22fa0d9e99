package girder

import (
	"net/http"
	"net/url"
	"testing"
)

// The HTTP details below were checked against large_image 1.35.2 behind
// Girder: the expected statuses, messages and values are the ones it gives
// for the same files.

func TestRepeatedParameterRefused(t *testing.T) {
	e := newEnv(t)
	// Girder's endpoint decorator refuses a repeated parameter before
	// anything else, on every route (girder/api/rest.py).
	for _, c := range []struct{ path, name string }{
		{itemPath("boxes.tiff", "/thumbnail?width=10&width=20"), "width"},
		{itemPath("boxes.tiff", "/zxy/0/0/0?encoding=PNG&edge=crop&edge=red"), "edge"},
		{"/api/v1/item/nosuch/tiles?style=%7B%7D&style=%7B%7D", "style"},
		{"/api/v1/item?text=a&text=b", "text"},
	} {
		wantError(t, e.get(c.path), http.StatusBadRequest, "rest",
			`Parameter "`+c.name+`" must not be specified multiple times.`)
	}
	// The first repeated name in query order is the one reported.
	r := e.get(itemPath("boxes.tiff", "/region?left=1&width=5&left=2&width=6"))
	wantError(t, r, http.StatusBadRequest, "rest", `Parameter "left" must not be specified multiple times.`)
	// Distinct parameters are fine.
	if r := e.get(itemPath("boxes.tiff", "/thumbnail?width=10&height=20")); r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
}

func TestStyleCheckedWhereTheSourceIsOpened(t *testing.T) {
	e := newEnv(t)
	// large_image opens the source with the style on the metadata routes
	// too, and refuses one that is not a JSON object with a 400.
	for _, route := range []string{"", "/internal_metadata", "/dzi.dzi"} {
		for _, style := range []string{"{bad", "5", "[1]"} {
			r := e.get(itemPath("boxes.tiff", route+"?style="+url.QueryEscape(style)))
			wantError(t, r, http.StatusBadRequest, "rest", "Style is not a valid json object.")
		}
		// A JSON object is only opened, not applied, there.
		if r := e.get(itemPath("boxes.tiff", route+"?style="+url.QueryEscape(`{"band":1}`))); r.status != http.StatusOK {
			t.Fatalf("%s with a valid style: status %d: %s", route, r.status, r.body)
		}
	}
}

func TestInternalMetadataICCProfiles(t *testing.T) {
	e := newEnv(t)
	// large_image's ImageItem.getInternalMetadata adds the profile
	// information Pillow reports (description, then copyright).
	var md map[string]any
	r := e.get(itemPath("boxes.tiff", "/internal_metadata"))
	r.json(t, &md)
	got, _ := md["iccprofiles"].([]any)
	if len(got) != 1 || got[0] != "sRGB built-in\r\n\r\nNo copyright, use freely" {
		t.Fatalf("iccprofiles %q", md["iccprofiles"])
	}
	// A file without a profile has no such key.
	md = nil
	e.get(itemPath("CMU-1-Small-Region.svs", "/internal_metadata")).json(t, &md)
	if _, ok := md["iccprofiles"]; ok || md["tilesource"] != "tiff" {
		t.Fatalf("CMU internal metadata %v", md)
	}
}
