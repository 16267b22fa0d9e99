package tilecache

import (
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/maypok86/otter/v2"
)

// entryOverhead approximates the bookkeeping bytes of one in-process entry
// (node, map slot, slice and string headers) so that many small tiles are
// not under-counted against the byte budget.
const entryOverhead = 96

func entryWeight(key string, val []byte) int64 {
	return int64(len(key)+len(val)) + entryOverhead
}

// memTier is an in-process tier bounded in bytes. Values are shared, not
// copied: callers must not modify a returned slice.
type memTier interface {
	get(key string) ([]byte, bool)
	set(key string, val []byte)
	clear()
	// usage returns (used bytes, items, evictions).
	usage() (used, items, evictions uint64)
	close()
}

// otterTier is the W-TinyLFU tier.
type otterTier struct {
	c         *otter.Cache[string, []byte]
	evictions atomic.Uint64
}

func newOtterTier(maxBytes int64) (*otterTier, error) {
	t := &otterTier{}
	c, err := otter.New(&otter.Options[string, []byte]{
		MaximumWeight: uint64(maxBytes),
		Weigher: func(k string, v []byte) uint32 {
			return uint32(min(entryWeight(k, v), 1<<32-1))
		},
		// Maintenance (applying buffered reads and writes, evicting) runs
		// on the goroutine that triggered it rather than on a new one
		// each time: on a cold tile, a goroutine started per write costs
		// a thread wake-up (cold CPU per tile ~11 % lower in an A/B of
		// nine fresh-server pairs). Safe here because nothing runs under
		// otter's locks but the eviction counter below: no Compute, no
		// OnDeletion, no refresh.
		Executor: func(fn func()) { fn() },
		OnAtomicDeletion: func(e otter.DeletionEvent[string, []byte]) {
			if e.WasEvicted() {
				t.evictions.Add(1)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	t.c = c
	return t, nil
}

func (t *otterTier) get(key string) ([]byte, bool) { return t.c.GetIfPresent(key) }
func (t *otterTier) set(key string, val []byte)    { t.c.Set(key, val) }
func (t *otterTier) clear()                        { t.c.InvalidateAll() }
func (t *otterTier) close()                        { t.c.StopAllGoroutines() }

func (t *otterTier) usage() (uint64, uint64, uint64) {
	// Writes are applied to the policy lazily; settle them so the numbers
	// reflect the budget actually enforced.
	t.c.CleanUp()
	return t.c.WeightedSize(), uint64(t.c.EstimatedSize()), t.evictions.Load()
}

// lruTier is a plain least-recently-used tier bounded in bytes, kept for
// comparison with W-TinyLFU on viewer traces. It is sharded to limit lock
// contention; each shard owns an equal part of the budget.
type lruTier struct {
	seed   maphash.Seed
	mask   uint64
	shards []lruShard
}

type lruShard struct {
	mu        sync.Mutex
	max, used int64
	items     map[string]*lruNode
	head      lruNode // sentinel: head.next is most recent, head.prev least
	evictions uint64
	_         [40]byte // keep neighbouring shards' locks off one cache line
}

type lruNode struct {
	key        string
	val        []byte
	prev, next *lruNode
}

func newLRUTier(maxBytes int64) *lruTier {
	// Small budgets get fewer shards so that a tile still fits in a shard.
	n := 1
	for n < 16 && maxBytes/int64(n*2) >= 8<<20 {
		n *= 2
	}
	t := &lruTier{seed: maphash.MakeSeed(), mask: uint64(n - 1), shards: make([]lruShard, n)}
	for i := range t.shards {
		s := &t.shards[i]
		s.max = maxBytes / int64(n)
		s.items = make(map[string]*lruNode)
		s.head.next, s.head.prev = &s.head, &s.head
	}
	return t
}

func (t *lruTier) shard(key string) *lruShard {
	if t.mask == 0 {
		return &t.shards[0]
	}
	return &t.shards[maphash.String(t.seed, key)&t.mask]
}

func (s *lruShard) unlink(n *lruNode) {
	n.prev.next = n.next
	n.next.prev = n.prev
}

func (s *lruShard) pushFront(n *lruNode) {
	n.prev = &s.head
	n.next = s.head.next
	s.head.next.prev = n
	s.head.next = n
}

func (t *lruTier) get(key string) ([]byte, bool) {
	s := t.shard(key)
	s.mu.Lock()
	n, ok := s.items[key]
	if !ok {
		s.mu.Unlock()
		return nil, false
	}
	if s.head.next != n {
		s.unlink(n)
		s.pushFront(n)
	}
	v := n.val
	s.mu.Unlock()
	return v, true
}

func (t *lruTier) set(key string, val []byte) {
	s := t.shard(key)
	w := entryWeight(key, val)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.items[key]; ok {
		s.used -= entryWeight(old.key, old.val)
		s.unlink(old)
		delete(s.items, key)
	}
	if w > s.max {
		// Larger than the whole shard: storing it would flush everything.
		s.evictions++
		return
	}
	n := &lruNode{key: key, val: val}
	s.items[key] = n
	s.pushFront(n)
	s.used += w
	for s.used > s.max {
		last := s.head.prev
		s.unlink(last)
		delete(s.items, last.key)
		s.used -= entryWeight(last.key, last.val)
		s.evictions++
	}
}

func (t *lruTier) clear() {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		clear(s.items)
		s.head.next, s.head.prev = &s.head, &s.head
		s.used = 0
		s.mu.Unlock()
	}
}

func (t *lruTier) usage() (used, items, evictions uint64) {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		used += uint64(s.used)
		items += uint64(len(s.items))
		evictions += s.evictions
		s.mu.Unlock()
	}
	return used, items, evictions
}

func (t *lruTier) close() {}
