package tilecache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitEntered blocks until n callers have joined flights.
func waitEntered(tc *Tiered, n int64) {
	for tc.entered.Load() < n {
		time.Sleep(time.Millisecond)
	}
}

func TestEveryWaiterLeftCancelsProduction(t *testing.T) {
	tc := newTestTiered(t, Config{Mode: ModeMemory, MemoryBytes: 1 << 20})
	started := make(chan struct{})
	stopped := make(chan error, 1)
	produce := func(ctx context.Context) ([]byte, error) {
		close(started)
		<-ctx.Done()
		stopped <- ctx.Err()
		return nil, ctx.Err()
	}
	const callers = 3
	var wg sync.WaitGroup
	cancels := make([]context.CancelFunc, callers)
	for i := range callers {
		ctx, cancel := context.WithCancel(context.Background())
		cancels[i] = cancel
		wg.Go(func() {
			if _, _, err := tc.GetOrProduce(ctx, "k", produce); !errors.Is(err, context.Canceled) {
				t.Errorf("caller %d: err %v, want context.Canceled", i, err)
			}
		})
	}
	<-started
	waitEntered(tc, callers)
	for _, c := range cancels[:callers-1] {
		c()
	}
	select {
	case err := <-stopped:
		t.Fatalf("production stopped (%v) while a caller still waited", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancels[callers-1]()
	if err := <-stopped; !errors.Is(err, context.Canceled) {
		t.Fatalf("production context ended with %v, want context.Canceled", err)
	}
	wg.Wait()
	s := tc.Stats()
	if s.Abandoned != 1 || s.ProduceErrors != 0 {
		t.Fatalf("abandoned %d produce errors %d, want 1 and 0", s.Abandoned, s.ProduceErrors)
	}
	// The abandoned flight is forgotten: the next caller produces afresh.
	v, st, err := tc.GetOrProduce(context.Background(), "k", func(context.Context) ([]byte, error) { return []byte("new"), nil })
	if err != nil || st != StatusMiss || string(v) != "new" {
		t.Fatalf("after abandon: %q %q %v", v, st, err)
	}
}

// TestOneWaiterLeavingKeepsProduction: the caller that started a flight
// leaves while another waits; the production goes on and the other gets
// its result. A starter whose context has a deadline returns at once; one
// without runs the production itself and returns when it has ended.
func TestOneWaiterLeavingKeepsProduction(t *testing.T) {
	for _, deadline := range []bool{true, false} {
		t.Run(fmt.Sprintf("deadline=%v", deadline), func(t *testing.T) {
			tc := newTestTiered(t, Config{Mode: ModeNone})
			release := make(chan struct{})
			var calls atomic.Int32
			produce := func(ctx context.Context) ([]byte, error) {
				calls.Add(1)
				select {
				case <-release:
					return []byte("tile"), nil
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			if deadline {
				ctx, cancel = context.WithTimeout(context.Background(), time.Hour)
			}
			first := make(chan error, 1)
			go func() {
				_, _, err := tc.GetOrProduce(ctx, "k", produce)
				first <- err
			}()
			waitEntered(tc, 1)
			second := make(chan []byte, 1)
			go func() {
				v, st, err := tc.GetOrProduce(context.Background(), "k", produce)
				if err != nil || st != StatusCoalesced {
					t.Errorf("second caller: %q %v", st, err)
				}
				second <- v
			}()
			waitEntered(tc, 2)
			cancel()
			if !deadline {
				select {
				case err := <-first:
					t.Fatalf("the starter returned (%v) while its production ran for another caller", err)
				case <-time.After(50 * time.Millisecond):
				}
				close(release)
			}
			if err := <-first; !errors.Is(err, context.Canceled) {
				t.Fatalf("first caller: %v, want context.Canceled", err)
			}
			if deadline {
				close(release)
			}
			if v := <-second; string(v) != "tile" {
				t.Fatalf("second caller got %q", v)
			}
			if n := calls.Load(); n != 1 {
				t.Fatalf("%d productions, want 1", n)
			}
		})
	}
}

func TestProductionDeadline(t *testing.T) {
	tc := newTestTiered(t, Config{Mode: ModeNone, ProduceTimeout: 20 * time.Millisecond})
	_, _, err := tc.GetOrProduce(context.Background(), "k", func(ctx context.Context) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want context.DeadlineExceeded", err)
	}
	if s := tc.Stats(); s.ProduceErrors != 1 || s.InFlight != 0 {
		t.Fatalf("produce errors %d in flight %d, want 1 and 0", s.ProduceErrors, s.InFlight)
	}
}

func TestProductionKeepsCallerValues(t *testing.T) {
	tc := newTestTiered(t, Config{Mode: ModeNone})
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "v")
	v, _, err := tc.GetOrProduce(ctx, "k", func(ctx context.Context) ([]byte, error) {
		s, _ := ctx.Value(key{}).(string)
		return []byte(s), nil
	})
	if err != nil || string(v) != "v" {
		t.Fatalf("%q %v", v, err)
	}
}

// A production that only polls Err (as reading a stored tile does) still
// ends when the caller running it leaves and nobody else waits, and at
// its deadline; and it never starts the timer or the watch that Done
// needs.
func TestInlineProductionPollingErr(t *testing.T) {
	poll := func(ctx context.Context) ([]byte, error) {
		for ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		return nil, ctx.Err()
	}
	t.Run("caller left", func(t *testing.T) {
		tc := newTestTiered(t, Config{Mode: ModeNone})
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(20*time.Millisecond, cancel)
		if _, _, err := tc.GetOrProduce(ctx, "k", poll); !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
		if s := tc.Stats(); s.Abandoned != 1 || s.ProduceErrors != 0 || s.InFlight != 0 {
			t.Fatalf("abandoned %d produce errors %d in flight %d, want 1, 0, 0", s.Abandoned, s.ProduceErrors, s.InFlight)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		tc := newTestTiered(t, Config{Mode: ModeNone, ProduceTimeout: 20 * time.Millisecond})
		if _, _, err := tc.GetOrProduce(context.Background(), "k", poll); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v, want context.DeadlineExceeded", err)
		}
	})
	t.Run("no timer", func(t *testing.T) {
		tc := newTestTiered(t, Config{Mode: ModeMemory, MemoryBytes: 1 << 20})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var fc *flightContext
		v, _, err := tc.GetOrProduce(ctx, "k", func(ctx context.Context) ([]byte, error) {
			fc = ctx.(*flightContext)
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			return []byte("tile"), nil
		})
		if err != nil || string(v) != "tile" {
			t.Fatalf("%q %v", v, err)
		}
		if fc.timer != nil || fc.stopWatch != nil || !errors.Is(fc.Err(), context.Canceled) {
			t.Fatalf("timer %v, watch %t, err %v: want none, none and context.Canceled once the flight ended",
				fc.timer, fc.stopWatch != nil, fc.Err())
		}
	})
}

// A production waiting on Done is cancelled when the caller running it
// leaves (the watch Done starts), and children made from its context end
// with it.
func TestInlineProductionWaitingOnDone(t *testing.T) {
	tc := newTestTiered(t, Config{Mode: ModeNone})
	ctx, cancel := context.WithCancel(context.Background())
	childErr := make(chan error, 1)
	time.AfterFunc(20*time.Millisecond, cancel)
	_, _, err := tc.GetOrProduce(ctx, "k", func(ctx context.Context) ([]byte, error) {
		child, stop := context.WithCancel(ctx)
		defer stop()
		<-ctx.Done()
		<-child.Done()
		childErr <- child.Err()
		return nil, ctx.Err()
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if err := <-childErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("child context: %v, want context.Canceled", err)
	}
	if s := tc.Stats(); s.Abandoned != 1 {
		t.Fatalf("abandoned %d, want 1", s.Abandoned)
	}
}
