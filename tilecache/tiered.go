package tilecache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Tiered is the tile cache: an optional in-process tier in front of an
// optional memcached tier in front of an optional disk tier, with
// identical concurrent misses coalesced into one production. It implements
// Tiles and is safe for concurrent use.
type Tiered struct {
	cfg     Config
	mem     memTier     // nil when the mode has no memory tier
	mc      *mcTier     // nil when the mode has no memcached tier
	disk    *diskTier   // nil without DiskDir
	door    *doorkeeper // nil without mem, or with Config.KeepCheapAtOnce
	mu      sync.Mutex
	flights map[string]*flight

	memHits, memMisses atomic.Uint64
	produced           atomic.Uint64
	produceErrors      atomic.Uint64
	coalesced          atomic.Uint64
	abandoned          atomic.Uint64
	deferred           atomic.Uint64 // cheap productions not kept on a first miss
	// entered counts callers that have joined the coalescing group; tests
	// use it to know that every concurrent caller is waiting.
	entered atomic.Int64
}

var _ Tiles = (*Tiered)(nil)

// New builds the tile cache described by cfg (zero fields take their
// defaults). It does not contact memcached: an unreachable server only
// makes every lookup a miss. With DiskDir it creates the directory if
// needed and loads the disk tier's index; it fails if another process has
// the directory open.
func New(cfg Config) (*Tiered, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	t := &Tiered{cfg: cfg, flights: map[string]*flight{}}
	if cfg.usesMemory() {
		if cfg.Policy == PolicyLRU {
			t.mem = newLRUTier(cfg.MemoryBytes)
		} else if t.mem, err = newOtterTier(cfg.MemoryBytes); err != nil {
			return nil, fmt.Errorf("tilecache: memory tier: %w", err)
		}
		if !cfg.KeepCheapAtOnce {
			t.door = newDoorkeeper(doorkeeperWindow(cfg.MemoryBytes))
		}
	}
	if cfg.usesMemcached() {
		if t.mc, err = newMCTier(cfg); err != nil {
			if t.mem != nil {
				t.mem.close()
			}
			return nil, fmt.Errorf("tilecache: memcached tier: %w", err)
		}
	}
	if cfg.DiskDir != "" {
		if err := os.MkdirAll(cfg.DiskDir, 0o700); err != nil {
			t.Close()
			return nil, fmt.Errorf("tilecache: disk tier: %w", err)
		}
		if cfg.DiskBytes == 0 {
			cfg.DiskBytes = defaultDiskBytes(cfg.DiskDir)
			t.cfg.DiskBytes = cfg.DiskBytes
		}
		if t.disk, err = openDiskTier(cfg); err != nil {
			t.Close()
			return nil, fmt.Errorf("tilecache: disk tier: %w", err)
		}
	}
	return t, nil
}

// Config returns the effective configuration (defaults filled in).
func (t *Tiered) Config() Config { return t.cfg }

