package tilecache

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// flightContext is the context a flight's production runs under: the
// values of the caller that started it, none of that caller's
// cancellation, a deadline Config.ProduceTimeout away, and cancellation
// when every waiter has left (Tiered.leave).
//
// context.WithTimeout(context.WithoutCancel(ctx), …) gives the same, and
// context.AfterFunc on the caller's context notices a caller that runs the
// flight itself leaving; but together they start a timer and register
// with the request's context on every miss, about 4 µs of a ~110 µs
// stored-tile miss (perf, this project's machine), for a production that
// never waits on Done (reading a stored tile checks Err and returns). Here
// the timer and that watch are made when Done is first called; until
// then, Err checks the deadline and the running caller itself.
type flightContext struct {
	values   context.Context // the starting caller's context, for Value only
	deadline time.Time

	// For a flight run on its caller's goroutine (Tiered.runInline): that
	// caller's context, and what makes it leave the flight.
	caller context.Context
	t      *Tiered
	key    string
	f      *flight

	mu        sync.Mutex
	err       error
	done      chan struct{} // made by the first Done
	timer     *time.Timer   // made with done
	stopWatch func() bool   // the watch of caller, made with done
	left      bool          // caller has left the flight

	// cheap is set by MarkCheap: the result is cheap to make again.
	cheap atomic.Bool
}

// Deadline implements context.Context.
func (c *flightContext) Deadline() (time.Time, bool) { return c.deadline, true }

// Value implements context.Context with the starting caller's values, and
// the flight itself for MarkCheap.
func (c *flightContext) Value(key any) any {
	if key == (cheapKey{}) {
		return c
	}
	return c.values.Value(key)
}

// Done implements context.Context. The first call starts the deadline's
// timer and, for an inline flight, the watch of its caller.
func (c *flightContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.err != nil {
			close(c.done)
			return c.done
		}
		// Both run their function on a goroutine of their own, never
		// here under c.mu.
		c.timer = time.AfterFunc(time.Until(c.deadline), func() { c.cancel(context.DeadlineExceeded) })
		if c.caller != nil && !c.left {
			c.stopWatch = context.AfterFunc(c.caller, c.callerLeft)
		}
	}
	return c.done
}

// Err implements context.Context. Without a Done channel nothing ends the
// context on its own, so Err notices a passed deadline and a caller that
// left itself.
func (c *flightContext) Err() error {
	c.mu.Lock()
	err, watched := c.err, c.done != nil
	c.mu.Unlock()
	if err != nil || watched {
		return err
	}
	if !time.Now().Before(c.deadline) {
		c.cancel(context.DeadlineExceeded)
	} else if c.caller != nil && c.caller.Err() != nil {
		c.callerLeft()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// callerLeft makes the caller running an inline flight leave it, once:
// as a waiter whose context ended, which cancels the production when
// nobody else waits.
func (c *flightContext) callerLeft() {
	c.mu.Lock()
	if c.caller == nil || c.left {
		c.mu.Unlock()
		return
	}
	c.left = true
	c.mu.Unlock()
	// Outside c.mu: leave takes Tiered.mu and may cancel c.
	c.t.leave(c.key, c.f)
}

// cancel ends the context with err unless it has ended already, and stops
// the timer and the watch.
func (c *flightContext) cancel(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	if c.done != nil {
		close(c.done)
		c.timer.Stop()
		if c.stopWatch != nil {
			c.stopWatch()
		}
	}
}
