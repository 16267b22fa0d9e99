package tilecache

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Register exposes the counters of tiles and sources (either may be nil)
// as Prometheus metrics read at scrape time, labelled with cache
// ("tiles" or "sources") and tier ("memory", "memcached" or "disk").
func Register(reg prometheus.Registerer, tiles *Tiered, sources *SourceCache) error {
	return reg.Register(&collector{tiles: tiles, sources: sources})
}

var (
	labels        = []string{"cache", "tier"}
	descMaxBytes  = prometheus.NewDesc("tileserver_cache_max_bytes", "Byte budget of the cache tier.", labels, nil)
	descUsedBytes = prometheus.NewDesc("tileserver_cache_used_bytes", "Bytes held by the cache tier.", labels, nil)
	descItems     = prometheus.NewDesc("tileserver_cache_items", "Entries held by the cache tier.", labels, nil)
	descHits      = prometheus.NewDesc("tileserver_cache_hits_total", "Lookups answered by the cache tier.", labels, nil)
	descMisses    = prometheus.NewDesc("tileserver_cache_misses_total", "Lookups the cache tier could not answer.", labels, nil)
	descEvictions = prometheus.NewDesc("tileserver_cache_evictions_total", "Entries evicted to stay within budget.", labels, nil)
	descErrors    = prometheus.NewDesc("tileserver_cache_errors_total", "Failed operations (memcached failures, failed opens), each served as a miss.", labels, nil)
	descDropped   = prometheus.NewDesc("tileserver_cache_dropped_writes_total", "memcached or disk writes dropped because the write queue was full.", labels, nil)
	descSkipped   = prometheus.NewDesc("tileserver_cache_skipped_writes_total", "Values not written to the tier: too large for memcached's item size or the disk tier, or (memory) cheap to read again and not yet requested twice.", labels, nil)
	descCoalesced = prometheus.NewDesc("tileserver_cache_coalesced_total", "Requests that waited for an identical in-flight production.", []string{"cache"}, nil)
	descProduced  = prometheus.NewDesc("tileserver_cache_produced_total", "Tiles produced because every tier missed.", []string{"cache"}, nil)
	descCorrupt   = prometheus.NewDesc("tileserver_cache_corrupt_total", "Disk entries dropped because they failed their checksum (damaged or truncated).", labels, nil)
	descUndecrypt = prometheus.NewDesc("tileserver_cache_undecryptable_total", "Disk entries dropped because they were written under another encryption key.", labels, nil)
	descExpired   = prometheus.NewDesc("tileserver_cache_expired_total", "Disk entries dropped because their TTL had passed.", labels, nil)
	descWrites    = prometheus.NewDesc("tileserver_cache_writes_total", "Values written to the tier.", labels, nil)
	descHandles   = prometheus.NewDesc("tileserver_cache_open_handles", "File handles held by open sources.", labels, nil)
)

type collector struct {
	tiles   *Tiered
	sources *SourceCache
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMaxBytes, descUsedBytes, descItems, descHits, descMisses,
		descEvictions, descErrors, descDropped, descSkipped, descCoalesced, descProduced, descHandles,
		descCorrupt, descUndecrypt, descExpired, descWrites} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v uint64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), lv...)
	}
	counter := func(d *prometheus.Desc, v uint64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), lv...)
	}
	if c.tiles != nil {
		s := c.tiles.Stats()
		counter(descCoalesced, s.Coalesced, "tiles")
		counter(descProduced, s.Produced, "tiles")
		if s.Memory.Enabled {
			m := s.Memory
			gauge(descMaxBytes, m.MaxSize, "tiles", "memory")
			gauge(descUsedBytes, m.Used, "tiles", "memory")
			gauge(descItems, m.Items, "tiles", "memory")
			counter(descHits, m.Hits, "tiles", "memory")
			counter(descMisses, m.Misses, "tiles", "memory")
			counter(descEvictions, m.Evictions, "tiles", "memory")
			counter(descSkipped, m.Skipped, "tiles", "memory")
		}
		if s.Memcached.Enabled {
			m := s.Memcached
			counter(descHits, m.Hits, "tiles", "memcached")
			counter(descMisses, m.Misses, "tiles", "memcached")
			counter(descErrors, m.Errors, "tiles", "memcached")
			counter(descDropped, m.Dropped, "tiles", "memcached")
			counter(descSkipped, m.Skipped, "tiles", "memcached")
		}
		if s.Disk.Enabled {
			d := s.Disk
			gauge(descMaxBytes, d.MaxSize, "tiles", "disk")
			gauge(descUsedBytes, d.Used, "tiles", "disk")
			gauge(descItems, d.Items, "tiles", "disk")
			counter(descHits, d.Hits, "tiles", "disk")
			counter(descMisses, d.Misses, "tiles", "disk")
			counter(descEvictions, d.Evictions, "tiles", "disk")
			counter(descErrors, d.Errors, "tiles", "disk")
			counter(descDropped, d.Dropped, "tiles", "disk")
			counter(descSkipped, d.Skipped, "tiles", "disk")
			counter(descWrites, d.Writes, "tiles", "disk")
			counter(descCorrupt, d.Corrupt, "tiles", "disk")
			counter(descUndecrypt, d.Undecryptable, "tiles", "disk")
			counter(descExpired, d.Expired, "tiles", "disk")
		}
	}
	if c.sources != nil {
		s := c.sources.Stats()
		gauge(descMaxBytes, s.MaxSize, "sources", "memory")
		gauge(descUsedBytes, s.Used, "sources", "memory")
		gauge(descItems, s.Items, "sources", "memory")
		gauge(descHandles, s.Handles, "sources", "memory")
		counter(descHits, s.Hits, "sources", "memory")
		counter(descMisses, s.Misses, "sources", "memory")
		counter(descEvictions, s.Evictions, "sources", "memory")
		counter(descErrors, s.Errors, "sources", "memory")
	}
}
