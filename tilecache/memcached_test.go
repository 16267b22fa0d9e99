package tilecache

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/tileserver/tileserver/tilecache/memcachedtest"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// waitWrites waits until the asynchronous memcached writes queued so far are
// done (or dropped).
func waitWrites(t testing.TB, tc *Tiered) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for tc.mc.pending.Load() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("memcached writes still pending after 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestMemcachedMissThenHit(t *testing.T) {
	srv := memcachedtest.Start(t)
	cfg := Config{Mode: ModeMemoryMemcached, MemoryBytes: 1 << 20, MemcachedServers: []string{srv.Addr}, Logger: quietLog}
	a := newTestTiered(t, cfg)
	ctx := context.Background()
	var calls atomic.Int64
	want := bytes.Repeat([]byte("tile"), 1000)
	k := Key("slide", "v1", "0", "0", "0")
	if _, st, err := a.GetOrProduce(ctx, k, constProducer(want, &calls)); err != nil || st != StatusMiss {
		t.Fatalf("first: %q %v", st, err)
	}
	waitWrites(t, a)

	// A second replica (empty memory) finds it in memcached, then in memory.
	b := newTestTiered(t, cfg)
	v, st, err := b.GetOrProduce(ctx, k, constProducer(nil, &calls))
	if err != nil || st != StatusHitMemcached || !bytes.Equal(v, want) {
		t.Fatalf("replica: status %q err %v equal %v", st, err, bytes.Equal(v, want))
	}
	v, st, err = b.GetOrProduce(ctx, k, constProducer(nil, &calls))
	if err != nil || st != StatusHitMemory || !bytes.Equal(v, want) {
		t.Fatalf("replica again: status %q err %v", st, err)
	}
	if calls.Load() != 1 {
		t.Fatalf("produced %d times, want 1", calls.Load())
	}
	s := b.Stats().Memcached
	if s.Hits != 1 || s.Errors != 0 {
		t.Fatalf("memcached stats %+v", s)
	}
}

