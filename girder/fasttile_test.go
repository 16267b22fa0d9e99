package girder

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tileserver/tileserver/girder/store"
)

// TestPlainTileAnswersAsTheRoute: the plain-tile path in front of echo
// gives, request for request, the response echo's tile route gives (status,
// every header but Date, body) and the same metrics, on a server that has
// it and one that only has the route; it answers exactly the plain
// requests and leaves the rest to the route.
func TestPlainTileAnswersAsTheRoute(t *testing.T) {
	files := map[string]string{
		"CMU-1-Small-Region.svs": "libvips/CMU-1-Small-Region.svs",
		"unreadable.svs":         "openslide-python/unreadable.svs", // metadata fine, its tile damaged
		"README.md":              "README.md",                       // an item that is no image
	}
	fast := newEnvWith(t, files, nil)
	route := newEnvWith(t, files, nil)
	// One modification time for both copies, so that the items' versions,
	// and with them the ETags, agree.
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, e := range []*env{fast, route} {
		for name := range files {
			if err := os.Chtimes(filepath.Join(e.slides, name), when, when); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.srv.Import(context.Background(), ""); err != nil {
			t.Fatal(err)
		}
	}
	route.http.Close()
	route.http = httptest.NewServer(route.srv.echo) // every request takes echo's route
	t.Cleanup(route.http.Close)

	cmu := "/api/v1/item/" + store.ID("item", "CMU-1-Small-Region.svs") + "/tiles/zxy/"
	bad := "/api/v1/item/" + store.ID("item", "unreadable.svs") + "/tiles/zxy/"
	notImage := "/api/v1/item/" + store.ID("item", "README.md") + "/tiles/zxy/0/0/0"
	const safari = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15"
	etag := fast.get(cmu + "2/0/0").header.Get("Etag")
	route.get(cmu + "2/0/0")
	cases := []struct {
		name, path string
		hdr        []string
		plain      bool // answered by the plain-tile path
	}{
		{"miss", cmu + "4/1/1", nil, true},
		{"hit", cmu + "4/1/1", nil, true},
		{"Safari gets JFIF", cmu + "4/1/1", []string{"User-Agent", safari}, true},
		{"lowest level", cmu + "0/0/0", nil, true},
		{"out of range", cmu + "4/9/0", nil, true},
		{"level out of range", cmu + "12/0/0", nil, true},
		{"damaged tile", bad + "0/0/0", nil, true},
		{"not an image", notImage, nil, false},
		{"unknown item", "/api/v1/item/0123456789abcdef01234567/tiles/zxy/0/0/0", nil, false},
		{"invalid id", "/api/v1/item/nope/tiles/zxy/0/0/0", nil, false},
		{"not integers", cmu + "a/0/0", nil, false},
		{"negative", cmu + "0/-1/0", nil, false},
		{"too many parts", cmu + "0/0/0/0", nil, false},
		{"query", cmu + "2/0/0?encoding=PNG", nil, false},
		{"If-None-Match", cmu + "2/0/0", []string{"If-None-Match", etag}, false},
		{"If-Match", cmu + "2/0/0", []string{"If-Match", `"other"`}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now().Truncate(time.Second)
			a, b := fast.get(tc.path, tc.hdr...), route.get(tc.path, tc.hdr...)
			after := time.Now()
			if a.status != b.status || !slices.Equal(a.body, b.body) {
				t.Fatalf("plain path %d %q, route %d %q", a.status, trim(a.body), b.status, trim(b.body))
			}
			// Date is the time of the response, to the second (the plain
			// path's memory hits take it from a per-second cache).
			for _, h := range []http.Header{a.header, b.header} {
				d := h.Values("Date")
				if len(d) != 1 {
					t.Fatalf("Date headers %q, want one", d)
				}
				if when, err := http.ParseTime(d[0]); err != nil || when.Before(before) || when.After(after) {
					t.Errorf("Date %q (%v) not between %v and %v", d[0], err, before, after)
				}
				h.Del("Date")
			}
			for k, v := range b.header {
				if !slices.Equal(a.header[k], v) {
					t.Errorf("header %s: plain path %q, route %q", k, a.header[k], v)
				}
			}
			for k, v := range a.header {
				if _, ok := b.header[k]; !ok {
					t.Errorf("plain path adds header %s: %q", k, v)
				}
			}
			req := httptest.NewRequest(http.MethodGet, tc.path, nil)
			for i := 0; i+1 < len(tc.hdr); i += 2 {
				req.Header.Set(tc.hdr[i], tc.hdr[i+1])
			}
			if got := fast.srv.plainTile(httptest.NewRecorder(), req); got != tc.plain {
				t.Errorf("plain path answered %v, want %v", got, tc.plain)
			}
		})
	}
	// The same requests were counted alike (the direct calls above add one
	// hit or error per plain case to the fast server's count).
	plain := 0
	for _, tc := range cases {
		if tc.plain {
			plain++
		}
	}
	fa, ro := fast.srv.http.snapshot()[familyTile], route.srv.http.snapshot()[familyTile]
	if fa.Requests != ro.Requests+uint64(plain) {
		t.Errorf("tile requests counted: plain path %d, route %d + %d", fa.Requests, ro.Requests, plain)
	}
	if len(ro.Errors) == 0 {
		t.Fatal("no errors counted on the route")
	}
	for cause, n := range ro.Errors {
		if fa.Errors[cause] < n {
			t.Errorf("errors %q: plain path %d, route %d", cause, fa.Errors[cause], n)
		}
	}
}

func trim(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

// TestDateCache: the cached Date value is the one net/http would write for
// the time given, across seconds and when a caller's time is older than
// the cached one (two requests at a second's turn).
func TestDateCache(t *testing.T) {
	var d dateCache
	t0 := time.Date(2026, 12, 1, 23, 59, 58, 900e6, time.FixedZone("CET", 3600))
	for _, dt := range []time.Duration{0, 50 * time.Millisecond, 99 * time.Millisecond, 100 * time.Millisecond,
		1500 * time.Millisecond, -time.Second, 2 * time.Second, 0} {
		at := t0.Add(dt)
		got := d.header(at)
		if want := at.UTC().Format(http.TimeFormat); len(got) != 1 || got[0] != want {
			t.Errorf("%v: Date %q, want %q", at, got, want)
		}
	}
	// Within one second the value is formatted once and shared.
	var e dateCache
	a, b := e.header(t0), e.header(t0.Add(10*time.Millisecond))
	if &a[0] != &b[0] {
		t.Error("the value of a second is formatted again")
	}
}
