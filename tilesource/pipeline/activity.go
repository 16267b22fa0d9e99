package pipeline

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Activity counts the real (client) requests in flight, so that background
// work — warm-up and predictive prefetch — runs only while the server has
// idle capacity and never ahead of a viewer. The HTTP layer calls Begin for
// every image request; background workers call WaitIdle before each unit
// of work. The zero value is not usable: use NewActivity.
type Activity struct {
	n atomic.Int64
	// last is when a request last began or ended, as time since base.
	last atomic.Int64
	base time.Time
	// waiters counts the WaitIdle calls in progress: a request that ends
	// with none of them skips the wake-up below (this runs on every hit).
	waiters atomic.Int64
	mu      sync.Mutex
	// drop is closed and replaced whenever the count goes down while
	// someone waits, waking every waiter to look again.
	drop chan struct{}
}

// NewActivity returns a counter with nothing in flight.
func NewActivity() *Activity {
	return &Activity{drop: make(chan struct{}), base: time.Now()}
}

// Begin counts one real request; call End once when it is done.
func (a *Activity) Begin() { a.BeginAt(time.Now()) }

// BeginAt is Begin for a request that began at now, for callers that have
// just read the clock (each read costs ~80 ns in a VM, on every hit).
func (a *Activity) BeginAt(now time.Time) {
	a.n.Add(1)
	a.touch(now)
}

// End ends a request counted by Begin.
func (a *Activity) End() { a.EndAt(time.Now()) }

// EndAt is End for a request that ended at now; a zero now means the
// present.
func (a *Activity) EndAt(now time.Time) {
	if now.IsZero() {
		now = time.Now()
	}
	a.n.Add(-1)
	a.touch(now)
	// A waiter registers before it reads the count and this reads the
	// waiters after lowering it, so either the waiter sees the new count
	// or the wake-up below reaches it.
	if a.waiters.Load() > 0 {
		a.mu.Lock()
		close(a.drop)
		a.drop = make(chan struct{})
		a.mu.Unlock()
	}
}

func (a *Activity) touch(now time.Time) { a.last.Store(int64(now.Sub(a.base))) }

// InFlight returns the number of real requests in flight.
func (a *Activity) InFlight() int64 { return a.n.Load() }

// WaitIdle blocks until at most limit real requests are in flight and
// returns the count it saw, or ctx's error.
func (a *Activity) WaitIdle(ctx context.Context, limit int64) (int64, error) {
	a.waiters.Add(1)
	defer a.waiters.Add(-1)
	for {
		// Take the channel before reading the count: a request ending in
		// between closes this very channel, so no wake-up is lost.
		a.mu.Lock()
		ch := a.drop
		a.mu.Unlock()
		if n := a.n.Load(); n <= limit {
			return n, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// WaitQuiet is WaitIdle that also waits until no request has begun or
// ended for quiet. Viewers send a view's tiles in bursts with gaps of
// microseconds between one response and the next request; background
// work started in such a gap would delay the view, so it waits for the
// pause after the burst instead.
func (a *Activity) WaitQuiet(ctx context.Context, limit int64, quiet time.Duration) (int64, error) {
	for {
		n, err := a.WaitIdle(ctx, limit)
		if err != nil || quiet <= 0 {
			return n, err
		}
		wait := time.Duration(a.last.Load()) + quiet - time.Since(a.base)
		if wait <= 0 {
			return n, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		}
	}
}
