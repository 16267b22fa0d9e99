package tilecache

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// cheapProducer is a production that marks itself cheap, and counts its
// calls, from a context derived from the one it is given, as the
// pipeline's productions do.
func cheapProducer(val []byte, calls *atomic.Int64) func(context.Context) ([]byte, error) {
	return func(ctx context.Context) ([]byte, error) {
		calls.Add(1)
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		MarkCheap(ctx)
		return val, nil
	}
}

func TestDoorkeeperSeenWithinWindow(t *testing.T) {
	d := newDoorkeeper(4096)
	if len(d.words)*64 != 65536 {
		t.Fatalf("%d bits, want 65536 (16 per key of the window)", len(d.words)*64)
	}
	if d.seen("a") {
		t.Fatal("a seen before it was recorded")
	}
	for range 2 {
		if !d.seen("a") {
			t.Fatal("a not seen once recorded")
		}
	}
	// Fill most of the window with other keys: a stays recorded, and few
	// new keys look seen.
	falsePositives := 0
	for i := range 4000 {
		if d.seen("k" + strconv.Itoa(i)) {
			falsePositives++
		}
	}
	if falsePositives > 100 {
		t.Errorf("%d of 4000 new keys looked seen, want about 1 %%", falsePositives)
	}
	if !d.seen("a") {
		t.Error("a forgotten within the window")
	}
	// The window's end clears the filter: a is new again.
	for i := range 200 {
		d.seen("m" + strconv.Itoa(i))
	}
	if d.seen("a") {
		t.Error("a still seen after the window ended")
	}
}

func TestDoorkeeperWindowFollowsTheBudget(t *testing.T) {
	for _, c := range []struct {
		bytes int64
		want  int
	}{{0, 4096}, {32 << 20, 4096}, {1 << 30, 65536}, {16 << 30, 1 << 20}, {1 << 40, 1 << 22}} {
		if got := doorkeeperWindow(c.bytes); got != c.want {
			t.Errorf("window of %d bytes: %d, want %d", c.bytes, got, c.want)
		}
	}
}

func TestCheapProductionKeptFromItsSecondMiss(t *testing.T) {
	for _, policy := range []string{PolicyTinyLFU, PolicyLRU} {
		t.Run(policy, func(t *testing.T) {
			tc := newTestTiered(t, Config{Mode: ModeMemory, Policy: policy, MemoryBytes: 1 << 20})
			ctx := context.Background()
			var calls atomic.Int64
			var got []string
			for range 3 {
				_, st, err := tc.GetOrProduce(ctx, Key("cheap"), cheapProducer([]byte("stored tile"), &calls))
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, st)
			}
			if want := fmt.Sprint([]string{StatusMiss, StatusMiss, StatusHitMemory}); fmt.Sprint(got) != want {
				t.Errorf("three requests: %v, want %v", got, want)
			}
			if calls.Load() != 2 {
				t.Errorf("produced %d times, want 2", calls.Load())
			}
			// Productions not marked cheap are kept at once.
			var other atomic.Int64
			for range 2 {
				tc.GetOrProduce(ctx, Key("costly"), constProducer([]byte("synthesised"), &other))
			}
			if other.Load() != 1 {
				t.Errorf("costly production made %d times, want 1", other.Load())
			}
			s := tc.Stats()
			if s.Memory.Skipped != 1 || s.Memory.Items != 2 || s.Produced != 3 {
				t.Errorf("stats: skipped %d, items %d, produced %d; want 1, 2, 3", s.Memory.Skipped, s.Memory.Items, s.Produced)
			}
			// Clearing the tier forgets the misses as well.
			if err := tc.Clear(ctx, false); err != nil {
				t.Fatal(err)
			}
			tc.GetOrProduce(ctx, Key("cheap"), cheapProducer([]byte("stored tile"), &calls))
			if _, st, _ := tc.GetOrProduce(ctx, Key("cheap"), cheapProducer([]byte("stored tile"), &calls)); st != StatusMiss {
				t.Errorf("second request after Clear: %s, want %s", st, StatusMiss)
			}
		})
	}
}

func TestKeepAtOnce(t *testing.T) {
	ctx := context.Background()
	check := func(t *testing.T, tc *Tiered, ctx context.Context) {
		t.Helper()
		var calls atomic.Int64
		tc.GetOrProduce(ctx, Key("cheap"), cheapProducer([]byte("stored tile"), &calls))
		if _, st, _ := tc.GetOrProduce(context.Background(), Key("cheap"), cheapProducer(nil, &calls)); st != StatusHitMemory {
			t.Errorf("second request: %s, want %s", st, StatusHitMemory)
		}
		if calls.Load() != 1 || tc.Stats().Memory.Skipped != 0 {
			t.Errorf("produced %d times, skipped %d", calls.Load(), tc.Stats().Memory.Skipped)
		}
	}
	t.Run("context", func(t *testing.T) {
		check(t, newTestTiered(t, Config{Mode: ModeMemory, MemoryBytes: 1 << 20}), KeepAtOnce(ctx))
	})
	t.Run("config", func(t *testing.T) {
		check(t, newTestTiered(t, Config{Mode: ModeMemory, MemoryBytes: 1 << 20, KeepCheapAtOnce: true}), ctx)
	})
	// A production run for a caller with a deadline runs on a goroutine
	// of its own, and still sees the caller's KeepAtOnce.
	t.Run("detached", func(t *testing.T) {
		dctx, cancel := context.WithTimeout(KeepAtOnce(ctx), time.Minute)
		defer cancel()
		check(t, newTestTiered(t, Config{Mode: ModeMemory, MemoryBytes: 1 << 20}), dctx)
	})
}

// MarkCheap outside a production, or without a tile cache, does nothing.
func TestMarkCheapOutsideAProduction(t *testing.T) {
	MarkCheap(context.Background())
	MarkCheap(KeepAtOnce(context.Background()))
}

func TestDoorkeeperConcurrent(t *testing.T) {
	tc := newTestTiered(t, Config{Mode: ModeMemory, MemoryBytes: 1 << 20})
	d := newDoorkeeper(4096)
	var wg sync.WaitGroup
	var calls atomic.Int64
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				k := strconv.Itoa((g*7 + i) % 3000)
				d.seen(k)
				tc.GetOrProduce(context.Background(), Key(k), cheapProducer([]byte(k), &calls))
			}
		}()
	}
	wg.Wait()
	if n := tc.Stats().Memory.Items; n == 0 || n > 3000 {
		t.Errorf("%d items kept of 3000 keys each requested several times", n)
	}
}
