package stats

import (
	"bytes"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tileserver/tileserver/bench/replay"
)

// The fixture is a small recorded run whose numbers were worked out by
// hand: 11 requests over 2 s, one 404, one refused connection, latencies
// 1..9 ms and 100 ms, three views that sent requests.
func loadFixture(t *testing.T) Record {
	t.Helper()
	rec, err := LoadRecord(filepath.Join("..", "testdata", "run-small.json"))
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestSummarizeFixture(t *testing.T) {
	s := Summarize("fixture", loadFixture(t).Run)
	if s.Requests != 11 || s.Errors != 2 {
		t.Fatalf("requests %d errors %d, want 11 and 2", s.Requests, s.Errors)
	}
	if s.FirstError != "HTTP 404" {
		t.Errorf("first error %q", s.FirstError)
	}
	if !near(s.Seconds, 2) || !near(s.Throughput, 5.5) {
		t.Errorf("seconds %v throughput %v, want 2 and 5.5", s.Seconds, s.Throughput)
	}
	if s.Bytes != 16050 {
		t.Errorf("bytes %d, want 16050", s.Bytes)
	}
	want := Dist{N: 10, Mean: 14.5, P50: 5, P90: 9, P99: 100, Max: 100}
	if s.Latency.N != want.N || !near(s.Latency.Mean, want.Mean) || s.Latency.P50 != want.P50 ||
		s.Latency.P90 != want.P90 || s.Latency.P99 != want.P99 || s.Latency.Max != want.Max {
		t.Errorf("latency %+v, want %+v", s.Latency, want)
	}
	if s.Status["200"] != 9 || s.Status["404"] != 1 || s.Status["no response"] != 1 {
		t.Errorf("status counts %v", s.Status)
	}
	wantCache := map[string]int{Miss: 2, HitMemory: 4, HitMemcached: 2, Coalesced: 1, NoHeader: 1}
	for k, v := range wantCache {
		if s.Cache[k] != v {
			t.Errorf("cache %s = %d, want %d", k, s.Cache[k], v)
		}
	}
	if !near(s.HitRate, 6.0/9.0) {
		t.Errorf("hit rate %v, want 6/9", s.HitRate)
	}
	if s.Views != 3 {
		t.Errorf("views %d, want 3 (the view without requests is left out)", s.Views)
	}
	if s.ViewportMs.P50 != 38 || s.ViewportMs.Max != 144 || !near(s.ViewportMs.Mean, 202.0/3) {
		t.Errorf("viewport %+v, want p50 38, max 144, mean 67.33", s.ViewportMs)
	}
}

func TestNewDistNearestRank(t *testing.T) {
	var v []float64
	for i := 100; i >= 1; i-- {
		v = append(v, float64(i))
	}
	d := NewDist(v)
	if d.P50 != 50 || d.P90 != 90 || d.P99 != 99 || d.Max != 100 || d.Mean != 50.5 {
		t.Errorf("dist of 1..100: %+v", d)
	}
	if d := NewDist(nil); d.N != 0 || d.Max != 0 {
		t.Errorf("empty dist %+v", d)
	}
	if d := NewDist([]float64{7}); d.P50 != 7 || d.P99 != 7 {
		t.Errorf("one value %+v", d)
	}
}

func TestHitRateOverTime(t *testing.T) {
	pts := HitRateOverTime(loadFixture(t).Run, 1)
	if len(pts) != 2 {
		t.Fatalf("points %+v, want 2 buckets", pts)
	}
	if pts[0].N != 8 || !near(pts[0].Value, 0.75) || pts[0].T != 0 {
		t.Errorf("bucket 0 %+v, want 6 hits of 8", pts[0])
	}
	if pts[1].N != 1 || pts[1].Value != 0 || pts[1].T != 1 {
		t.Errorf("bucket 1 %+v, want 0 hits of 1", pts[1])
	}
}

func TestTables(t *testing.T) {
	a := Summarize("a", loadFixture(t).Run)
	b := a
	b.Name, b.Throughput = "b", 11
	b.Latency.P50 = 10
	var buf bytes.Buffer
	if err := RatioTable([]Summary{a, b}).Text(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("ratio table:\n%s", buf.String())
	}
	// b has twice a's throughput and twice its median latency.
	if f := strings.Fields(lines[2]); f[0] != "b" || f[2] != "2.00x" || f[4] != "2.00x" {
		t.Errorf("ratio row %q", lines[2])
	}
	buf.Reset()
	if err := SummaryTable([]Summary{a}).Markdown(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| measure | a |", "| latency p99 ms | 100.0 |", "| hit rate | 66.7% |", "| viewport p50 ms | 38.0 |"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestServerDelta(t *testing.T) {
	s := Summary{ServerBefore: map[string]float64{"tileCache.used": 10, "gone": 1},
		ServerAfter: map[string]float64{"tileCache.used": 25, "new": 3}}
	d := s.ServerDelta()
	if len(d) != 1 || d["tileCache.used"] != 15 {
		t.Errorf("delta %v", d)
	}
}

func TestSampleRunKeepsViewsAndSpacing(t *testing.T) {
	run := &replay.Run{Views: make([]replay.ViewTiming, 7)}
	for i := 0; i < 1000; i++ {
		run.Results = append(run.Results, replay.Result{Seq: i})
	}
	got := SampleRun(run, 100)
	if len(got.Results) != 100 || len(got.Views) != 7 {
		t.Fatalf("sampled %d results and %d views, want 100 and 7", len(got.Results), len(got.Views))
	}
	for i, r := range got.Results {
		if r.Seq != 10*i {
			t.Fatalf("result %d is request %d, want %d", i, r.Seq, 10*i)
		}
	}
	if len(run.Results) != 1000 {
		t.Fatal("SampleRun modified its input")
	}
	if SampleRun(run, 5000) != run {
		t.Fatal("a run smaller than the sample was copied")
	}
}

func TestServerTableDropsEmptyRows(t *testing.T) {
	ss := []Summary{
		{Name: "a", ServerBefore: map[string]float64{"hits": 1, "errors": 0}, ServerAfter: map[string]float64{"hits": 5, "errors": 0}},
		{Name: "b", ServerBefore: map[string]float64{"hits": 0, "errors": 0}, ServerAfter: map[string]float64{"hits": 2, "errors": 0}},
	}
	tb := ServerTable(ss)
	if len(tb.Rows) != 1 || tb.Rows[0][0] != "hits" || tb.Rows[0][1] != "4" || tb.Rows[0][2] != "2" {
		t.Fatalf("rows = %v, want only hits 4 2", tb.Rows)
	}
}