// GetOrProduce implements Tiles. The returned slice is shared with the
// cache and other callers: it must not be modified. Errors come only from
// produce (or ctx); cache failures are misses.
//
// Concurrent misses of one key share one production (a flight). The
// flight runs under its own context, detached from every caller: one
// caller leaving (a viewer panning away) does not abort work that others
// wait for. A caller whose ctx ends stops waiting at once; the flight's
// context is cancelled when its last waiter has left, or at
// Config.ProduceTimeout.
//
// Where the flight runs depends on the caller that starts it. One whose
// ctx has a deadline gets the flight on a goroutine of its own, so that it
// can answer at its deadline whatever the production does. One without a
// deadline (a tile request, which ends only when its client goes away)
// runs the flight itself: handing every miss to a new goroutine and back
// cost about a tenth of a stored tile's CPU. Such a caller counts as
// leaving when its ctx ends, as any other (seen as soon as the production
// checks or waits on its context, else when it returns), but returns only
// once the production has stopped, which is then at once if nobody else
// waits, else when the production ends (within Config.ProduceTimeout);
// nobody reads its answer by then.
func (t *Tiered) GetOrProduce(ctx context.Context, key string, produce func(context.Context) ([]byte, error)) ([]byte, string, error) {
	if t.mem != nil {
		if v, ok := t.mem.get(key); ok {
			t.memHits.Add(1)
			return v, StatusHitMemory, nil
		}
		t.memMisses.Add(1)
	}
	if err := ctx.Err(); err != nil {
		return nil, StatusMiss, err
	}
	t.mu.Lock()
	f, joined := t.flights[key]
	if !joined {
		// The flight keeps the first caller's values (loggers, the work
		// priority) but none of its cancellation.
		f = &flight{done: make(chan struct{})}
		f.ctx = &flightContext{values: ctx, deadline: time.Now().Add(t.cfg.ProduceTimeout)}
		t.flights[key] = f
		if _, ok := ctx.Deadline(); !ok {
			f.ctx.caller, f.ctx.t, f.ctx.key, f.ctx.f = ctx, t, key, f
			f.waiters++
			t.mu.Unlock()
			t.entered.Add(1)
			return t.runInline(ctx, key, f, produce)
		}
		go t.run(key, f, produce)
	}
	f.waiters++
	t.mu.Unlock()
	t.entered.Add(1)

	select {
	case <-f.done:
		if f.err != nil {
			return nil, StatusMiss, f.err
		}
		if joined {
			t.coalesced.Add(1)
			return f.val, StatusCoalesced, nil
		}
		return f.val, f.status, nil
	case <-ctx.Done():
		t.leave(key, f)
		return nil, StatusMiss, ctx.Err()
	}
}

// PeekMemory implements Tiles.
func (t *Tiered) PeekMemory(key string) ([]byte, bool) {
	if t.mem == nil {
		return nil, false
	}
	v, ok := t.mem.get(key)
	if ok {
		t.memHits.Add(1)
	}
	return v, ok
}

// flight is one production shared by the concurrent callers of a key. val,
// status and err are written once, before done is closed; waiters and the
// map entry are guarded by Tiered.mu.
type flight struct {
	done    chan struct{}
	ctx     *flightContext
	waiters int
	val     []byte
	status  string
	err     error
}

// leave removes a caller that stopped waiting. The last one to leave
// cancels the production (nobody needs it any more) and forgets the
// flight, so that a later caller starts afresh instead of joining a
// cancelled one.
func (t *Tiered) leave(key string, f *flight) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f.waiters--
	if f.waiters > 0 {
		return
	}
	if t.flights[key] == f {
		delete(t.flights, key)
	}
	select {
	case <-f.done:
	default:
		t.abandoned.Add(1)
	}
	f.ctx.cancel(context.Canceled)
}

// runInline runs flight f on the goroutine of the caller that started it
// (see GetOrProduce); ctx is that caller's. The caller leaves the flight
// when its ctx ends: noticed by the flight's context while the production
// uses it, else here once it has ended.
func (t *Tiered) runInline(ctx context.Context, key string, f *flight, produce func(context.Context) ([]byte, error)) ([]byte, string, error) {
	t.run(key, f, produce)
	if err := ctx.Err(); err != nil {
		f.ctx.callerLeft()
		return nil, StatusMiss, err
	}
	if f.err != nil {
		return nil, StatusMiss, f.err
	}
	return f.val, f.status, nil
}

// run produces the flight's result and wakes its waiters.
func (t *Tiered) run(key string, f *flight, produce func(context.Context) ([]byte, error)) {
	defer f.ctx.cancel(context.Canceled)
	val, status, err := t.fill(f.ctx, key, produce)
	if err == nil && status == StatusMiss && t.mem != nil && t.keep(f.ctx, key) {
		t.mem.set(key, val)
	}
	t.mu.Lock()
	if t.flights[key] == f {
		delete(t.flights, key)
	}
	t.mu.Unlock()
	f.val, f.status, f.err = val, status, err
	close(f.done)
}

// keep reports whether a new production of key goes into the in-process
// tier: always, unless it was marked cheap and its key has not missed
// recently (see doorkeeper), or it runs under KeepAtOnce.
func (t *Tiered) keep(f *flightContext, key string) bool {
	if t.door == nil || !f.cheap.Load() || f.Value(keepKey{}) != nil || t.door.seen(key) {
		return true
	}
	t.deferred.Add(1)
	return false
}

