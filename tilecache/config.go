package tilecache

import (
	"fmt"
	"log/slog"
	"time"
)

// Tile cache modes accepted in Config.Mode.
const (
	ModeNone            = "none"
	ModeMemory          = "memory"
	ModeMemcached       = "memcached"
	ModeMemoryMemcached = "memory+memcached"
)

// Eviction policies of the in-process tier, accepted in Config.Policy.
const (
	PolicyTinyLFU = "tinylfu"
	PolicyLRU     = "lru"
)

const (
	defaultMemoryPortion  = 8
	maxDefaultMemoryBytes = 16 << 30
	maxDefaultDiskBytes   = 10 << 30
	defaultDiskTTL        = 7 * 24 * time.Hour
)

// Config configures the tile cache. The zero value of a field means "use the
// default" unless its comment says otherwise; DefaultConfig fills them in.
type Config struct {
	// Mode selects the tiers: "none", "memory", "memcached" or
	// "memory+memcached". With "none" and no DiskDir every request produces
	// its tile (identical concurrent requests are still coalesced). The
	// disk tier is independent of Mode: it is on whenever DiskDir is set.
	Mode string
	// Policy is the in-process eviction policy: "tinylfu" (otter's
	// W-TinyLFU) or "lru".
	Policy string
	// MemoryBytes bounds the in-process tier in bytes (keys, values and a
	// per-entry overhead). 0 means total memory / MemoryPortion, capped at
	// 16 GiB.
	MemoryBytes int64
	// KeepCheapAtOnce keeps every production in the in-process tier on
	// its first miss. By default one marked cheap (MarkCheap: a stored
	// tile of a local file, passed on as it is) is kept only from its
	// second recent miss, so that tiles requested once take no memory.
	KeepCheapAtOnce bool
	// MemoryPortion is the divisor of total memory used when MemoryBytes is
	// 0, like large_image's cache_python_memory_portion.
	MemoryPortion int
	// MemcachedServers lists host:port addresses; keys are spread over them
	// with a consistent-hash ring.
	MemcachedServers []string
	// MemcachedMaxItemBytes is the largest item (key + value + memcached's
	// own overhead) written to memcached; larger tiles are not stored
	// there. Match the servers' -I setting (memcached's default is 1 MiB).
	MemcachedMaxItemBytes int
	// TTL is the memcached expiration; 0 means no expiry (memcached evicts
	// by LRU). Memory entries need no TTL: keys carry the source version.
	TTL time.Duration
	// Timeout bounds each memcached network operation (dial, read, write).
	Timeout time.Duration
	// MaxIdleConns is the number of idle connections kept per memcached
	// server; set it near the expected number of concurrent requests.
	MaxIdleConns int
	// RetryInterval is how long a memcached server that failed is skipped
	// (every access a miss) before it is tried again.
	RetryInterval time.Duration
	// WriteQueue is the capacity of the asynchronous memcached write queue;
	// writes beyond it are dropped so that responses never wait.
	WriteQueue int
	// Writers is the number of goroutines draining the write queue.
	Writers int
	// LogInterval throttles memcached failure logs: at most one line per
	// kind of failure per interval.
	LogInterval time.Duration
	// Logger receives throttled failure logs; nil means slog.Default().
	Logger *slog.Logger

	// Namespace is part of every entry's name in the tiers replicas share
	// (memcached, disk): replicas share an entry only when their
	// namespaces match. The server sets it to the pipeline's rendering
	// version, so that after an upgrade that changes any image's bytes no
	// replica reads, or writes over, another version's entries.
	Namespace string

	// DiskDir is the directory of the persistent disk tier (L3, behind
	// memory and memcached); empty turns the tier off. It is created with
	// mode 0700 if missing and must not be shared by two running processes.
	DiskDir string
	// DiskBytes bounds the disk tier: the summed size of its entry files.
	// 0 means a quarter of the free space on DiskDir's file system, capped
	// at 10 GiB.
	DiskBytes int64
	// DiskTTL is how long a disk entry is served after it was written; 0
	// means 7 days. Keys carry the source version, so the TTL only bounds
	// how long entries of deleted or changed sources linger.
	DiskTTL time.Duration
	// DiskKey, when set, encrypts disk entries at rest with AES-256-GCM; it
	// must be 32 bytes (see ParseDiskKey). Entries written under another
	// key, or without one, read as misses.
	DiskKey []byte

	// ProduceTimeout bounds one production (a coalesced miss), whoever
	// waits for it; 0 means DefaultProduceTimeout.
	ProduceTimeout time.Duration

	// now replaces time.Now for the disk tier's TTL and access times in
	// tests.
	now func() time.Time
}

// DefaultConfig returns the defaults: in-process W-TinyLFU tier sized from
// total memory, memcached off.
func DefaultConfig() Config {
	return Config{
		Mode:                  ModeMemory,
		Policy:                PolicyTinyLFU,
		MemoryPortion:         defaultMemoryPortion,
		MemcachedMaxItemBytes: 1 << 20,
		Timeout:               200 * time.Millisecond,
		MaxIdleConns:          64,
		RetryInterval:         time.Second,
		WriteQueue:            4096,
		Writers:               2,
		LogInterval:           10 * time.Second,
		ProduceTimeout:        DefaultProduceTimeout,
	}
}

