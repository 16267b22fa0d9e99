package girder

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tileserver/tileserver/girder/store"
	"github.com/tileserver/tileserver/tilecache"
	"github.com/tileserver/tileserver/tilesource/pipeline"
)

// syncBuffer is a log sink safe for the background workers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newBgEnv is newEnv with background work: extra files (destination →
// testdata path) are added to the slide root, and options builds the
// server options from the real pipeline (srv returns the server once it
// exists) before the first import.
func newBgEnv(t *testing.T, extra map[string]string, options func(pl *pipeline.Pipeline, srv func() *Server) []Option) (*env, *syncBuffer) {
	t.Helper()
	base := t.TempDir()
	e := &env{t: t, data: filepath.Join(base, "data"), slides: filepath.Join(base, "slides")}
	if err := os.MkdirAll(e.data, 0o755); err != nil {
		t.Fatal(err)
	}
	for dst, src := range slideFiles {
		if !strings.HasPrefix(dst, "bad/") {
			copyFile(t, filepath.Join(testdata, src), filepath.Join(e.slides, dst))
		}
	}
	for dst, src := range extra {
		copyFile(t, filepath.Join(testdata, src), filepath.Join(e.slides, dst))
	}
	st, err := store.Open(e.data, e.slides)
	if err != nil {
		t.Fatal(err)
	}
	tiles, err := tilecache.New(tilecache.Config{Mode: tilecache.ModeMemory, MemoryBytes: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	sources := tilecache.NewSources(tilecache.SourcesConfig{MemoryBytes: 256 << 20})
	pl, err := pipeline.New(pipeline.Config{Tiles: tiles, Sources: sources})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	e.store = st
	opts := append([]Option{WithCacheAdmin(TileCacheAdmin{Tiles: tiles, Sources: sources})}, options(pl, func() *Server { return e.srv })...)
	e.srv = New(Config{AdminToken: testAdminToken, Logger: slog.New(slog.NewTextHandler(logs, nil))}, pl, st, opts...)
	e.http = httptest.NewServer(e.srv.Handler())
	t.Cleanup(func() {
		e.http.Close()
		e.srv.Close()
		tiles.Close()
		sources.Close()
		st.Close()
	})
	if _, err := e.srv.Import(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	return e, logs
}

func (e *env) admin(method, path, body string) resp {
	e.t.Helper()
	h := map[string]string{"Girder-Token": testAdminToken}
	if body != "" {
		h["Content-Type"] = "application/json"
	}
	return e.do(method, path, h, strings.NewReader(body))
}

// waitWarm polls the status route (bounded) until nothing is queued or
// running.
func (e *env) waitWarm() WarmStatus {
	e.t.Helper()
	for range 3000 {
		var st WarmStatus
		r := e.admin(http.MethodGet, "/api/v1/large_image/cache/warm", "")
		if r.status != http.StatusOK {
			e.t.Fatalf("warm status: %d %s", r.status, r.body)
		}
		r.json(e.t, &st)
		if st.Queued == 0 && st.Running == 0 {
			return st
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.t.Fatal("warm-up did not finish")
	return WarmStatus{}
}

func cacheStatus(t *testing.T, r resp) string {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	return r.header.Get("X-Tile-Cache")
}

// TestWarmRouteFillsLowLevels warms the CMU slide (levels of 1, 4, 12, 35
// and 130 tiles) through the admin route with a 12-tile bound: levels 0–2
// and the default thumbnail are then memory hits for plain viewer
// requests, level 3 is a miss.
func TestWarmRouteFillsLowLevels(t *testing.T) {
	e, logs := newBgEnv(t, nil, func(pl *pipeline.Pipeline, _ func() *Server) []Option {
		return []Option{WithBackground(BackgroundConfig{Warmer: pl, WarmMaxTiles: 12})}
	})
	id := cmuID()
	wantError(t, e.do(http.MethodPost, "/api/v1/large_image/cache/warm?items="+id, nil, nil),
		http.StatusUnauthorized, "access", "You must be logged in.")
	wantError(t, e.admin(http.MethodPost, "/api/v1/large_image/cache/warm", `{"items": []}`),
		http.StatusBadRequest, "validation", "No items given.")
	wantError(t, e.admin(http.MethodPost, "/api/v1/large_image/cache/warm?items=000000000000000000000000", ""),
		http.StatusBadRequest, "validation", "No such item: 000000000000000000000000")
	wantErrorContains(t, e.admin(http.MethodPost, "/api/v1/large_image/cache/warm?items=nope", ""),
		http.StatusBadRequest, "Invalid ObjectId")

	r := e.admin(http.MethodPost, "/api/v1/large_image/cache/warm", `{"items": ["`+id+`"]}`)
	if r.status != http.StatusOK {
		t.Fatalf("warm: %d %s", r.status, r.body)
	}
	st := e.waitWarm()
	if st.Done != 1 || st.Failed != 0 || len(st.Items) != 1 {
		t.Fatalf("status %+v", st)
	}
	it := st.Items[0]
	names := 0
	{
		var list []string
		e.get(itemPath("CMU-1-Small-Region.svs", "/images")).json(t, &list)
		names = len(list)
	}
	want := 1 + 1 + 4 + 12 + names
	if it.ID != id || it.State != "done" || it.Source != "request" || it.Progress.Levels != 3 ||
		it.Progress.Total != want || it.Progress.Done != want || it.Started == nil || it.Finished == nil {
		t.Errorf("item status %+v, want %d units over 3 levels", it, want)
	}
	if n := strings.Count(logs.String(), "warm: item done"); n != 1 {
		t.Errorf("%d log lines for one item:\n%s", n, logs)
	}
	// A viewer of the slide now: the low levels and the thumbnail are hits.
	for z, cols := range []int{1, 2, 3} {
		rows := []int{1, 2, 4}[z]
		for y := range rows {
			for x := range cols {
				path := itemPath("CMU-1-Small-Region.svs", fmt.Sprintf("/zxy/%d/%d/%d", z, x, y))
				if got := cacheStatus(t, e.get(path)); got != tilecache.StatusHitMemory {
					t.Fatalf("%s after warm-up: %s", path, got)
				}
			}
		}
	}
	if got := cacheStatus(t, e.get(itemPath("CMU-1-Small-Region.svs", "/thumbnail"))); got != tilecache.StatusHitMemory {
		t.Errorf("thumbnail after warm-up: %s", got)
	}
	if got := cacheStatus(t, e.get(itemPath("CMU-1-Small-Region.svs", "/zxy/3/2/3"))); got != tilecache.StatusMiss {
		t.Errorf("level 3 is not warmed: %s", got)
	}
	// ?items= with several ids; an item being warmed is not queued twice.
	boxes := store.ID("item", "boxes.tiff")
	r = e.admin(http.MethodPost, "/api/v1/large_image/cache/warm?items="+boxes+","+boxes, "")
	var added struct{ Added int }
	r.json(t, &added)
	if r.status != http.StatusOK || added.Added != 1 {
		t.Errorf("warm ?items=: %d %s", r.status, r.body)
	}
	if st := e.waitWarm(); st.Done != 2 {
		t.Errorf("after the second warm-up: %+v", st)
	}
}

// TestWarmOnImport wires the import hook as the command does: every item
// found is warmed once; a re-import warms only the files that changed.
func TestWarmOnImport(t *testing.T) {
	e, logs := newBgEnv(t, nil, func(pl *pipeline.Pipeline, srv func() *Server) []Option {
		return []Option{
			WithBackground(BackgroundConfig{Warmer: pl}),
			WithImportHook(func(_ context.Context, items []store.Item) {
				ids := make([]string, len(items))
				for i, it := range items {
					ids[i] = it.ID
				}
				srv().WarmItems(ids, "import", true)
			}),
		}
	})
	st := e.waitWarm()
	if st.Done != 4 || st.Failed != 0 || len(st.Items) != 4 {
		t.Fatalf("after import: %+v", st)
	}
	for _, it := range st.Items {
		if it.Source != "import" || it.Progress.Done != it.Progress.Total || it.Progress.Total < 2 {
			t.Errorf("item %+v", it)
		}
	}
	if n := strings.Count(logs.String(), "warm: item done"); n != 4 {
		t.Errorf("%d item log lines, want 4", n)
	}
	if r := e.admin(http.MethodPut, "/api/v1/large_image/import", ""); r.status != http.StatusOK {
		t.Fatalf("re-import: %d %s", r.status, r.body)
	}
	if st := e.waitWarm(); st.Done != 4 || strings.Count(logs.String(), "warm: item done") != 4 {
		t.Errorf("unchanged re-import warmed again: %+v", st)
	}
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(filepath.Join(e.slides, "boxes.tiff"), later, later); err != nil {
		t.Fatal(err)
	}
	if r := e.admin(http.MethodPut, "/api/v1/large_image/import", ""); r.status != http.StatusOK {
		t.Fatalf("re-import: %d %s", r.status, r.body)
	}
	e.waitWarm()
	if n := strings.Count(logs.String(), "warm: item done"); n != 5 || !strings.Contains(logs.String(), "name=boxes.tiff source=import") {
		t.Errorf("changed file: %d item log lines, want 5:\n%s", n, logs)
	}
	// The cache info route reports the warm counts.
	var info map[string]any
	e.admin(http.MethodGet, "/api/v1/large_image/cache", "").json(t, &info)
	if w, _ := info["warm"].(map[string]any); w == nil || w["done"] != 4.0 {
		t.Errorf("cache info warm: %v", info["warm"])
	}
}

// TestPrecacheWorklist: a worklist of 24 slides is warmed in order, five
// at a time, never more than 15 past the furthest slide opened; opening a
// slide moves the window and slides passed over are not warmed.
func TestPrecacheWorklist(t *testing.T) {
	extra := map[string]string{}
	var ids []string
	for i := range 24 {
		rel := fmt.Sprintf("worklist/w%02d.tiff", i)
		extra[rel] = "openslide-python/boxes.tiff"
		ids = append(ids, store.ID("item", rel))
	}
	e, _ := newBgEnv(t, extra, func(pl *pipeline.Pipeline, _ func() *Server) []Option {
		return []Option{WithBackground(BackgroundConfig{Warmer: pl})}
	})
	type release struct{ index, opened, done int }
	var releases []release
	var began []string
	w := e.srv.bg.warm
	w.mu.Lock()
	w.released = func(index, opened int) {
		done := 0
		for _, r := range w.records {
			if r.State == warmDone {
				done++
			}
		}
		releases = append(releases, release{index, opened, done})
	}
	w.began = func(id string) { began = append(began, id) }
	w.mu.Unlock()
	snapshot := func() ([]release, []string) {
		w.mu.Lock()
		defer w.mu.Unlock()
		return append([]release(nil), releases...), append([]string(nil), began...)
	}
	index := map[string]int{}
	for i, id := range ids {
		index[id] = i
	}

	body := `{"items": ["` + strings.Join(ids, `", "`) + `"]}`
	if r := e.admin(http.MethodPost, "/api/v1/large_image/cache/precache", body); r.status != http.StatusOK {
		t.Fatalf("precache: %d %s", r.status, r.body)
	}
	st := e.waitWarm()
	rel, beg := snapshot()
	if len(rel) != 15 || len(beg) != 15 || st.Done != 15 || st.Precache.Next != 15 || st.Precache.Opened != 0 {
		t.Fatalf("nothing opened: releases %v, began %d, status %+v", rel, len(beg), st)
	}
	for i, r := range rel {
		// In order, in batches of five: a batch is released only when the
		// previous one is done.
		if r.index != i || r.opened != 0 || r.done != i/5*5 {
			t.Errorf("release %d: %+v", i, r)
		}
	}
	for i, id := range beg {
		if index[id] != i {
			t.Errorf("warm-up %d was worklist item %d", i, index[id])
		}
	}
	for _, it := range st.Items {
		if it.Source != "precache" || it.State != "done" {
			t.Errorf("worklist item %+v", it)
		}
	}

	// The pathologist opens slide 3: the window now ends before slide 19.
	if r := e.get("/api/v1/item/" + ids[3] + "/tiles"); r.status != http.StatusOK {
		t.Fatalf("metadata: %d %s", r.status, r.body)
	}
	st = e.waitWarm()
	rel, beg = snapshot()
	if st.Precache.Opened != 4 || st.Precache.Next != 19 || len(beg) != 19 {
		t.Fatalf("after opening slide 3: %+v, began %d", st.Precache, len(beg))
	}
	for _, r := range rel[15:] {
		if r.opened != 4 || r.index >= 4+15 {
			t.Errorf("release after opening slide 3: %+v", r)
		}
	}
	// Then jumps to slide 20 (a tile request counts as opening): 19 and 20
	// were passed over and are not warmed.
	if r := e.get("/api/v1/item/" + ids[20] + "/tiles/zxy/0/0/0"); r.status != http.StatusOK {
		t.Fatalf("tile: %d %s", r.status, r.body)
	}
	st = e.waitWarm()
	rel, beg = snapshot()
	if st.Precache.Opened != 21 || st.Precache.Next != 24 || len(beg) != 22 {
		t.Fatalf("after opening slide 20: %+v, began %d", st.Precache, len(beg))
	}
	for i, id := range beg[19:] {
		if index[id] != 21+i {
			t.Errorf("after the jump, warm-up of worklist item %d", index[id])
		}
	}
	for _, r := range rel {
		if r.index >= r.opened+15 {
			t.Errorf("item %d released %d past the opened position %d", r.index, r.index-r.opened, r.opened)
		}
	}
	// A new worklist replaces the old one.
	if r := e.admin(http.MethodPost, "/api/v1/large_image/cache/precache?items="+ids[0], ""); r.status != http.StatusOK {
		t.Fatalf("precache: %d %s", r.status, r.body)
	}
	if st := e.waitWarm(); len(st.Precache.Items) != 1 || st.Precache.Next != 1 {
		t.Errorf("new worklist: %+v", st.Precache)
	}
	// In a new worklist the slide opened last before it counts again when
	// it is opened again.
	body = `{"items": ["` + ids[0] + `", "` + ids[20] + `"]}`
	if r := e.admin(http.MethodPost, "/api/v1/large_image/cache/precache", body); r.status != http.StatusOK {
		t.Fatalf("precache: %d %s", r.status, r.body)
	}
	if st := e.waitWarm(); st.Precache.Opened != 0 {
		t.Fatalf("new worklist: %+v", st.Precache)
	}
	if r := e.get("/api/v1/item/" + ids[20] + "/tiles/zxy/0/0/0"); r.status != http.StatusOK {
		t.Fatalf("tile: %d %s", r.status, r.body)
	}
	if st := e.waitWarm(); st.Precache.Opened != 2 {
		t.Errorf("slide 20 opened again in the new worklist: %+v", st.Precache)
	}
}

// TestPrefetchOverHTTP: idle, the ring around a viewer's tile is
// prefetched and its tiles are then hits; under a hammer of concurrent
// viewers no prefetch starts while a real request is in flight (threshold
// 0, one worker); the counters show in the cache info route and /metrics.
func TestPrefetchOverHTTP(t *testing.T) {
	act := pipeline.NewActivity()
	var mu sync.Mutex
	var starts []int64
	var pf *pipeline.Prefetcher
	e, _ := newBgEnv(t, nil, func(pl *pipeline.Pipeline, _ func() *Server) []Option {
		pf = pipeline.NewPrefetcher(pl, pipeline.PrefetchConfig{Workers: 1, MaxInFlight: 0, Activity: act,
			OnProduce: func(n int64) {
				mu.Lock()
				starts = append(starts, n)
				mu.Unlock()
			}})
		return []Option{WithBackground(BackgroundConfig{Activity: act, Prefetch: pf})}
	})
	t.Cleanup(pf.Close) // runs before the caches close
	// settle waits until at least queued tiles have been planned (the plan
	// is made after the response is written, so it may not exist yet) and
	// all planned work is done.
	settle := func(queued uint64) pipeline.PrefetchStats {
		for range 3000 {
			if st := pf.Stats(); st.Queued >= queued && st.Pending == 0 && st.Active == 0 {
				return st
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("prefetch did not settle: %+v", pf.Stats())
		return pipeline.PrefetchStats{}
	}
	cmu := func(z, x, y int) string {
		return itemPath("CMU-1-Small-Region.svs", fmt.Sprintf("/zxy/%d/%d/%d", z, x, y))
	}

	// Level 4 of CMU is 10×13 tiles and the deepest level.
	if got := cacheStatus(t, e.get(cmu(4, 7, 10), "User-Agent", "viewer A")); got != tilecache.StatusMiss {
		t.Fatalf("first request: %s", got)
	}
	st := settle(8)
	if st.Queued != 8 || st.Produced != 8 {
		t.Errorf("ring of 8: %+v", st)
	}
	for dy := -1; dy <= 1; dy++ {
		for dx := -1; dx <= 1; dx++ {
			if dx == 0 && dy == 0 {
				continue
			}
			if got := cacheStatus(t, e.get(cmu(4, 7+dx, 10+dy), "User-Agent", "viewer B")); got != tilecache.StatusHitMemory {
				t.Errorf("ring tile %d/%d: %s", 7+dx, 10+dy, got)
			}
		}
	}
	if got := cacheStatus(t, e.get(cmu(4, 9, 12), "User-Agent", "viewer C")); got != tilecache.StatusMiss {
		t.Errorf("tile outside the ring: %s", got)
	}
	// Viewer C's plan is made after its response: give it a moment to
	// appear before waiting for the queue to drain.
	for range 100 {
		if pf.Stats().Queued > st.Queued {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	settle(0)

	var wg sync.WaitGroup
	for u := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ua := fmt.Sprint("hammer ", u)
			for i := range 25 {
				path := cmu(2+i%3, (u+i)%3, (u*i)%4)
				req, _ := http.NewRequest(http.MethodGet, e.http.URL+path, nil)
				req.Header.Set("User-Agent", ua)
				res, err := e.http.Client().Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					t.Errorf("%s: %d", path, res.StatusCode)
				}
			}
		}()
	}
	wg.Wait()
	st = settle(0)
	mu.Lock()
	if len(starts) <= 16 {
		t.Errorf("only %d prefetch fetches after the load", len(starts))
	}
	for _, n := range starts {
		if n != 0 {
			t.Errorf("a prefetch started with %d real requests in flight", n)
		}
	}
	mu.Unlock()

	var info map[string]any
	e.admin(http.MethodGet, "/api/v1/large_image/cache", "").json(t, &info)
	p, _ := info["prefetch"].(map[string]any)
	if p == nil || p["queued"] != float64(st.Queued) || p["produced"] != float64(st.Produced) || p["skipped"] != float64(st.Skipped) {
		t.Errorf("cache info prefetch %v, want %+v", info["prefetch"], st)
	}
	// No warmer: no warm routes.
	if r := e.admin(http.MethodGet, "/api/v1/large_image/cache/warm", ""); r.status != http.StatusNotFound {
		t.Errorf("warm status without a warmer: %d", r.status)
	}
}

// panickyWarmer panics on one item and warms the others through the real
// pipeline.
type panickyWarmer struct {
	pl   *pipeline.Pipeline
	name string
}

func (p panickyWarmer) Warm(ctx context.Context, loc pipeline.Locator, opt pipeline.WarmOptions, progress func(pipeline.WarmProgress)) (pipeline.WarmProgress, error) {
	if strings.HasSuffix(loc.Path, p.name) {
		panic("reader bug")
	}
	return p.pl.Warm(ctx, loc, opt, progress)
}

// TestWarmPanicFailsOneItem: a panic while warming one item fails that
// item with one log line; the others are warmed and the server serves.
func TestWarmPanicFailsOneItem(t *testing.T) {
	e, logs := newBgEnv(t, nil, func(pl *pipeline.Pipeline, srv func() *Server) []Option {
		return []Option{
			WithBackground(BackgroundConfig{Warmer: panickyWarmer{pl, "boxes.tiff"}}),
			WithImportHook(func(_ context.Context, items []store.Item) {
				ids := make([]string, len(items))
				for i, it := range items {
					ids[i] = it.ID
				}
				srv().WarmItems(ids, "import", true)
			}),
		}
	})
	st := e.waitWarm()
	if st.Done != 3 || st.Failed != 1 {
		t.Fatalf("after import: %+v", st)
	}
	for _, it := range st.Items {
		if (it.State == warmFailed) != (it.Name == "boxes.tiff") || (it.State == warmFailed && it.Error != "Internal error") {
			t.Errorf("item %s: %s %q", it.Name, it.State, it.Error)
		}
	}
	if n := strings.Count(logs.String(), "warm-up panicked: reader bug"); n != 1 {
		t.Errorf("%d log lines about the panic, want 1:\n%s", n, logs)
	}
	if r := e.do(http.MethodGet, "/healthz", nil, nil); r.status != http.StatusOK {
		t.Errorf("healthz after the panic: %d", r.status)
	}
}