// Flights returns the number of productions in progress.
func (t *Tiered) Flights() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.flights)
}

// fill runs once per key for all concurrent callers: memory again (a
// previous flight may have just filled it), then memcached, then disk, then
// produce. A hit is promoted to the tiers above it.
func (t *Tiered) fill(ctx context.Context, key string, produce func(context.Context) ([]byte, error)) (val []byte, status string, err error) {
	if t.mem != nil {
		if v, ok := t.mem.get(key); ok {
			// The leader's miss turned out to be a hit after all.
			t.memMisses.Add(^uint64(0))
			t.memHits.Add(1)
			return v, StatusHitMemory, nil
		}
	}
	// The shared tiers know the entry by its shared name.
	var shared string
	if t.mc != nil || t.disk != nil {
		shared = sharedKey(t.cfg.Namespace, key)
	}
	if t.mc != nil {
		if v, ok := t.mc.get(shared); ok {
			if t.mem != nil {
				t.mem.set(key, v)
			}
			return v, StatusHitMemcached, nil
		}
	}
	if t.disk != nil {
		if v, ok := t.disk.get(shared); ok {
			if t.mem != nil {
				t.mem.set(key, v)
			}
			if t.mc != nil {
				t.mc.setAsync(shared, v)
			}
			return v, StatusHitDisk, nil
		}
	}
	defer func() {
		// The flight's goroutine is not a request's: a producer's panic
		// would take the server down. Turn it into an error.
		if p := recover(); p != nil {
			t.produceErrors.Add(1)
			err = fmt.Errorf("tilecache: producing %s panicked: %v", sharedKey(t.cfg.Namespace, key), p)
		}
	}()
	v, err := produce(ctx)
	if err != nil {
		// A production stopped because nobody waited for it any more is
		// not a failure.
		if !errors.Is(err, context.Canceled) || ctx.Err() == nil {
			t.produceErrors.Add(1)
		}
		return nil, StatusMiss, err
	}
	t.produced.Add(1)
	// The in-process tier is filled by run, which knows the flight.
	if t.mc != nil {
		t.mc.setAsync(shared, v)
	}
	if t.disk != nil {
		t.disk.setAsync(shared, v)
	}
	return v, StatusMiss, nil
}

