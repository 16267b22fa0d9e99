package tilecache

import (
	"context"
	"hash/maphash"
	"math/bits"
	"sync/atomic"
)

// doorkeeper remembers which keys missed recently, so that a production
// marked cheap (MarkCheap) enters the in-process tier only on its second
// miss: a tile requested once never takes memory, and never costs the
// page faults and eviction of keeping it. It is the doorkeeper of TinyLFU
// (Einziger, Friedman and Manes, "TinyLFU: A Highly Efficient Cache
// Admission Policy", 2017): a Bloom filter in front of the cache, cleared
// after as many additions as its window, so that "recently" means within
// about the last window keys.
//
// Two bits per key in a bitset of 16 bits per key of the window: at a full
// window about 1.4 % of new keys look seen (and are kept at once), which
// costs nothing but the memory the doorkeeper exists to save.
type doorkeeper struct {
	seed   maphash.Seed
	words  []atomic.Uint64
	mask   uint64 // bit index mask: len(words)*64 - 1
	added  atomic.Int64
	window int64
}

// doorkeeperWindow is the window for an in-process tier of maxBytes: about
// the number of tiles it holds (16 KiB each, a JPEG tile of 256² at
// quality 95), within bounds that keep the bitset between 8 KiB and 8 MiB.
func doorkeeperWindow(maxBytes int64) int {
	return int(min(max(maxBytes>>14, 4096), 1<<22))
}

func newDoorkeeper(window int) *doorkeeper {
	nbits := uint64(1) << bits.Len64(uint64(window)*16-1)
	return &doorkeeper{
		seed:   maphash.MakeSeed(),
		words:  make([]atomic.Uint64, nbits/64),
		mask:   nbits - 1,
		window: int64(window),
	}
}

// seen reports whether key was recorded within the window, and records it.
func (d *doorkeeper) seen(key string) bool {
	h := maphash.String(d.seed, key)
	// Two indexes from the two halves of one 64-bit hash.
	i, j := h&d.mask, (h>>32|h<<32)&d.mask
	bi, bj := uint64(1)<<(i&63), uint64(1)<<(j&63)
	oi := d.words[i>>6].Or(bi)
	oj := d.words[j>>6].Or(bj)
	if oi&bi != 0 && oj&bj != 0 {
		return true
	}
	if n := d.added.Add(1); n >= d.window && d.added.CompareAndSwap(n, 0) {
		d.clear()
	}
	return false
}

// reset forgets every key and starts a new window.
func (d *doorkeeper) reset() {
	d.added.Store(0)
	d.clear()
}

// clear zeroes the filter. Keys recorded while it runs may be lost or
// kept: either only changes when one tile is kept.
func (d *doorkeeper) clear() {
	for k := range d.words {
		d.words[k].Store(0)
	}
}

// cheapKey is the context key of the flight that MarkCheap marks.
type cheapKey struct{}

// keepKey is the context key set by KeepAtOnce.
type keepKey struct{}

// MarkCheap tells the tile cache, from inside a production, that its
// result is cheap to make again (a stored tile read from a local file and
// passed on as it is): the in-process tier keeps it only from its second
// recent miss, unless the production was started under KeepAtOnce or the
// cache's Config.KeepCheapAtOnce is set. Outside a production it does
// nothing.
func MarkCheap(ctx context.Context) {
	if f, ok := ctx.Value(cheapKey{}).(*flightContext); ok {
		f.cheap.Store(true)
	}
}

// KeepAtOnce returns a context under which productions are kept in the
// in-process tier on their first miss even when marked cheap: for work
// done ahead of requests (warm-up, prefetching), whose whole point is the
// next request's hit.
func KeepAtOnce(ctx context.Context) context.Context {
	return context.WithValue(ctx, keepKey{}, true)
}
