package replay

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tileserver/tileserver/bench/fakeserver"
	"github.com/tileserver/tileserver/bench/trace"
)

var square = trace.Slide{ID: "square", SizeX: 30000, SizeY: 30000, TileWidth: 256, TileHeight: 256, Levels: 8}

func mustTemplate(t *testing.T, base, tmpl string) Template {
	t.Helper()
	tp, err := ParseTemplate(base, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

func TestTemplates(t *testing.T) {
	wide := trace.Slide{ID: "wide", SizeX: 58368, SizeY: 12288, TileWidth: 256, TileHeight: 256, Levels: 9}
	cases := []struct {
		tmpl string
		s    trace.Slide
		tile trace.Tile
		want string
	}{
		{"ours", square, trace.Tile{Z: 7, X: 12, Y: 34}, "http://h/api/v1/item/square/tiles/zxy/7/12/34"},
		{"large_image", square, trace.Tile{Z: 3, X: 1, Y: 2}, "http://h/item/square/tiles/zxy/3/1/2"},
		// The peers' README: level 15 is full resolution of the 30000 px slide.
		{"iip-deepzoom", square, trace.Tile{Z: 7, X: 12, Y: 34}, "http://h/fcgi-bin/iipsrv.fcgi?DeepZoom=square_files/15/12_34.jpg"},
		{"openslide-deepzoom", square, trace.Tile{Z: 6, X: 1, Y: 2}, "http://h/square_files/14/1_2.jpeg"},
		// wide: DeepZoom max level 16, levels-1 = 8; the spec's level 8
		// is one 228x48 tile, i.e. zxy level 0.
		{"openslide-deepzoom", wide, trace.Tile{Z: 0, X: 0, Y: 0}, "http://h/wide_files/8/0_0.jpeg"},
		// IIIF: the 3072,8704 example of the peers' README; an edge tile
		// of level 6 (step 2) is clipped to the image and halved.
		{"iip-iiif", square, trace.Tile{Z: 7, X: 12, Y: 34}, "http://h/fcgi-bin/iipsrv.fcgi?IIIF=square/3072,8704,256,256/256,/0/default.jpg"},
		{"iip-iiif", square, trace.Tile{Z: 6, X: 58, Y: 0}, "http://h/fcgi-bin/iipsrv.fcgi?IIIF=square/29696,0,304,512/152,/0/default.jpg"},
		{"http://other:9/x?img=slide.tif&t={z}-{x}-{y}", square, trace.Tile{Z: 1, X: 0, Y: 1}, "http://other:9/x?img=slide.tif&t=1-0-1"},
	}
	for _, c := range cases {
		got, err := mustTemplate(t, "http://h/", c.tmpl).URL(c.s, c.tile)
		if err != nil || got != c.want {
			t.Errorf("%s %+v: %q %v, want %q", c.tmpl, c.tile, got, err, c.want)
		}
	}
	if _, err := ParseTemplate("http://h", "/a/{zz}"); err == nil {
		t.Error("unknown placeholder accepted")
	}
	if _, err := ParseTemplate("", "ours"); err == nil {
		t.Error("relative template without a base accepted")
	}
	s512 := square
	s512.TileWidth, s512.TileHeight = 512, 512
	if _, err := mustTemplate(t, "http://h", "openslide-deepzoom").URL(s512, trace.Tile{}); err == nil {
		t.Error("DeepZoom with mismatched tile size accepted")
	}
}

func genTrace(t *testing.T, o trace.Options, slides ...trace.Slide) *trace.Trace {
	t.Helper()
	tr, err := trace.Generate(slides, o)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestReplayCounts(t *testing.T) {
	srv := fakeserver.New(square)
	defer srv.Close()
	tr := genTrace(t, trace.Options{Seed: 9, Users: 3, Views: 12}, square)
	run, err := Replay(context.Background(), tr, Options{Template: mustTemplate(t, srv.URL, "ours"), Parallel: 4})
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Results) != tr.Requests() || srv.Total() != tr.Requests() {
		t.Fatalf("%d results, server saw %d, trace has %d requests", len(run.Results), srv.Total(), tr.Requests())
	}
	// Every tile of the trace was asked for exactly as often as the
	// trace says, at the URL the template makes.
	want := map[string]int{}
	for _, v := range tr.Views {
		for _, tl := range v.Tiles {
			want[fmt.Sprintf("/api/v1/item/square/tiles/zxy/%d/%d/%d", tl.Z, tl.X, tl.Y)]++
		}
	}
	got := srv.Paths()
	if len(got) != len(want) {
		t.Errorf("server saw %d distinct tiles, want %d", len(got), len(want))
	}
	for p, n := range want {
		if got[p] != n {
			t.Errorf("%s requested %d times, want %d", p, got[p], n)
		}
	}
	misses := 0
	for _, r := range run.Results {
		if r.Err != "" || r.Status != 200 {
			t.Fatalf("request failed: %+v", r)
		}
		body := fmt.Sprintf("square/%d/%d/%d", r.Z, r.X, r.Y)
		if r.Bytes != int64(len(body)) {
			t.Fatalf("%+v: %d bytes, want %d", r, r.Bytes, len(body))
		}
		if r.Cache == "miss" {
			misses++
		} else if r.Cache != "hit-memory" {
			t.Fatalf("cache header %q", r.Cache)
		}
	}
	if misses != len(want) {
		t.Errorf("%d misses recorded, want one per distinct tile (%d)", misses, len(want))
	}
	if len(run.Views) != len(tr.Views) {
		t.Errorf("%d view timings, want %d", len(run.Views), len(tr.Views))
	}
	for _, v := range run.Views {
		if v.DoneNS < v.StartNS || v.Errors != 0 {
			t.Errorf("view timing %+v", v)
		}
	}
}

func TestReplayLimitsAndUsers(t *testing.T) {
	srv := fakeserver.New(square)
	defer srv.Close()
	tr := genTrace(t, trace.Options{Seed: 2, Users: 2, Views: 10}, square)
	run, err := Replay(context.Background(), tr, Options{Template: mustTemplate(t, srv.URL, "ours"), MaxRequests: 37})
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Results) != 37 || srv.Total() != 37 {
		t.Errorf("request limit 37: %d results, server saw %d", len(run.Results), srv.Total())
	}

	srv2 := fakeserver.New(square)
	defer srv2.Close()
	run, err = Replay(context.Background(), tr, Options{Template: mustTemplate(t, srv2.URL, "ours"), Users: 5, Rate: 5000})
	if err != nil {
		t.Fatal(err)
	}
	// Users 0..4 replay trace users 0,1,0,1,0.
	byUser := tr.ByUser()
	want := 0
	for u := 0; u < 5; u++ {
		for _, v := range byUser[u%2] {
			want += len(v.Tiles)
		}
	}
	if len(run.Results) != want || srv2.Total() != want {
		t.Errorf("5 users: %d results, server %d, want %d", len(run.Results), srv2.Total(), want)
	}
}

func TestReplayDurationStops(t *testing.T) {
	srv := fakeserver.New(square)
	defer srv.Close()
	tr := genTrace(t, trace.Options{Seed: 2, Users: 1, Views: 10}, square)
	// An hour of thinking between views: only the duration can end this.
	run, err := Replay(context.Background(), tr, Options{Template: mustTemplate(t, srv.URL, "ours"), Think: time.Hour, Duration: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Results) > len(tr.Views[0].Tiles) {
		t.Errorf("%d requests, more than the first view's %d", len(run.Results), len(tr.Views[0].Tiles))
	}
}

func TestReplayErrorsAndDeepZoom(t *testing.T) {
	srv := fakeserver.New(square)
	defer srv.Close()
	tr := genTrace(t, trace.Options{Seed: 4, Users: 1, Views: 8}, square)
	run, err := Replay(context.Background(), tr, Options{Template: mustTemplate(t, srv.URL, "openslide-deepzoom")})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range run.Results {
		if r.Status != 200 || r.Bytes != int64(len(fmt.Sprintf("square/%d/%d/%d", r.Z, r.X, r.Y))) {
			t.Fatalf("DeepZoom request %+v: the fake server mapped it to another tile", r)
		}
	}
	// A slide the server does not know: every request is an error.
	bad := genTrace(t, trace.Options{Seed: 4, Users: 1, Views: 2}, trace.Slide{ID: "nope", SizeX: 1000, SizeY: 1000, TileWidth: 256, TileHeight: 256, Levels: 3})
	run, err = Replay(context.Background(), bad, Options{Template: mustTemplate(t, srv.URL, "ours")})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range run.Results {
		if r.Status != 400 || !strings.Contains(r.Err, "400") {
			t.Fatalf("unknown item: %+v", r)
		}
	}
	// Nothing listening: transport errors, no panic.
	run, err = Replay(context.Background(), bad, Options{Template: mustTemplate(t, "http://127.0.0.1:1", "ours"), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range run.Results {
		if r.Status != 0 || r.Err == "" {
			t.Fatalf("refused connection: %+v", r)
		}
	}
}

func TestFetchSlideAndStats(t *testing.T) {
	srv := fakeserver.New(square)
	defer srv.Close()
	s, err := FetchSlide(context.Background(), nil, srv.URL+"/api/v1/item/test/tiles?sizeX=10000&sizeY=5000", "test")
	if err != nil {
		t.Fatal(err)
	}
	// Spec 1.2: 10000x5000 with 256 px tiles has 7 levels.
	if s.SizeX != 10000 || s.SizeY != 5000 || s.Levels != 7 || s.TileWidth != 256 {
		t.Errorf("test slide %+v", s)
	}
	st, err := FetchStats(context.Background(), nil, srv.URL+StatsPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st["tileCache.hits"]; !ok {
		t.Errorf("flattened stats %v lack tileCache.hits", st)
	}
	if _, err := FetchSlide(context.Background(), nil, srv.URL+"/api/v1/item/nope/tiles", "nope"); err == nil {
		t.Error("metadata of an unknown item accepted")
	}
}
