package pipeline

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/tileserver/tileserver/tilecache"
)

func TestPlanTilesRingAndZoom(t *testing.T) {
	g := levelGrid{levels: 3, counts: [][2]int{{3, 2}, {5, 4}, {10, 8}}}
	// A 3×2 view at level 1, columns 1–3, rows 1–2, plus one far tile of
	// another viewer that must not widen the view.
	var recent []tilePos
	for y := 1; y <= 2; y++ {
		for x := 1; x <= 3; x++ {
			recent = append(recent, tilePos{0, 1, x, y})
		}
	}
	recent = append([]tilePos{{0, 1, 0, 0}}, recent...) // (0,0) touches (1,1): part of the view
	recent = append(recent, tilePos{0, 2, 9, 7})        // other level: ignored
	got := planTiles(g, recent, tilePos{0, 1, 3, 2}, 64)
	var ring, zoom []string
	for _, p := range got {
		s := fmt.Sprintf("%d/%d/%d", p.z, p.x, p.y)
		if p.z == 1 {
			ring = append(ring, s)
		} else {
			zoom = append(zoom, s)
		}
	}
	// View bbox is x 0–3, y 0–2; the ring is clipped to the 5×4 level.
	wantRing := []string{"1/4/0", "1/4/1", "1/4/2", "1/0/3", "1/1/3", "1/2/3", "1/3/3", "1/4/3"}
	sort.Strings(ring)
	sort.Strings(wantRing)
	if fmt.Sprint(ring) != fmt.Sprint(wantRing) {
		t.Errorf("ring %v, want %v", ring, wantRing)
	}
	// Centre of x 0–3, y 0–2 at level 1 is (2, 1.5): at level 2 (4, 3); a
	// 4×3 view there spans x 2–5, y 1–3.
	var wantZoom []string
	for y := 1; y <= 3; y++ {
		for x := 2; x <= 5; x++ {
			wantZoom = append(wantZoom, fmt.Sprintf("2/%d/%d", x, y))
		}
	}
	if fmt.Sprint(zoom) != fmt.Sprint(wantZoom) {
		t.Errorf("zoom %v, want %v", zoom, wantZoom)
	}
	// Two disjoint views behind one address: only the latest one's ring.
	two := []tilePos{{0, 2, 0, 0}, {0, 2, 8, 6}}
	got = planTiles(g, two, tilePos{0, 2, 8, 6}, 64)
	if len(got) != 8 {
		t.Errorf("ring of a lone interior tile: %v", got)
	}
	for _, p := range got {
		if p.x < 7 || p.y < 5 {
			t.Errorf("ring tile %v belongs to the other view", p)
		}
	}
}

