// Package tilecache caches bytes and open sources: the tile cache tiers
// (in-process, memcached), request coalescing, the memory-budgeted cache of
// open sources, key building and statistics. It knows nothing about image
// formats.
package tilecache

import "context"

// Cache status values reported in X-Tile-Cache.
const (
	StatusHitMemory    = "hit-memory"
	StatusHitMemcached = "hit-memcached"
	StatusHitDisk      = "hit-disk"
	StatusMiss         = "miss"
	StatusCoalesced    = "coalesced"
)

// Tiles is the tile cache the pipeline uses.
type Tiles interface {
	// GetOrProduce returns the cached value for key, or runs produce once
	// for all concurrent callers of the same key, stores its result in every
	// tier and returns it. status is one of the Status constants. produce
	// runs under its own context, not ctx: it is cancelled when every
	// caller waiting for the result has left, or at the production
	// deadline. A caller whose ctx ends returns with ctx's error: at once,
	// unless it started the production with a ctx without a deadline, in
	// which case it ran the production itself and returns once it stopped
	// (see Tiered.GetOrProduce).
	GetOrProduce(ctx context.Context, key string, produce func(ctx context.Context) ([]byte, error)) (val []byte, status string, err error)
	// PeekMemory returns the value of key if the in-process tier holds it,
	// counting a hit, and nothing else: no other tier, no production. A
	// miss is not counted; the caller goes on to GetOrProduce, which
	// counts it.
	PeekMemory(key string) ([]byte, bool)
}

// Resource is something the source cache keeps open.
type Resource interface {
	MemoryEstimate() int64
	Close() error
}

// Sources is the cache of open sources.
type Sources interface {
	// Acquire returns the open resource for key, opening it with open if
	// needed (once for concurrent callers). The caller must call release
	// when done; a resource is never closed while acquired.
	Acquire(ctx context.Context, key string, open func() (Resource, error)) (res Resource, release func(), err error)
}
