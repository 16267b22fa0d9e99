package tilecache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newTestTiered(t testing.TB, cfg Config) *Tiered {
	t.Helper()
	tc, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(tc.Close)
	return tc
}

func constProducer(val []byte, calls *atomic.Int64) func(context.Context) ([]byte, error) {
	return func(context.Context) ([]byte, error) {
		calls.Add(1)
		return val, nil
	}
}

func TestMemoryMissThenHit(t *testing.T) {
	for _, policy := range []string{PolicyTinyLFU, PolicyLRU} {
		t.Run(policy, func(t *testing.T) {
			tc := newTestTiered(t, Config{Mode: ModeMemory, Policy: policy, MemoryBytes: 1 << 20})
			ctx := context.Background()
			var calls atomic.Int64
			want := []byte("tile bytes")
			v, st, err := tc.GetOrProduce(ctx, Key("a"), constProducer(want, &calls))
			if err != nil || st != StatusMiss || !bytes.Equal(v, want) {
				t.Fatalf("first: %q %q %v, want miss", v, st, err)
			}
			v, st, err = tc.GetOrProduce(ctx, Key("a"), constProducer([]byte("other"), &calls))
			if err != nil || st != StatusHitMemory || !bytes.Equal(v, want) {
				t.Fatalf("second: %q %q %v, want hit-memory with the first value", v, st, err)
			}
			if calls.Load() != 1 {
				t.Fatalf("produced %d times, want 1", calls.Load())
			}
			s := tc.Stats()
			if s.Memory.Hits != 1 || s.Memory.Misses != 1 || s.Produced != 1 || s.Memory.Items != 1 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func TestModeNoneAlwaysProduces(t *testing.T) {
	tc := newTestTiered(t, Config{Mode: ModeNone})
	var calls atomic.Int64
	for range 3 {
		_, st, err := tc.GetOrProduce(context.Background(), "k", constProducer([]byte("x"), &calls))
		if err != nil || st != StatusMiss {
			t.Fatalf("status %q err %v", st, err)
		}
	}
	if calls.Load() != 3 {
		t.Fatalf("produced %d times, want 3", calls.Load())
	}
}

func TestByteBudgetUnderEviction(t *testing.T) {
	const budget = 1 << 20
	for _, policy := range []string{PolicyTinyLFU, PolicyLRU} {
		t.Run(policy, func(t *testing.T) {
			tc := newTestTiered(t, Config{Mode: ModeMemory, Policy: policy, MemoryBytes: budget})
			val := make([]byte, 1024)
			var calls atomic.Int64
			const n = 10000 // ~10 MiB written into a 1 MiB tier
			for i := range n {
				if _, _, err := tc.GetOrProduce(context.Background(), Key(strconv.Itoa(i)), constProducer(val, &calls)); err != nil {
					t.Fatal(err)
				}
			}
			s := tc.Stats().Memory
			if s.MaxSize != budget {
				t.Fatalf("maxsize %d, want %d", s.MaxSize, budget)
			}
			if s.Used > s.MaxSize {
				t.Fatalf("used %d > max %d", s.Used, s.MaxSize)
			}
			if s.Evictions == 0 || s.Items == 0 || s.Items >= n {
				t.Fatalf("items %d evictions %d: want eviction", s.Items, s.Evictions)
			}
			// Every entry weighs at least its value: the count must fit.
			if s.Items*uint64(len(val)) > budget {
				t.Fatalf("%d items of %d bytes exceed the budget", s.Items, len(val))
			}
		})
	}
}

func TestConcurrentMissesCoalesce(t *testing.T) {
	for _, mode := range []string{ModeNone, ModeMemory} {
		t.Run(mode, func(t *testing.T) {
			tc := newTestTiered(t, Config{Mode: mode, MemoryBytes: 1 << 20})
			const callers = 20
			var produced atomic.Int64
			produce := func(context.Context) ([]byte, error) {
				produced.Add(1)
				// Hold the flight until every caller has joined it.
				for tc.entered.Load() < callers {
					time.Sleep(time.Millisecond)
				}
				return []byte("tile"), nil
			}
			statuses := make([]string, callers)
			var wg sync.WaitGroup
			for i := range callers {
				wg.Go(func() {
					v, st, err := tc.GetOrProduce(context.Background(), "same", produce)
					if err != nil || string(v) != "tile" {
						t.Errorf("caller %d: %q %v", i, v, err)
					}
					statuses[i] = st
				})
			}
			wg.Wait()
			count := map[string]int{}
			for _, s := range statuses {
				count[s]++
			}
			if produced.Load() != 1 || count[StatusMiss] != 1 || count[StatusCoalesced] != callers-1 {
				t.Fatalf("produced %d, statuses %v; want 1 production, 1 miss and %d coalesced", produced.Load(), count, callers-1)
			}
			if s := tc.Stats(); s.Coalesced != callers-1 || s.Produced != 1 {
				t.Fatalf("stats coalesced %d produced %d", s.Coalesced, s.Produced)
			}
		})
	}
}

func TestProduceErrorsAreNotCached(t *testing.T) {
	tc := newTestTiered(t, Config{Mode: ModeMemory, MemoryBytes: 1 << 20})
	boom := errors.New("boom")
	_, _, err := tc.GetOrProduce(context.Background(), "k", func(context.Context) ([]byte, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("err %v, want boom", err)
	}
	_, _, err = tc.GetOrProduce(context.Background(), "k", func(context.Context) ([]byte, error) { panic("bad tile") })
	if err == nil {
		t.Fatal("a panicking producer must give an error")
	}
	v, st, err := tc.GetOrProduce(context.Background(), "k", func(context.Context) ([]byte, error) { return []byte("ok"), nil })
	if err != nil || st != StatusMiss || string(v) != "ok" {
		t.Fatalf("after errors: %q %q %v", v, st, err)
	}
	if s := tc.Stats(); s.ProduceErrors != 2 {
		t.Fatalf("produce errors %d, want 2", s.ProduceErrors)
	}
}

func TestCancelledWaiterReturns(t *testing.T) {
	tc := newTestTiered(t, Config{Mode: ModeNone})
	release := make(chan struct{})
	go tc.GetOrProduce(context.Background(), "slow", func(context.Context) ([]byte, error) {
		<-release
		return []byte("x"), nil
	})
	for tc.entered.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := tc.GetOrProduce(ctx, "slow", func(context.Context) ([]byte, error) { return nil, fmt.Errorf("not called") })
	close(release)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
}

func TestClearMemory(t *testing.T) {
	for _, policy := range []string{PolicyTinyLFU, PolicyLRU} {
		tc := newTestTiered(t, Config{Mode: ModeMemory, Policy: policy, MemoryBytes: 1 << 20})
		var calls atomic.Int64
		tc.GetOrProduce(context.Background(), "k", constProducer([]byte("v"), &calls))
		if err := tc.Clear(context.Background(), false); err != nil {
			t.Fatal(err)
		}
		if s := tc.Stats().Memory; s.Items != 0 || s.Used != 0 {
			t.Fatalf("%s: after clear items %d used %d", policy, s.Items, s.Used)
		}
		_, st, _ := tc.GetOrProduce(context.Background(), "k", constProducer([]byte("v"), &calls))
		if st != StatusMiss {
			t.Fatalf("%s: after clear status %q, want miss", policy, st)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []Config{{Mode: "disk"}, {Policy: "fifo"}, {Mode: ModeMemcached}, {MemoryBytes: -1}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted an invalid config", cfg)
		}
	}
	tc := newTestTiered(t, Config{})
	c := tc.Config()
	if c.Mode != ModeMemory || c.Policy != PolicyTinyLFU || c.MemoryBytes <= 0 || c.MemoryBytes > maxDefaultMemoryBytes {
		t.Fatalf("defaults %+v", c)
	}
	if want := min(TotalMemory()/defaultMemoryPortion, maxDefaultMemoryBytes); c.MemoryBytes != want {
		t.Fatalf("default memory %d, want %d", c.MemoryBytes, want)
	}
}
