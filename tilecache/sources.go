package tilecache

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// HandleCounter is optionally implemented by a Resource that holds more
// than one file handle (multi-file formats); others count as one.
type HandleCounter interface {
	HandleCount() int
}

// SourceCache keeps open sources (Resources) for reuse, budgeted by their
// MemoryEstimate and file handles. Acquired resources are reference
// counted and never closed while in use; idle ones are closed least
// recently used first when the cache is over budget. It implements Sources.
//
// A derived resource (a styled view of an unstyled source) may Acquire its
// base inside its own open function and call that release from its Close:
// the base then stays open while any view of it lives. Close is always
// called outside the cache lock, so this cannot deadlock.
type SourceCache struct {
	cfg SourcesConfig

	mu      sync.Mutex
	entries map[string]*srcEntry
	idle    list.List // of *srcEntry: front most recently released
	bytes   int64     // summed estimates of every open resource, idle or not
	handles int
	open    int // open (or opening) resources, including cleared ones in use

	hits, misses, evictions, errors atomic.Uint64
}

type srcEntry struct {
	key     string
	res     Resource
	err     error
	ready   chan struct{} // closed once res or err is set
	refs    int
	mem     int64
	handles int
	doomed  bool          // cleared: close when the last reference goes
	elem    *list.Element // its place in the idle list while refs == 0
}

var _ Sources = (*SourceCache)(nil)

// NewSources returns an empty source cache; zero fields of cfg take their
// defaults.
func NewSources(cfg SourcesConfig) *SourceCache {
	s := &SourceCache{cfg: cfg.withDefaults(), entries: make(map[string]*srcEntry)}
	return s
}

// Config returns the effective configuration.
func (s *SourceCache) Config() SourcesConfig { return s.cfg }

// Acquire implements Sources. Keys must include the file's version so that
// a changed file is opened anew. open runs outside the cache lock; concurrent
// callers of the same key wait for it and share the result; a failed open is
// not cached.
func (s *SourceCache) Acquire(ctx context.Context, key string, open func() (Resource, error)) (Resource, func(), error) {
	s.mu.Lock()
	if e, ok := s.entries[key]; ok {
		if e.refs == 0 {
			s.unlinkIdle(e)
		}
		e.refs++
		s.mu.Unlock()
		select {
		case <-e.ready:
		default:
			select {
			case <-e.ready:
			case <-ctx.Done():
				s.release(e)
				return nil, nil, ctx.Err()
			}
		}
		if e.err != nil {
			s.release(e)
			return nil, nil, e.err
		}
		s.hits.Add(1)
		return e.res, s.releaser(e), nil
	}
	e := &srcEntry{key: key, ready: make(chan struct{}), refs: 1}
	s.entries[key] = e
	s.open++
	s.mu.Unlock()
	s.misses.Add(1)

	res, err := safeOpen(open)
	s.mu.Lock()
	if err != nil {
		s.errors.Add(1)
		e.err = err
		if s.entries[key] == e {
			delete(s.entries, key)
		}
		e.doomed = true
		s.open--
		close(e.ready)
		e.refs--
		s.mu.Unlock()
		return nil, nil, err
	}
	e.res = res
	e.mem = max(res.MemoryEstimate(), 0)
	e.handles = 1
	if hc, ok := res.(HandleCounter); ok {
		e.handles = max(hc.HandleCount(), 0)
	}
	s.bytes += e.mem
	s.handles += e.handles
	close(e.ready)
	victims := s.evictLocked()
	s.mu.Unlock()
	closeAll(victims)
	return res, s.releaser(e), nil
}

func safeOpen(open func() (Resource, error)) (res Resource, err error) {
	defer func() {
		if p := recover(); p != nil {
			res, err = nil, fmt.Errorf("tilecache: opening source panicked: %v", p)
		}
	}()
	res, err = open()
	if err == nil && res == nil {
		err = fmt.Errorf("tilecache: open returned no resource")
	}
	return res, err
}

