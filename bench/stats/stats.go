// Package stats summarises replay runs: throughput, latency percentiles,
// cache hit rates per tier and time to a complete viewport, printed as
// tables and saved as JSON.
package stats

import (
	"compress/gzip"
	"encoding/json"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/tileserver/tileserver/bench/replay"
)

// Cache header values; a request without the header counts as "none".
const (
	HitMemory    = "hit-memory"
	HitMemcached = "hit-memcached"
	HitDisk      = "hit-disk"
	Miss         = "miss"
	Coalesced    = "coalesced"
	NoHeader     = "none"
)

// Dist is a distribution in milliseconds. Percentiles use the nearest-rank
// method: the p-th percentile of n sorted values is the value at rank
// ceil(p/100·n).
type Dist struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

// NewDist summarises values given in milliseconds.
func NewDist(ms []float64) Dist {
	if len(ms) == 0 {
		return Dist{}
	}
	s := append([]float64(nil), ms...)
	sort.Float64s(s)
	sum := 0.0
	for _, v := range s {
		sum += v
	}
	return Dist{N: len(s), Mean: sum / float64(len(s)), P50: rank(s, 50), P90: rank(s, 90), P99: rank(s, 99), Max: s[len(s)-1]}
}

func rank(sorted []float64, p float64) float64 {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Summary is what a run measured.
type Summary struct {
	Name     string  `json:"name"`
	Target   string  `json:"target"`
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	Seconds  float64 `json:"seconds"`
	// Throughput is successful and failed requests per second of the run.
	Throughput float64 `json:"throughput"`
	Bytes      int64   `json:"bytes"`
	// Latency is over every request that got a response.
	Latency Dist           `json:"latencyMs"`
	Status  map[string]int `json:"status"`
	// Cache counts X-Tile-Cache values.
	Cache map[string]int `json:"cache"`
	// HitRate is the fraction of requests answered from any cache tier,
	// among requests that carried the header; -1 when none did.
	HitRate float64 `json:"hitRate"`
	// Views counts views that sent at least one request; ViewportMs is
	// their time from the user's action to the last sharp tile.
	Views      int    `json:"views"`
	ViewportMs Dist   `json:"viewportMs"`
	FirstError string `json:"firstError,omitempty"`
	// ServerBefore/After are the server's cache statistics around the
	// run (flattened), when it reports them.
	ServerBefore map[string]float64 `json:"serverBefore,omitempty"`
	ServerAfter  map[string]float64 `json:"serverAfter,omitempty"`
}

// Summarize computes the summary of run.
func Summarize(name string, run *replay.Run) Summary {
	s := Summary{Name: name, Target: run.Target, Status: map[string]int{}, Cache: map[string]int{}, HitRate: -1}
	s.Seconds = float64(run.ElapsedNS) / 1e9
	var lat []float64
	for _, r := range run.Results {
		s.Requests++
		if r.Err != "" {
			s.Errors++
			if s.FirstError == "" {
				s.FirstError = r.Err
			}
		}
		if r.Status == 0 {
			s.Status["no response"]++
			continue
		}
		s.Status[strconv.Itoa(r.Status)]++
		s.Bytes += r.Bytes
		lat = append(lat, float64(r.LatencyNS)/1e6)
		c := r.Cache
		if c == "" {
			c = NoHeader
		}
		s.Cache[c]++
	}
	if s.Seconds > 0 {
		s.Throughput = float64(s.Requests) / s.Seconds
	}
	s.Latency = NewDist(lat)
	if withHeader := s.Requests - s.Status["no response"] - s.Cache[NoHeader]; withHeader > 0 {
		s.HitRate = float64(s.Cache[HitMemory]+s.Cache[HitMemcached]+s.Cache[HitDisk]) / float64(withHeader)
	}
	var ttv []float64
	for _, v := range run.Views {
		if v.Requests == 0 {
			continue
		}
		s.Views++
		ttv = append(ttv, float64(v.DoneNS-v.StartNS)/1e6)
	}
	s.ViewportMs = NewDist(ttv)
	return s
}

// ServerDelta is after minus before for every key present in both.
func (s Summary) ServerDelta() map[string]float64 {
	out := map[string]float64{}
	for k, a := range s.ServerAfter {
		if b, ok := s.ServerBefore[k]; ok {
			out[k] = a - b
		}
	}
	return out
}

// Point is one bucket of a time series.
type Point struct {
	T     float64 // seconds from the start of the run (bucket start)
	Value float64
	N     int
}

// HitRateOverTime buckets the requests that carried X-Tile-Cache by start
// time and gives each bucket's hit fraction.
func HitRateOverTime(run *replay.Run, bucketSeconds float64) []Point {
	if bucketSeconds <= 0 {
		bucketSeconds = 1
	}
	hits := map[int]int{}
	all := map[int]int{}
	last := -1
	for _, r := range run.Results {
		if r.Cache == "" {
			continue
		}
		b := int(float64(r.StartNS) / 1e9 / bucketSeconds)
		all[b]++
		if strings.HasPrefix(r.Cache, "hit-") {
			hits[b]++
		}
		last = max(last, b)
	}
	var out []Point
	for b := 0; b <= last; b++ {
		if all[b] == 0 {
			continue
		}
		out = append(out, Point{T: float64(b) * bucketSeconds, Value: float64(hits[b]) / float64(all[b]), N: all[b]})
	}
	return out
}

// Record is what `tilebench replay --json` writes: the summary and the raw
// run.
type Record struct {
	Summary Summary     `json:"summary"`
	Run     *replay.Run `json:"run"`
}

// Save writes a record as JSON.
func (r Record) Save(path string) error {
	b, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// LoadRecord reads a record; a file holding only a run is accepted too.
func LoadRecord(path string) (Record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Record{}, err
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, err
	}
	if r.Run == nil {
		var run replay.Run
		if err := json.Unmarshal(b, &run); err != nil {
			return Record{}, err
		}
		r.Run = &run
	}
	return r, nil
}

// SaveRecords writes several records as one JSON array.
func SaveRecords(path string, recs []Record) error {
	b, err := json.MarshalIndent(recs, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// SaveSummaries writes the summaries of several records as one JSON array
// (without the per-request data).
func SaveSummaries(path string, recs []Record) error {
	sums := make([]Summary, len(recs))
	for i, r := range recs {
		sums[i] = r.Summary
	}
	b, err := json.MarshalIndent(sums, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// SaveSampledRuns writes the records gzip-compressed, each run's requests
// thinned to at most maxResults evenly spaced ones (views are kept whole):
// enough to redraw the plots at a fraction of the size.
func SaveSampledRuns(path string, recs []Record, maxResults int) error {
	out := make([]Record, len(recs))
	for i, r := range recs {
		out[i] = Record{Summary: r.Summary, Run: SampleRun(r.Run, maxResults)}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(f)
	if err := json.NewEncoder(zw).Encode(out); err != nil {
		f.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// SampleRun returns run with at most n of its results, evenly spaced in
// their order; run itself is not modified.
func SampleRun(run *replay.Run, n int) *replay.Run {
	if run == nil || n <= 0 || len(run.Results) <= n {
		return run
	}
	c := *run
	c.Results = make([]replay.Result, 0, n)
	step := float64(len(run.Results)) / float64(n)
	for i := 0; i < n; i++ {
		c.Results = append(c.Results, run.Results[int(float64(i)*step)])
	}
	return &c
}