func TestMemcachedKilledMidRun(t *testing.T) {
	srv := memcachedtest.Start(t)
	tc := newTestTiered(t, Config{Mode: ModeMemcached, MemcachedServers: []string{srv.Addr},
		RetryInterval: 50 * time.Millisecond, Timeout: time.Second, Logger: quietLog})
	ctx := context.Background()
	var calls atomic.Int64
	val := []byte("tile")
	k := Key("stored-before-the-crash")
	tc.GetOrProduce(ctx, k, constProducer(val, &calls))
	waitWrites(t, tc)
	if _, st, _ := tc.GetOrProduce(ctx, k, constProducer(val, &calls)); st != StatusHitMemcached {
		t.Fatalf("before kill: status %q, want hit-memcached", st)
	}

	srv.Stop()
	for i := range 50 {
		key := k
		if i%2 == 1 {
			key = Key("during", strconv.Itoa(i))
		}
		v, st, err := tc.GetOrProduce(ctx, key, constProducer(val, &calls))
		if err != nil || st != StatusMiss || !bytes.Equal(v, val) {
			t.Fatalf("request %d with memcached down: %q %q %v; want the produced tile as a miss", i, v, st, err)
		}
	}
	waitWrites(t, tc)
	if s := tc.Stats().Memcached; s.Errors == 0 || s.Misses < 50 {
		t.Fatalf("stats while down %+v: want errors and misses", s)
	}

	srv.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tc.GetOrProduce(ctx, k, constProducer(val, &calls))
		waitWrites(t, tc)
		if _, st, _ := tc.GetOrProduce(ctx, k, constProducer(val, &calls)); st == StatusHitMemcached {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no memcached hit within 10s of the restart; stats %+v", tc.Stats().Memcached)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMemcachedUnreachable(t *testing.T) {
	// A port nobody listens on: connections are refused.
	srv := memcachedtest.Start(t)
	addr := srv.Addr
	srv.Stop()
	tc := newTestTiered(t, Config{Mode: ModeMemoryMemcached, MemoryBytes: 1 << 20, MemcachedServers: []string{addr}, Logger: quietLog})
	var calls atomic.Int64
	for range 2 {
		v, _, err := tc.GetOrProduce(context.Background(), "k", constProducer([]byte("v"), &calls))
		if err != nil || string(v) != "v" {
			t.Fatalf("%q %v", v, err)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("produced %d times; memory must still work", calls.Load())
	}
	if st := tc.ServerStats(context.Background()); len(st) != 1 || st[0].Err == nil {
		t.Fatalf("server stats of a dead server: %+v", st)
	}
}

func TestMemcachedOversizedValueSkipped(t *testing.T) {
	srv := memcachedtest.Start(t)
	tc := newTestTiered(t, Config{Mode: ModeMemoryMemcached, MemoryBytes: 8 << 20, MemcachedServers: []string{srv.Addr}, Logger: quietLog})
	ctx := context.Background()
	var calls atomic.Int64
	big := bytes.Repeat([]byte{7}, 1<<20+1) // default limit: 1 MiB
	small := bytes.Repeat([]byte{8}, 512<<10)
	kb, ks := Key("big"), Key("small")
	if _, st, err := tc.GetOrProduce(ctx, kb, constProducer(big, &calls)); err != nil || st != StatusMiss {
		t.Fatalf("big: %q %v", st, err)
	}
	tc.GetOrProduce(ctx, ks, constProducer(small, &calls))
	waitWrites(t, tc)
	s := tc.Stats().Memcached
	if s.Skipped != 1 || s.Errors != 0 || s.Writes != 1 {
		t.Fatalf("memcached stats %+v: want 1 skipped, 1 written, no errors", s)
	}
	direct := memcache.New(srv.Addr)
	if _, err := direct.Get(sharedKey("", kb)); err != memcache.ErrCacheMiss {
		t.Fatalf("big value in memcached: err %v, want a miss", err)
	}
	if it, err := direct.Get(sharedKey("", ks)); err != nil || !bytes.Equal(it.Value, small) {
		t.Fatalf("small value in memcached: err %v", err)
	}
	v, st, err := tc.GetOrProduce(ctx, kb, constProducer(nil, &calls))
	if err != nil || st != StatusHitMemory || !bytes.Equal(v, big) {
		t.Fatalf("big again: %q %v; want hit-memory", st, err)
	}
}

func TestMemcachedForeignValuesIgnored(t *testing.T) {
	srv := memcachedtest.Start(t)
	direct := memcache.New(srv.Addr)
	if err := direct.Set(&memcache.Item{Key: "foreign", Value: []byte("not a tile")}); err != nil {
		t.Fatal(err)
	}
	tc := newTestTiered(t, Config{Mode: ModeMemcached, MemcachedServers: []string{srv.Addr}, Logger: quietLog})
	var calls atomic.Int64
	v, st, err := tc.GetOrProduce(context.Background(), "foreign", constProducer([]byte("tile"), &calls))
	if err != nil || st != StatusMiss || string(v) != "tile" {
		t.Fatalf("%q %q %v", v, st, err)
	}
}

func TestMemcachedClearAndServerStats(t *testing.T) {
	srv := memcachedtest.Start(t)
	tc := newTestTiered(t, Config{Mode: ModeMemoryMemcached, MemoryBytes: 1 << 20, MemcachedServers: []string{srv.Addr}, Logger: quietLog})
	ctx := context.Background()
	var calls atomic.Int64
	for i := range 10 {
		tc.GetOrProduce(ctx, Key(strconv.Itoa(i)), constProducer([]byte("value"), &calls))
	}
	waitWrites(t, tc)
	st := tc.ServerStats(ctx)
	if len(st) != 1 || st[0].Err != nil || st[0].LimitMaxBytes != 64<<20 || st[0].CurrItems != 10 || st[0].Bytes <= 0 {
		t.Fatalf("server stats %+v; want 64 MiB limit and 10 items", st)
	}
	if err := tc.Clear(ctx, false); err != nil {
		t.Fatal(err)
	}
	if _, s, _ := tc.GetOrProduce(ctx, Key("0"), constProducer(nil, &calls)); s != StatusHitMemcached {
		t.Fatalf("after clearing memory only: %q, want hit-memcached", s)
	}
	if err := tc.Clear(ctx, true); err != nil {
		t.Fatal(err)
	}
	if _, s, _ := tc.GetOrProduce(ctx, Key("1"), constProducer([]byte("v"), &calls)); s != StatusMiss {
		t.Fatalf("after flush_all: %q, want miss", s)
	}
}

func assignments(sel memcache.ServerSelector, n int) []string {
	out := make([]string, n)
	for i := range n {
		a, err := sel.PickServer(Key(strconv.Itoa(i)))
		if err != nil {
			panic(err)
		}
		out[i] = a.String()
	}
	return out
}

func moved(a, b []string) (n int) {
	for i := range a {
		if a[i] != b[i] {
			n++
		}
	}
	return n
}

func servers(n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("127.0.0.1:%d", 21211+i)
	}
	return s
}

func TestRingSpreadsAndMovesFewKeys(t *testing.T) {
	const n = 10000
	two, _ := NewRing(servers(2), 0, time.Second)
	one, _ := NewRing(servers(1), 0, time.Second)
	a2, a1 := assignments(two, n), assignments(one, n)
	perServer := map[string]int{}
	for _, a := range a2 {
		perServer[a]++
	}
	for s, c := range perServer {
		if c < n*40/100 || c > n*60/100 {
			t.Fatalf("server %s holds %d of %d keys; want 40-60%%", s, c, n)
		}
	}
	// Removing a server moves exactly the keys it held.
	if m := moved(a2, a1); m != perServer[servers(2)[1]] {
		t.Fatalf("2->1 servers: %d keys moved, want only the removed server's %d", m, perServer[servers(2)[1]])
	}

	// Removing one of four: the ring moves ~1/4, modulo-N ~3/4.
	ring4, _ := NewRing(servers(4), 0, time.Second)
	ring3, _ := NewRing(servers(3), 0, time.Second)
	var mod4, mod3 memcache.ServerList
	mod4.SetServers(servers(4)...)
	mod3.SetServers(servers(3)...)
	ringMoved := moved(assignments(ring4, n), assignments(ring3, n))
	modMoved := moved(assignments(&mod4, n), assignments(&mod3, n))
	t.Logf("4->3 servers: ring moved %d/%d, modulo-N moved %d/%d", ringMoved, n, modMoved, n)
	if ringMoved > n*35/100 || ringMoved < n*15/100 {
		t.Fatalf("ring moved %d of %d keys, want about 25%%", ringMoved, n)
	}
	if modMoved < n*60/100 {
		t.Fatalf("modulo-N moved only %d of %d keys; the comparison is meaningless", modMoved, n)
	}
}

func TestKeysSpreadOverTwoRealServers(t *testing.T) {
	s1, s2 := memcachedtest.Start(t), memcachedtest.Start(t)
	tc := newTestTiered(t, Config{Mode: ModeMemcached, MemcachedServers: []string{s1.Addr, s2.Addr}, Logger: quietLog})
	ctx := context.Background()
	var calls atomic.Int64
	const n = 400
	for i := range n {
		tc.GetOrProduce(ctx, Key("spread", strconv.Itoa(i)), constProducer([]byte("v"), &calls))
	}
	waitWrites(t, tc)
	st := tc.ServerStats(ctx)
	if len(st) != 2 || st[0].CurrItems+st[1].CurrItems != n || st[0].CurrItems < n/4 || st[1].CurrItems < n/4 {
		t.Fatalf("items per server %+v; want %d spread over both", st, n)
	}
	for i := range n {
		if _, s, _ := tc.GetOrProduce(ctx, Key("spread", strconv.Itoa(i)), constProducer(nil, &calls)); s != StatusHitMemcached {
			t.Fatalf("key %d: %q, want hit-memcached", i, s)
		}
	}
}

func TestRingDownServerProbedByOneCaller(t *testing.T) {
	r, err := NewRing(servers(2), 0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	k := Key("x")
	if _, err := r.PickServer(k); err != nil {
		t.Fatal(err)
	}
	if !r.MarkDown(k) || r.MarkDown(k) {
		t.Fatal("MarkDown must report the up->down transition only")
	}
	if _, err := r.PickServer(k); err != errServerDown {
		t.Fatalf("down server picked: %v", err)
	}
	// Retry time passed: one probe goes through, the next caller still misses.
	r.down[r.index(k)].Store(time.Now().Add(-time.Second).UnixNano())
	if _, err := r.PickServer(k); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if _, err := r.PickServer(k); err != errServerDown {
		t.Fatalf("second caller during the probe: %v", err)
	}
	r.markUp(k)
	if _, err := r.PickServer(k); err != nil {
		t.Fatalf("after the probe succeeded: %v", err)
	}
}

func TestMemcachedTimeoutIsAMiss(t *testing.T) {
	// A server that accepts connections and never answers.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go io.Copy(io.Discard, c)
		}
	}()
	tc := newTestTiered(t, Config{Mode: ModeMemcached, MemcachedServers: []string{l.Addr().String()},
		Timeout: 100 * time.Millisecond, RetryInterval: time.Hour, Logger: quietLog})
	var calls atomic.Int64
	for i := range 3 {
		v, st, err := tc.GetOrProduce(context.Background(), Key("t", strconv.Itoa(i)), constProducer([]byte("v"), &calls))
		if err != nil || st != StatusMiss || string(v) != "v" {
			t.Fatalf("request %d: %q %q %v", i, v, st, err)
		}
	}
	// Only the first lookup waited for the timeout; the server was then
	// skipped (and the queued write failed fast or was skipped too).
	waitWrites(t, tc)
	if s := tc.Stats().Memcached; s.Errors != 1 || s.Misses != 3 || s.Writes != 0 {
		t.Fatalf("stats %+v: want exactly one error for the hung server", s)
	}
}
