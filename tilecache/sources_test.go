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

type fakeResource struct {
	name    string
	mem     int64
	handles int
	closed  atomic.Int32
}

func (f *fakeResource) MemoryEstimate() int64 { return f.mem }
func (f *fakeResource) Close() error {
	f.closed.Add(1)
	return nil
}

type countedResource struct{ *fakeResource }

func (c countedResource) HandleCount() int { return c.handles }

func opener(r Resource, opens *atomic.Int64) func() (Resource, error) {
	return func() (Resource, error) {
		opens.Add(1)
		return r, nil
	}
}

func (s *SourceCache) refsOf(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[key]; ok {
		return e.refs
	}
	return 0
}

func TestSourceBudgetNeverClosesInUse(t *testing.T) {
	sc := NewSources(SourcesConfig{MemoryBytes: 100, MaxHandles: 1000})
	ctx := context.Background()
	var opens atomic.Int64
	res := make([]*fakeResource, 10)
	releases := make([]func(), 10)
	for i := range res {
		res[i] = &fakeResource{name: fmt.Sprint(i), mem: 30}
	}
	// Hold five at once: 150 bytes, over the 100-byte budget.
	for i := range 5 {
		r, rel, err := sc.Acquire(ctx, res[i].name, opener(res[i], &opens))
		if err != nil || r != res[i] {
			t.Fatalf("acquire %d: %v", i, err)
		}
		releases[i] = rel
	}
	for i := range 5 {
		if res[i].closed.Load() != 0 {
			t.Fatalf("resource %d closed while in use", i)
		}
	}
	if st := sc.Stats(); st.Used != 150 || st.Items != 5 || st.Evictions != 0 {
		t.Fatalf("stats while all in use %+v", st)
	}
	// Releasing in order 0..4 evicts the least recently used idle ones
	// until back within budget: 0 and 1 go, 2..4 (90 bytes) stay.
	for i := range 5 {
		releases[i]()
		releases[i]() // release is idempotent
	}
	for i := range 5 {
		want := int32(0)
		if i < 2 {
			want = 1
		}
		if got := res[i].closed.Load(); got != want {
			t.Fatalf("resource %d closed %d times, want %d", i, got, want)
		}
	}
	// The other five, each released at once: at most three stay open.
	for i := 5; i < 10; i++ {
		_, rel, err := sc.Acquire(ctx, res[i].name, opener(res[i], &opens))
		if err != nil {
			t.Fatal(err)
		}
		rel()
	}
	st := sc.Stats()
	if st.Used > st.MaxSize || st.Items != 3 || st.Evictions != 7 {
		t.Fatalf("stats %+v: want 3 items within 100 bytes and 7 evictions", st)
	}
	for i := range 7 {
		if res[i].closed.Load() != 1 {
			t.Fatalf("resource %d not closed once", i)
		}
	}
	// A cached one is reused, not reopened.
	before := opens.Load()
	r, rel, _ := sc.Acquire(ctx, res[9].name, opener(&fakeResource{mem: 30}, &opens))
	rel()
	if r != res[9] || opens.Load() != before {
		t.Fatal("an idle cached source was reopened")
	}
}