func TestActivityWaitIdle(t *testing.T) {
	a := NewActivity()
	a.Begin()
	a.Begin()
	if a.InFlight() != 2 {
		t.Fatalf("in flight %d", a.InFlight())
	}
	done := make(chan int64)
	go func() {
		n, _ := a.WaitIdle(context.Background(), 0)
		done <- n
	}()
	a.End()
	if a.InFlight() != 1 {
		t.Fatalf("in flight %d after one end", a.InFlight())
	}
	a.End()
	if n := <-done; n != 0 {
		t.Errorf("WaitIdle returned at %d in flight", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.Begin()
	cancel()
	if _, err := a.WaitIdle(ctx, 0); err == nil {
		t.Error("WaitIdle ignored its context")
	}
	// WaitQuiet returns no sooner than quiet after the last request ended.
	before := time.Now()
	a.End()
	if n, err := a.WaitQuiet(context.Background(), 0, 30*time.Millisecond); err != nil || n != 0 {
		t.Fatalf("WaitQuiet: %d %v", n, err)
	}
	if d := time.Since(before); d < 30*time.Millisecond {
		t.Errorf("WaitQuiet returned %s after the last request", d)
	}
}

// settle waits (bounded) until the prefetcher has nothing left to do.
func settle(t *testing.T, f *Prefetcher) PrefetchStats {
	t.Helper()
	for range 3000 {
		if st := f.Stats(); st.Pending == 0 && st.Active == 0 {
			return st
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("prefetch did not settle: %+v", f.Stats())
	return PrefetchStats{}
}

// TestPrefetchFillsRingThenYieldsToLoad: idle, the ring around a viewer's
// tile is prefetched and later requests for it are hits. Then real
// requests (counted in the Activity as the HTTP layer does) hammer the
// server and the in-flight count is recorded at the start of every
// prefetch fetch: with a threshold of 0 none may start while a real
// request is in flight.
func TestPrefetchFillsRingThenYieldsToLoad(t *testing.T) {
	tiles, err := tilecache.New(tilecache.Config{Mode: tilecache.ModeMemory, MemoryBytes: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer tiles.Close()
	p := newPipeline(t, tiles)
	loc := cmuLoc(t)
	act := NewActivity()
	var mu sync.Mutex
	var starts []int64
	f := NewPrefetcher(p, PrefetchConfig{Workers: 1, Activity: act, OnProduce: func(n int64) {
		mu.Lock()
		starts = append(starts, n)
		mu.Unlock()
	}})
	defer f.Close()
	ctx := context.Background()

	// CMU: level 4 (the deepest, stored) is 10×13 tiles, level 3 is 5×7.
	view := TileRequest{Z: 4, X: 7, Y: 10, Encode: DefaultEncode}
	if _, err := p.Tile(ctx, loc, view); err != nil {
		t.Fatal(err)
	}
	f.Observe("idle viewer", loc, view)
	st := settle(t, f)
	if st.Queued != 8 || st.Produced != 8 || st.Skipped != 0 {
		t.Errorf("ring of 8 tiles: %+v", st)
	}
	for dy := -1; dy <= 1; dy++ {
		for dx := -1; dx <= 1; dx++ {
			if dx == 0 && dy == 0 {
				continue
			}
			req := view
			req.X, req.Y = view.X+dx, view.Y+dy
			res, err := p.Tile(ctx, loc, req)
			if err != nil {
				t.Fatal(err)
			}
			if res.CacheStatus != tilecache.StatusHitMemory {
				t.Errorf("ring tile %d/%d: %s, want a memory hit", req.X, req.Y, res.CacheStatus)
			}
		}
	}
	far := view
	far.X, far.Y = view.X+2, view.Y+2
	if res, err := p.Tile(ctx, loc, far); err != nil || res.CacheStatus != tilecache.StatusMiss {
		t.Errorf("tile outside the ring: %v %v", res.CacheStatus, err)
	}
	// The same view again: everything planned is cached now.
	f.Observe("idle viewer", loc, view)
	if st2 := settle(t, f); st2.Skipped-st.Skipped != 8 || st2.Produced != st.Produced {
		t.Errorf("second plan of a cached ring: %+v", st2)
	}

	var wg sync.WaitGroup
	for u := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 30 {
				req := TileRequest{Z: 2 + i%3, X: (u + i) % 3, Y: (u * i) % 4, Encode: DefaultEncode}
				act.Begin()
				_, err := p.Tile(ctx, loc, req)
				act.End()
				if err != nil {
					t.Error(err)
					return
				}
				f.Observe(fmt.Sprint("viewer", u), loc, req)
			}
		}()
	}
	wg.Wait()
	settle(t, f)
	mu.Lock()
	defer mu.Unlock()
	if len(starts) <= 16 {
		t.Errorf("no prefetch ran after the load: %d fetches", len(starts))
	}
	for _, n := range starts {
		if n != 0 {
			t.Errorf("a prefetch started with %d real requests in flight", n)
		}
	}
}

// TestPrefetchQueueBounded: nothing is planned while the server is busy,
// and a plan larger than the queue is cut.
func TestPrefetchQueueBounded(t *testing.T) {
	p := newPipeline(t, nil)
	loc := cmuLoc(t)
	act := NewActivity()
	act.Begin() // busy: the worker never starts
	f := NewPrefetcher(p, PrefetchConfig{Workers: 1, Activity: act, QueueSize: 4})
	for x := range 10 {
		f.Observe("v", loc, TileRequest{Z: 4, X: x, Y: 3, Encode: DefaultEncode})
	}
	if st := f.Stats(); st.Pending != 0 || st.Queued != 0 {
		t.Errorf("planned while busy: %+v", st)
	}
	act.End()
	st := settle(t, f)
	// The row of 10 tiles is one view: its ring is rows 2 and 4 (20
	// tiles), of which the queue keeps 4.
	if st.Queued != 20 || st.Dropped != 16 || st.Produced != 4 {
		t.Errorf("bounded queue: %+v", st)
	}
	f.Close()
}
