package girder

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tileserver/tileserver/girder/store"
	"github.com/tileserver/tileserver/tilesource/work"
)

// budgetEnv serves CMU-1-Small-Region.svs through a pipeline with the given
// work budget and request timeout.
func budgetEnv(t *testing.T, budget *work.Budget, timeout time.Duration) (*env, string) {
	t.Helper()
	base := t.TempDir()
	e := &env{t: t, data: filepath.Join(base, "data"), slides: filepath.Join(base, "slides")}
	copyFile(t, filepath.Join(testdata, "libvips/CMU-1-Small-Region.svs"), filepath.Join(e.slides, "cmu.svs"))
	if err := os.MkdirAll(e.data, 0o755); err != nil {
		t.Fatal(err)
	}
	e.work, e.timeout = budget, timeout
	e.start()
	if _, err := e.srv.Import(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	items := e.store.Items(store.ItemQuery{Name: "cmu.svs", Text: "cmu"})
	if len(items) != 1 {
		t.Fatalf("items %v", items)
	}
	return e, items[0].ID
}

func TestBusyBudgetAnswers503(t *testing.T) {
	const queue = 8
	budget := work.New(1, queue)
	e, id := budgetEnv(t, budget, 0)
	// Everything the budget has is in use and its queue is full: the tile
	// cannot be made now.
	release, err := budget.Acquire(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var waiters sync.WaitGroup
	for range queue {
		waiters.Go(func() {
			if _, err := budget.Acquire(ctx, 1); err == nil {
				t.Error("a queued step was granted")
			}
		})
	}
	for budget.Stats().Queued < queue {
		time.Sleep(time.Millisecond)
	}
	r := e.get("/api/v1/item/" + id + "/tiles/zxy/0/0/0")
	cancel()
	waiters.Wait()
	release()
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "2" ||
		string(r.body) != `{"message":"Server busy, try again later","type":"rest"}`+"\n" {
		t.Fatalf("busy: %d Retry-After %q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	if r := e.get("/api/v1/item/" + id + "/tiles/zxy/0/0/0"); r.status != http.StatusOK || r.header.Get("Retry-After") != "" {
		t.Fatalf("after release: %d %s", r.status, r.body)
	}

	// The failure is counted once, by cause, in the panel and in /metrics.
	var info struct {
		Requests map[string]struct {
			Requests      uint64            `json:"requests"`
			Errors        map[string]uint64 `json:"errors"`
			LatencyMeanMS float64           `json:"latency_mean_ms"`
			LatencyMaxMS  float64           `json:"latency_max_ms"`
		} `json:"requests"`
		Work work.Stats `json:"work"`
	}
	e.get("/api/v1/large_image/cache", "Girder-Token", testAdminToken).json(t, &info)
	tile := info.Requests["tile"]
	if tile.Requests != 2 || len(tile.Errors) != 1 || tile.Errors["overloaded"] != 1 || info.Work.Refused == 0 ||
		tile.LatencyMeanMS <= 0 || tile.LatencyMeanMS > tile.LatencyMaxMS {
		t.Fatalf("panel: tile %+v, work %+v", tile, info.Work)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(e.srv.HTTPCollector())
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.Counter != nil:
				got[key] = m.GetCounter().GetValue()
			case m.Histogram != nil:
				got[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	if got["tileserver_work_refused_total"] == 0 {
		t.Error("no refused step in tileserver_work_refused_total")
	}
	for k, want := range map[string]float64{
		"tileserver_http_errors_total,cause=overloaded,family=tile": 1,
		"tileserver_http_requests_total,code=503,family=tile":       1,
		"tileserver_http_requests_total,code=200,family=tile":       1,
		"tileserver_http_request_duration_seconds,family=tile":      2,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
}

func TestRequestDeadlineAnswers503(t *testing.T) {
	e, id := budgetEnv(t, nil, time.Nanosecond)
	r := e.get("/api/v1/item/" + id + "/tiles/zxy/0/0/0")
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "2" {
		t.Fatalf("%d %q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	var body apiError
	if err := json.Unmarshal(r.body, &body); err != nil || body.Message != "Request timed out, try again later" {
		t.Fatalf("body %s", r.body)
	}
}

func TestRouteFamilies(t *testing.T) {
	for route, want := range map[string]string{
		"/api/v1/item/:id/tiles/zxy/:z/:x/:y":           "tile",
		"/api/v1/item/:id/tiles/fzxy/:frame/:z/:x/:y":   "tile",
		"/api/v1/item/:id/tiles/dzi_files/:level/:name": "tile",
		"/api/v1/item/:id/tiles/thumbnail":              "thumbnail",
		"/api/v1/item/:id/tiles/images/:key":            "thumbnail",
		"/api/v1/item/:id/tiles/images/:key/metadata":   "metadata",
		"/api/v1/item/:id/tiles/region":                 "region",
		"/api/v1/item/:id/tiles/tile_frames":            "region",
		"/api/v1/item/:id/tiles/histogram":              "analysis",
		"/api/v1/item/:id/tiles/pixel":                  "analysis",
		"/api/v1/item/:id/tiles":                        "metadata",
		"/api/v1/item/:id/tiles/tile_frames/quad_info":  "metadata",
		"/api/v1/item":              "metadata",
		"/api/v1/large_image/cache": "other",
		"/healthz":                  "other",
	} {
		if got := routeFamily(route); got != want {
			t.Errorf("%s: %s, want %s", route, got, want)
		}
	}
}