// Clear empties the in-process tier. memcached is flushed only when
// includeMemcached is set, because flush_all empties whole servers that
// other replicas (and other applications) share. The disk tier is kept:
// see ClearDisk.
func (t *Tiered) Clear(ctx context.Context, includeMemcached bool) error {
	if t.mem != nil {
		t.mem.clear()
	}
	if t.door != nil {
		// Forget the misses too: a cleared tier fills as a fresh one.
		t.door.reset()
	}
	if includeMemcached && t.mc != nil {
		done := make(chan error, 1)
		go func() { done <- t.mc.flush() }()
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("tilecache: memcached flush_all: %w", err)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// ClearDisk empties the disk tier (a no-op without one). Its files are
// removed in the background; the tier is empty when ClearDisk returns.
func (t *Tiered) ClearDisk(ctx context.Context) error {
	if t.disk == nil {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- t.disk.clear() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("tilecache: clearing the disk tier: %w", err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the memcached and disk writers (queued writes are dropped),
// releases connections and saves the disk tier's index. The cache must not
// be used afterwards.
func (t *Tiered) Close() {
	if t.mc != nil {
		t.mc.close()
	}
	if t.disk != nil {
		t.disk.close()
	}
	if t.mem != nil {
		t.mem.close()
	}
}

// TierStats are one tier's counters. Sizes are bytes.
type TierStats struct {
	Enabled   bool   `json:"enabled"`
	MaxSize   uint64 `json:"maxsize"`
	Used      uint64 `json:"used"`
	Items     uint64 `json:"items"`
	Hits      uint64 `json:"hits"`
	Misses    uint64 `json:"misses"`
	Evictions uint64 `json:"evictions"`
	// Errors counts failed memcached operations or disk I/O (each served
	// as a miss, or a write not done).
	Errors uint64 `json:"errors"`
	// Dropped counts memcached or disk writes dropped because the queue
	// was full.
	Dropped uint64 `json:"dropped"`
	// Skipped counts values too large for memcached's item limit or for
	// the whole disk tier; for the memory tier, productions marked cheap
	// and not kept because their key had not missed recently (MarkCheap).
	Skipped uint64 `json:"skipped"`
	// Writes counts values stored in memcached or on disk.
	Writes uint64 `json:"writes"`
	// Corrupt counts disk entries dropped because they failed their
	// checksum or framing (damaged or truncated files).
	Corrupt uint64 `json:"corrupt"`
	// Undecryptable counts disk entries dropped because they were written
	// under another encryption key (or with encryption on where it is now
	// off, or the reverse).
	Undecryptable uint64 `json:"undecryptable"`
	// Expired counts disk entries dropped because their TTL had passed.
	Expired uint64 `json:"expired"`
}

// Stats is a snapshot of the tile cache counters. memcached's sizes are
// not included (they need a network round trip): see ServerStats.
type Stats struct {
	Memory    TierStats `json:"memory"`
	Memcached TierStats `json:"memcached"`
	Disk      TierStats `json:"disk"`
	// Produced counts productions (misses in every tier).
	Produced uint64 `json:"produced"`
	// ProduceErrors counts productions that failed (once per production,
	// whatever the number of callers waiting for it; a production
	// cancelled because nobody waited any more is not a failure).
	ProduceErrors uint64 `json:"produce_errors"`
	// Coalesced counts callers that waited for another caller's flight.
	Coalesced uint64 `json:"coalesced"`
	// Abandoned counts productions cancelled because every caller waiting
	// for them had left.
	Abandoned uint64 `json:"abandoned"`
	// InFlight is the number of productions in progress.
	InFlight int `json:"in_flight"`
}

// Stats returns the current counters.
func (t *Tiered) Stats() Stats {
	s := Stats{
		Produced:      t.produced.Load(),
		ProduceErrors: t.produceErrors.Load(),
		Coalesced:     t.coalesced.Load(),
		Abandoned:     t.abandoned.Load(),
		InFlight:      t.Flights(),
	}
	if t.mem != nil {
		used, items, ev := t.mem.usage()
		s.Memory = TierStats{
			Enabled: true, MaxSize: uint64(t.cfg.MemoryBytes), Used: used, Items: items,
			Hits: t.memHits.Load(), Misses: t.memMisses.Load(), Evictions: ev,
			Skipped: t.deferred.Load(),
		}
	}
	if t.mc != nil {
		s.Memcached = TierStats{
			Enabled: true, Hits: t.mc.hits.Load(), Misses: t.mc.misses.Load(),
			Errors: t.mc.errors.Load(), Dropped: t.mc.dropped.Load(),
			Skipped: t.mc.skipped.Load(), Writes: t.mc.writes.Load(),
		}
	}
	if d := t.disk; d != nil {
		used, items := d.usage()
		s.Disk = TierStats{
			Enabled: true, MaxSize: uint64(d.max), Used: used, Items: items,
			Hits: d.hits.Load(), Misses: d.misses.Load(), Evictions: d.evictions.Load(),
			Errors: d.errors.Load(), Dropped: d.dropped.Load(), Skipped: d.skipped.Load(),
			Writes: d.writes.Load(), Corrupt: d.corrupt.Load(),
			Undecryptable: d.undecryptable.Load(), Expired: d.expired.Load(),
		}
	}
	return s
}

// ServerStats asks each memcached server for its own statistics (for
// large_image's tileCache fields: maxsize = sum of LimitMaxBytes, used =
// sum of Bytes, items = sum of CurrItems). It returns nil without a
// memcached tier; unreachable servers have Err set.
func (t *Tiered) ServerStats(ctx context.Context) []ServerStat {
	if t.mc == nil {
		return nil
	}
	return t.mc.serverStats(ctx)
}
