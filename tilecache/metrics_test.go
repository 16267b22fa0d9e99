package tilecache

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func metricValue(t *testing.T, mfs []*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s %v not found", name, labels)
	return 0
}

func TestRegisterExposesCounters(t *testing.T) {
	tc := newTestTiered(t, Config{Mode: ModeMemory, MemoryBytes: 1 << 20})
	sc := NewSources(SourcesConfig{MemoryBytes: 1000, MaxHandles: 10})
	reg := prometheus.NewPedanticRegistry()
	if err := Register(reg, tc, sc); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	for range 3 {
		tc.GetOrProduce(context.Background(), "k", constProducer([]byte("v"), &calls))
	}
	// A production cheap to make again, asked for once: not kept.
	tc.GetOrProduce(context.Background(), "cheap", cheapProducer([]byte("v"), &calls))
	_, rel, _ := sc.Acquire(context.Background(), "s", func() (Resource, error) { return &fakeResource{mem: 42}, nil })
	rel()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	mem := map[string]string{"cache": "tiles", "tier": "memory"}
	src := map[string]string{"cache": "sources", "tier": "memory"}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"tileserver_cache_hits_total", mem, 2},
		{"tileserver_cache_misses_total", mem, 2},
		{"tileserver_cache_items", mem, 1},
		{"tileserver_cache_skipped_writes_total", mem, 1},
		{"tileserver_cache_max_bytes", mem, 1 << 20},
		{"tileserver_cache_produced_total", map[string]string{"cache": "tiles"}, 2},
		{"tileserver_cache_used_bytes", src, 42},
		{"tileserver_cache_misses_total", src, 1},
		{"tileserver_cache_max_bytes", src, 1000},
	} {
		if got := metricValue(t, mfs, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}