// releaser returns an idempotent release function for one reference.
func (s *SourceCache) releaser(e *srcEntry) func() {
	var done atomic.Bool
	return func() {
		if !done.Swap(true) {
			s.release(e)
		}
	}
}

func (s *SourceCache) release(e *srcEntry) {
	s.mu.Lock()
	e.refs--
	var victims []*srcEntry
	if e.refs == 0 && e.res != nil {
		if e.doomed {
			s.dropLocked(e)
			victims = append(victims, e)
		} else {
			s.pushIdle(e)
		}
		victims = append(victims, s.evictLocked()...)
	}
	s.mu.Unlock()
	closeAll(victims)
}

// evictLocked removes idle entries, least recently used first, until the
// cache is within budget, and returns them for closing outside the lock.
func (s *SourceCache) evictLocked() []*srcEntry {
	var victims []*srcEntry
	for s.overLocked() && s.idle.Len() > 0 {
		e := s.idle.Back().Value.(*srcEntry)
		s.unlinkIdle(e)
		delete(s.entries, e.key)
		s.dropLocked(e)
		victims = append(victims, e)
		s.evictions.Add(1)
	}
	return victims
}

func (s *SourceCache) overLocked() bool {
	return s.bytes > s.cfg.MemoryBytes || s.handles > s.cfg.MaxHandles ||
		(s.cfg.MaxItems > 0 && s.open > s.cfg.MaxItems)
}

// dropLocked removes e's share of the budget; the caller closes it.
func (s *SourceCache) dropLocked(e *srcEntry) {
	s.bytes -= e.mem
	s.handles -= e.handles
	s.open--
}

func (s *SourceCache) pushIdle(e *srcEntry) {
	e.elem = s.idle.PushFront(e)
}

func (s *SourceCache) unlinkIdle(e *srcEntry) {
	s.idle.Remove(e.elem)
	e.elem = nil
}

func closeAll(es []*srcEntry) {
	for _, e := range es {
		_ = e.res.Close()
	}
}

// Clear closes every idle source and marks the ones in use to be closed
// when released; later Acquires open anew.
func (s *SourceCache) Clear() {
	s.mu.Lock()
	var victims []*srcEntry
	for k, e := range s.entries {
		delete(s.entries, k)
		if e.refs == 0 && e.res != nil {
			s.unlinkIdle(e)
			s.dropLocked(e)
			victims = append(victims, e)
			continue
		}
		e.doomed = true
	}
	s.mu.Unlock()
	closeAll(victims)
}

// Close clears the cache; sources still in use close on release.
func (s *SourceCache) Close() { s.Clear() }

// SourceStats are the source cache's counters. MaxSize and Used are bytes
// of MemoryEstimate; Items counts open sources.
type SourceStats struct {
	MaxSize    uint64 `json:"maxsize"`
	Used       uint64 `json:"used"`
	Items      uint64 `json:"items"`
	MaxItems   uint64 `json:"maxitems"`
	Handles    uint64 `json:"handles"`
	MaxHandles uint64 `json:"maxhandles"`
	Hits       uint64 `json:"hits"`
	Misses     uint64 `json:"misses"`
	Evictions  uint64 `json:"evictions"`
	Errors     uint64 `json:"errors"`
}

// Stats returns the current counters.
func (s *SourceCache) Stats() SourceStats {
	s.mu.Lock()
	st := SourceStats{
		MaxSize:    uint64(s.cfg.MemoryBytes),
		Used:       uint64(s.bytes),
		Items:      uint64(s.open),
		MaxItems:   uint64(s.cfg.MaxItems),
		Handles:    uint64(s.handles),
		MaxHandles: uint64(s.cfg.MaxHandles),
	}
	s.mu.Unlock()
	st.Hits, st.Misses = s.hits.Load(), s.misses.Load()
	st.Evictions, st.Errors = s.evictions.Load(), s.errors.Load()
	return st
}
