package suite

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// A fresh server imports its slides after it answers /healthz: slide
// waits for the item instead of failing on the first empty search.
func TestSlideWaitsForTheImport(t *testing.T) {
	var searches atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/item":
			if searches.Add(1) < 3 {
				fmt.Fprint(w, `[]`)
				return
			}
			fmt.Fprint(w, `[{"_id": "other", "name": "slide-4x.tif"}, {"_id": "abc", "name": "slide.tif"}]`)
		case "/api/v1/item/abc/tiles":
			fmt.Fprint(w, `{"sizeX": 30000, "sizeY": 20000, "tileWidth": 256, "tileHeight": 256, "levels": 8}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer ts.Close()
	sv := &server{base: ts.URL}
	sl, err := sv.slide(context.Background(), "slide.tif")
	if err != nil {
		t.Fatal(err)
	}
	if sl.ID != "abc" || sl.SizeX != 30000 || sl.Levels != 8 || searches.Load() != 3 {
		t.Errorf("slide %+v after %d searches, want abc, 30000 px, 8 levels after 3", sl, searches.Load())
	}
	// A cancelled wait ends at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := sv.slide(ctx, "missing.tif"); err == nil {
		t.Error("a cancelled wait for a missing item succeeded")
	}
}
