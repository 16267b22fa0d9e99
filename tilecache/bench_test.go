package tilecache

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/tileserver/tileserver/tilecache/memcachedtest"
)

var benchTile = make([]byte, 16<<10) // a typical 256x256 JPEG tile

func benchProduce(context.Context) ([]byte, error) { return benchTile, nil }

// BenchmarkMemoryHit is the hot path: a hit in the in-process tier, from
// parallel goroutines, on one hot key and on 1024 hot keys.
func BenchmarkMemoryHit(b *testing.B) {
	for _, policy := range []string{PolicyTinyLFU, PolicyLRU} {
		for _, nkeys := range []int{1, 1024} {
			b.Run(policy+"/keys="+strconv.Itoa(nkeys), func(b *testing.B) {
				tc := newTestTiered(b, Config{Mode: ModeMemory, Policy: policy, MemoryBytes: 256 << 20})
				keys := make([]string, nkeys)
				for i := range keys {
					keys[i] = Key("bench", strconv.Itoa(i))
					tc.GetOrProduce(context.Background(), keys[i], benchProduce)
				}
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					i := 0
					for pb.Next() {
						_, st, _ := tc.GetOrProduce(ctx, keys[i%nkeys], benchProduce)
						if st != StatusHitMemory {
							b.Errorf("status %q", st)
							return
						}
						i++
					}
				})
			})
		}
	}
}

// BenchmarkMemcachedHit measures a hit in memcached with the memory tier off.
func BenchmarkMemcachedHit(b *testing.B) {
	srv := memcachedtest.Start(b)
	tc := newTestTiered(b, Config{Mode: ModeMemcached, MemcachedServers: []string{srv.Addr}, Logger: quietLog})
	keys := make([]string, 256)
	for i := range keys {
		keys[i] = Key("bench", strconv.Itoa(i))
		tc.GetOrProduce(context.Background(), keys[i], benchProduce)
	}
	waitWrites(b, tc)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			_, st, _ := tc.GetOrProduce(ctx, keys[i%len(keys)], benchProduce)
			// Parallel readers of one key may join one flight.
			if st != StatusHitMemcached && st != StatusCoalesced {
				b.Errorf("status %q", st)
				return
			}
			i++
		}
	})
}

// BenchmarkTieredMissProduce measures the miss path: memory miss, memcached
// miss, produce, store in memory and queue the memcached write.
func BenchmarkTieredMissProduce(b *testing.B) {
	srv := memcachedtest.Start(b)
	tc := newTestTiered(b, Config{Mode: ModeMemoryMemcached, MemoryBytes: 64 << 20, MemcachedServers: []string{srv.Addr}, Logger: quietLog})
	ctx := context.Background()
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := Key("miss", strconv.FormatInt(n.Add(1), 10))
			if _, st, err := tc.GetOrProduce(ctx, k, benchProduce); err != nil || st != StatusMiss {
				b.Errorf("status %q err %v", st, err)
				return
			}
		}
	})
	b.StopTimer()
	s := tc.Stats().Memcached
	b.ReportMetric(float64(s.Dropped)/float64(b.N), "dropped/op")
}

// BenchmarkInlineMiss measures the flight of a miss run by its caller, as
// a tile request runs it (a cancellable context with no deadline, a
// production that checks Err once and returns), with no tier.
func BenchmarkInlineMiss(b *testing.B) {
	tc := newTestTiered(b, Config{Mode: ModeNone})
	val := []byte("tile")
	produce := func(ctx context.Context) ([]byte, error) { return val, ctx.Err() }
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ctx, cancel := context.WithCancel(context.Background())
		i++
		if _, _, err := tc.GetOrProduce(ctx, strconv.Itoa(i), produce); err != nil {
			b.Fatal(err)
		}
		cancel()
	}
}
