// Package work is the server's global budget for pixel work (decoding,
// resampling, encoding): a weighted semaphore counted in pixels, with a
// bounded wait queue and two priorities. Requests beyond the queue are
// refused at once (the HTTP layer answers 503 with Retry-After) rather than
// piling up goroutines and memory; background work (warm-up, prefetch)
// waits behind every request and may use only half of the budget.
package work

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// ErrOverloaded is returned by Acquire when the wait queue is full.
var ErrOverloaded = errors.New("work: budget queue full")

// Priority orders waiters: every Foreground waiter goes before any
// Background one.
type Priority int

// Priorities.
const (
	Foreground Priority = iota
	Background
)

type priorityKey struct{}

// WithPriority marks ctx's work with p.
func WithPriority(ctx context.Context, p Priority) context.Context {
	return context.WithValue(ctx, priorityKey{}, p)
}

// PriorityOf returns the priority ctx was marked with (Foreground when
// unmarked).
func PriorityOf(ctx context.Context) Priority {
	p, _ := ctx.Value(priorityKey{}).(Priority)
	return p
}

// Budget is a weighted semaphore of pixels. The zero value is not usable:
// use New. A nil *Budget admits everything at once.
type Budget struct {
	capacity int64
	queueMax int

	mu   sync.Mutex
	used int64
	// fg and bg hold *waiter in arrival order.
	fg, bg list.List

	acquired, refused atomic.Uint64
}

type waiter struct {
	n     int64
	ready chan struct{}
}

// New returns a budget of capacity pixels (at least 1) whose foreground
// wait queue holds at most queue callers (0: none wait, a busy budget
// refuses at once).
func New(capacity int64, queue int) *Budget {
	return &Budget{capacity: max(capacity, 1), queueMax: max(queue, 0)}
}

// Acquire takes n pixels of the budget (a request larger than the whole
// budget takes all of it), waiting in line if needed, and returns the
// function that gives them back. It fails with ErrOverloaded when a
// foreground caller finds the queue full, or with ctx's error when ctx ends
// first. Callers must not hold the budget while waiting for other work that
// needs it (a cache flight, a child tile): take it around one step.
func (b *Budget) Acquire(ctx context.Context, n int64) (release func(), err error) {
	if b == nil {
		return func() {}, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	prio := PriorityOf(ctx)
	limit := b.capacity
	if prio == Background {
		limit = max(b.capacity/2, 1)
	}
	n = min(max(n, 1), limit)
	b.mu.Lock()
	if b.fits(n, prio) {
		b.used += n
		b.mu.Unlock()
		b.acquired.Add(1)
		return b.releaser(n), nil
	}
	q := &b.fg
	if prio == Background {
		q = &b.bg
	} else if b.fg.Len() >= b.queueMax {
		b.mu.Unlock()
		b.refused.Add(1)
		return nil, ErrOverloaded
	}
	w := &waiter{n: n, ready: make(chan struct{})}
	e := q.PushBack(w)
	b.mu.Unlock()

	select {
	case <-w.ready:
		b.acquired.Add(1)
		return b.releaser(n), nil
	case <-ctx.Done():
		b.mu.Lock()
		select {
		case <-w.ready:
			// Granted while leaving: give it back.
			b.used -= n
			b.grant()
		default:
			q.Remove(e)
			// A large waiter at the head may have held back smaller
			// ones behind it.
			b.grant()
		}
		b.mu.Unlock()
		return nil, ctx.Err()
	}
}

// fits reports whether n pixels can be taken now by a newcomer of priority
// p without overtaking anyone in line. b.mu must be held.
func (b *Budget) fits(n int64, p Priority) bool {
	if p == Background {
		return b.fg.Len() == 0 && b.bg.Len() == 0 && b.used+n <= max(b.capacity/2, 1)
	}
	return b.fg.Len() == 0 && b.used+n <= b.capacity
}

func (b *Budget) releaser(n int64) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			b.used -= n
			b.grant()
			b.mu.Unlock()
		})
	}
}

// grant admits waiters in order while they fit: foreground first, then
// background within its half. b.mu must be held.
func (b *Budget) grant() {
	for e := b.fg.Front(); e != nil; e = b.fg.Front() {
		w := e.Value.(*waiter)
		if b.used+w.n > b.capacity {
			return
		}
		b.used += w.n
		b.fg.Remove(e)
		close(w.ready)
	}
	for e := b.bg.Front(); e != nil; e = b.bg.Front() {
		w := e.Value.(*waiter)
		if b.used+w.n > max(b.capacity/2, 1) {
			return
		}
		b.used += w.n
		b.bg.Remove(e)
		close(w.ready)
	}
}

// Stats is a snapshot of the budget.
type Stats struct {
	// Capacity and Used are pixels.
	Capacity int64 `json:"capacity"`
	Used     int64 `json:"used"`
	// Queued counts foreground waiters, QueuedBackground background ones.
	Queued           int `json:"queued"`
	QueuedBackground int `json:"queued_background"`
	QueueMax         int `json:"queue_max"`
	// Acquired counts grants, Refused callers turned away (queue full).
	Acquired uint64 `json:"acquired"`
	Refused  uint64 `json:"refused"`
}

// Stats returns the current state.
func (b *Budget) Stats() Stats {
	if b == nil {
		return Stats{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return Stats{Capacity: b.capacity, Used: b.used, Queued: b.fg.Len(), QueuedBackground: b.bg.Len(),
		QueueMax: b.queueMax, Acquired: b.acquired.Load(), Refused: b.refused.Load()}
}