// DefaultProduceTimeout is the default Config.ProduceTimeout.
const DefaultProduceTimeout = time.Minute

// withDefaults fills zero fields from DefaultConfig and validates the rest.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	if c.Mode == "" {
		c.Mode = d.Mode
	}
	switch c.Mode {
	case ModeNone, ModeMemory, ModeMemcached, ModeMemoryMemcached:
	default:
		return c, fmt.Errorf("tilecache: unknown mode %q (want none, memory, memcached or memory+memcached)", c.Mode)
	}
	if c.Policy == "" {
		c.Policy = d.Policy
	}
	if c.Policy != PolicyTinyLFU && c.Policy != PolicyLRU {
		return c, fmt.Errorf("tilecache: unknown policy %q (want tinylfu or lru)", c.Policy)
	}
	if c.MemoryPortion <= 0 {
		c.MemoryPortion = d.MemoryPortion
	}
	if c.MemoryBytes < 0 {
		return c, fmt.Errorf("tilecache: negative memory size %d", c.MemoryBytes)
	}
	if c.MemoryBytes == 0 {
		c.MemoryBytes = min(TotalMemory()/int64(c.MemoryPortion), maxDefaultMemoryBytes)
	}
	if c.MemcachedMaxItemBytes <= 0 {
		c.MemcachedMaxItemBytes = d.MemcachedMaxItemBytes
	}
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	if c.ProduceTimeout <= 0 {
		c.ProduceTimeout = d.ProduceTimeout
	}
	if c.MaxIdleConns <= 0 {
		c.MaxIdleConns = d.MaxIdleConns
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = d.RetryInterval
	}
	if c.WriteQueue <= 0 {
		c.WriteQueue = d.WriteQueue
	}
	if c.Writers <= 0 {
		c.Writers = d.Writers
	}
	if c.LogInterval <= 0 {
		c.LogInterval = d.LogInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.DiskBytes < 0 {
		return c, fmt.Errorf("tilecache: negative disk size %d", c.DiskBytes)
	}
	if c.DiskTTL < 0 {
		return c, fmt.Errorf("tilecache: negative disk TTL %s", c.DiskTTL)
	}
	if c.DiskTTL == 0 {
		c.DiskTTL = defaultDiskTTL
	}
	if len(c.DiskKey) != 0 && len(c.DiskKey) != diskKeySize {
		return c, fmt.Errorf("tilecache: disk key is %d bytes, want %d (AES-256)", len(c.DiskKey), diskKeySize)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.usesMemcached() && len(c.MemcachedServers) == 0 {
		return c, fmt.Errorf("tilecache: mode %q needs at least one memcached server", c.Mode)
	}
	return c, nil
}

func (c Config) usesMemory() bool {
	return c.Mode == ModeMemory || c.Mode == ModeMemoryMemcached
}

func (c Config) usesMemcached() bool {
	return c.Mode == ModeMemcached || c.Mode == ModeMemoryMemcached
}

// SourcesConfig configures the cache of open sources.
type SourcesConfig struct {
	// MemoryBytes bounds the summed MemoryEstimate of open sources. 0 means
	// total memory / MemoryPortion.
	MemoryBytes int64
	// MemoryPortion is the divisor of total memory used when MemoryBytes is
	// 0, like large_image's cache_tilesource_memory_portion.
	MemoryPortion int
	// MaxHandles bounds the file handles held by open sources. 0 means
	// HandleFraction of the process's open-file limit.
	MaxHandles int
	// HandleFraction is the share of RLIMIT_NOFILE given to sources when
	// MaxHandles is 0; the rest stays for sockets and other files.
	HandleFraction float64
	// MaxItems caps the number of open sources; 0 means no cap beyond the
	// memory and handle budgets (like cache_tilesource_maximum).
	MaxItems int
}

// DefaultSourcesConfig returns the defaults: 1/16 of total memory and half
// of the open-file limit.
func DefaultSourcesConfig() SourcesConfig {
	return SourcesConfig{MemoryPortion: 16, HandleFraction: 0.5}
}

func (c SourcesConfig) withDefaults() SourcesConfig {
	d := DefaultSourcesConfig()
	if c.MemoryPortion <= 0 {
		c.MemoryPortion = d.MemoryPortion
	}
	if c.MemoryBytes <= 0 {
		c.MemoryBytes = TotalMemory() / int64(c.MemoryPortion)
	}
	if c.HandleFraction <= 0 || c.HandleFraction > 1 {
		c.HandleFraction = d.HandleFraction
	}
	if c.MaxHandles <= 0 {
		c.MaxHandles = max(int(float64(OpenFileLimit())*c.HandleFraction), 8)
	}
	if c.MaxItems < 0 {
		c.MaxItems = 0
	}
	return c
}