func TestSourceHandleBudget(t *testing.T) {
	sc := NewSources(SourcesConfig{MemoryBytes: 1 << 30, MaxHandles: 4})
	var opens atomic.Int64
	var all []*fakeResource
	for i := range 3 {
		f := &fakeResource{mem: 1, handles: 2}
		all = append(all, f)
		_, rel, err := sc.Acquire(context.Background(), fmt.Sprint(i), opener(countedResource{f}, &opens))
		if err != nil {
			t.Fatal(err)
		}
		rel()
	}
	if all[0].closed.Load() != 1 || all[1].closed.Load() != 0 || all[2].closed.Load() != 0 {
		t.Fatal("want only the least recently used source closed for handles")
	}
	if st := sc.Stats(); st.Handles != 4 || st.MaxHandles != 4 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSourceConcurrentAcquireOpensOnce(t *testing.T) {
	sc := NewSources(SourcesConfig{MemoryBytes: 1 << 30, MaxHandles: 100})
	const callers = 10
	var opens atomic.Int64
	shared := &fakeResource{mem: 10}
	open := func() (Resource, error) {
		opens.Add(1)
		// Finish opening only when every caller waits on this entry.
		for sc.refsOf("slide@v1") < callers {
			time.Sleep(time.Millisecond)
		}
		return shared, nil
	}
	var wg sync.WaitGroup
	rels := make([]func(), callers)
	for i := range callers {
		wg.Go(func() {
			r, rel, err := sc.Acquire(context.Background(), "slide@v1", open)
			if err != nil || r != shared {
				t.Errorf("caller %d: %v", i, err)
				return
			}
			rels[i] = rel
		})
	}
	wg.Wait()
	if opens.Load() != 1 {
		t.Fatalf("opened %d times, want 1", opens.Load())
	}
	for _, rel := range rels {
		if rel != nil {
			rel()
		}
	}
	if st := sc.Stats(); st.Hits != callers-1 || st.Misses != 1 || st.Items != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSourceNewVersionOpensAnew(t *testing.T) {
	sc := NewSources(SourcesConfig{MemoryBytes: 15, MaxHandles: 100})
	var opens atomic.Int64
	v1, v2 := &fakeResource{mem: 10}, &fakeResource{mem: 10}
	r, rel1, _ := sc.Acquire(context.Background(), "slide@v1", opener(v1, &opens))
	if r != v1 {
		t.Fatal("v1")
	}
	r, rel2, _ := sc.Acquire(context.Background(), "slide@v2", opener(v2, &opens))
	if r != v2 || opens.Load() != 2 {
		t.Fatal("a new version must open anew")
	}
	if v1.closed.Load() != 0 {
		t.Fatal("v1 closed while in use")
	}
	rel1()
	if v1.closed.Load() != 1 || v2.closed.Load() != 0 {
		t.Fatal("the old version must close once idle and over budget")
	}
	rel2()
}

func TestSourceOpenErrorNotCached(t *testing.T) {
	sc := NewSources(SourcesConfig{MemoryBytes: 100, MaxHandles: 10})
	boom := errors.New("corrupt")
	if _, _, err := sc.Acquire(context.Background(), "k", func() (Resource, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	if _, _, err := sc.Acquire(context.Background(), "k", func() (Resource, error) { panic("bad file") }); err == nil {
		t.Fatal("a panicking open must give an error")
	}
	var opens atomic.Int64
	f := &fakeResource{mem: 1}
	r, rel, err := sc.Acquire(context.Background(), "k", opener(f, &opens))
	if err != nil || r != f {
		t.Fatalf("after errors: %v", err)
	}
	rel()
	if st := sc.Stats(); st.Errors != 2 || st.Items != 1 || st.Used != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSourceClear(t *testing.T) {
	sc := NewSources(SourcesConfig{MemoryBytes: 100, MaxHandles: 10})
	var opens atomic.Int64
	idle, busy := &fakeResource{mem: 1}, &fakeResource{mem: 1}
	_, rel, _ := sc.Acquire(context.Background(), "idle", opener(idle, &opens))
	rel()
	_, relBusy, _ := sc.Acquire(context.Background(), "busy", opener(busy, &opens))
	sc.Clear()
	if idle.closed.Load() != 1 || busy.closed.Load() != 0 {
		t.Fatal("Clear must close idle sources and keep in-use ones open")
	}
	fresh := &fakeResource{mem: 1}
	r, relFresh, _ := sc.Acquire(context.Background(), "busy", opener(fresh, &opens))
	if r != fresh {
		t.Fatal("after Clear a key opens anew")
	}
	relBusy()
	if busy.closed.Load() != 1 {
		t.Fatal("a cleared source must close on release")
	}
	relFresh()
	if st := sc.Stats(); st.Items != 1 || st.Used != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSourceCancelledWaiter(t *testing.T) {
	sc := NewSources(SourcesConfig{MemoryBytes: 100, MaxHandles: 10})
	release := make(chan struct{})
	f := &fakeResource{mem: 1}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, rel, err := sc.Acquire(context.Background(), "k", func() (Resource, error) {
			<-release
			return f, nil
		})
		if err == nil {
			rel()
		}
	}()
	for sc.refsOf("k") < 1 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := sc.Acquire(ctx, "k", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	close(release)
	<-done
	if st := sc.Stats(); st.Items != 1 || f.closed.Load() != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSourceDefaults(t *testing.T) {
	c := NewSources(SourcesConfig{}).Config()
	if c.MemoryBytes != TotalMemory()/16 || c.MaxHandles != max(OpenFileLimit()/2, 8) {
		t.Fatalf("defaults %+v (memory %d, nofile %d)", c, TotalMemory(), OpenFileLimit())
	}
}

// styledView is a derived resource holding a reference to its base.
type styledView struct {
	fakeResource
	releaseBase func()
}

func (v *styledView) Close() error {
	v.releaseBase()
	return v.fakeResource.Close()
}

func TestSourceDerivedResourceKeepsBaseOpen(t *testing.T) {
	sc := NewSources(SourcesConfig{MemoryBytes: 10, MaxHandles: 100})
	ctx := context.Background()
	base := &fakeResource{mem: 8}
	openView := func() (Resource, error) {
		_, rel, err := sc.Acquire(ctx, "slide", func() (Resource, error) { return base, nil })
		if err != nil {
			return nil, err
		}
		return &styledView{fakeResource: fakeResource{mem: 1}, releaseBase: rel}, nil
	}
	r, rel, err := sc.Acquire(ctx, "slide|style=a", openView)
	if err != nil {
		t.Fatal(err)
	}
	view := r.(*styledView)
	rel()
	if base.closed.Load() != 0 || view.closed.Load() != 0 {
		t.Fatal("within budget nothing closes")
	}
	// Another source pushes the cache over budget: the idle view goes
	// (least recently used), which releases the base, which then goes too.
	var opens atomic.Int64
	other := &fakeResource{mem: 5}
	_, relOther, _ := sc.Acquire(ctx, "other", opener(other, &opens))
	if view.closed.Load() != 1 || base.closed.Load() != 1 || other.closed.Load() != 0 {
		t.Fatalf("closed: view %d base %d other %d", view.closed.Load(), base.closed.Load(), other.closed.Load())
	}
	relOther()
	if st := sc.Stats(); st.Items != 1 || st.Used != 5 {
		t.Fatalf("stats %+v", st)
	}
}
