package pipeline

// Predictive prefetch: after a viewer's tiles are served, fetch in the
// background the tiles it is likely to ask for next — the ring around its
// current view and the next level in at the view's centre — while the
// server is idle. Planning happens only when a worker is about to work (so
// it sees the whole view, not the first tiles of it), a new request of the
// same viewer throws away the tiles planned for its previous view, and
// every tile goes through Tile, which looks the cache up first: a tile
// already cached is not produced again.

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tileserver/tileserver/tilecache"
	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/work"
)

// PrefetchConfig configures a Prefetcher; zero fields take the defaults.
type PrefetchConfig struct {
	// Workers is the number of prefetch goroutines (default 1).
	Workers int
	// MaxInFlight: a worker takes work only while at most this many real
	// requests are in flight (default 0: only when the server is idle).
	MaxInFlight int64
	// Quiet is how long no real request may have begun or ended before a
	// worker takes work (default 20ms; negative: no wait), so prefetch
	// runs in the pauses between a viewer's views, not in the gaps
	// between the tiles of one view.
	Quiet time.Duration
	// QueueSize bounds the planned tiles waiting (default 256); when full
	// the oldest plans are dropped.
	QueueSize int
	// Clients bounds the viewers tracked (default 256, least recently seen
	// forgotten first); History the recent tiles kept per viewer (default
	// 64).
	Clients, History int
	// MaxZoomTiles caps the next-level tiles planned per view (default 64).
	MaxZoomTiles int
	// Activity counts real requests; nil makes a private one (which then
	// never sees a request).
	Activity *Activity
	// OnProduce, when set, is called just before each prefetch tile is
	// fetched, with the number of real requests in flight that the idle
	// check saw. For tests and tracing.
	OnProduce func(inFlight int64)
}

// PrefetchStats are the prefetcher's counters.
type PrefetchStats struct {
	// Queued counts tiles put in the queue; Dropped those removed unfetched
	// (queue full, or the viewer moved on).
	Queued  uint64 `json:"queued"`
	Dropped uint64 `json:"dropped"`
	// Produced counts tiles made by prefetch; Skipped those found in a
	// cache tier (or being made by a real request) and not made again.
	Produced uint64 `json:"produced"`
	Skipped  uint64 `json:"skipped"`
	Failed   uint64 `json:"failed"`
	// Pending is the current queue length; Active counts tiles being
	// fetched, plans being made and viewers waiting for a plan. Clients
	// is the number of viewers tracked.
	Pending int `json:"pending"`
	Active  int `json:"active"`
	Clients int `json:"clients"`
	Workers int `json:"workers"`
}

type tilePos struct{ frame, z, x, y int }

// prefetchClient is one viewer of one image with one set of parameters.
type prefetchClient struct {
	key    string
	loc    Locator
	req    TileRequest // parameters; Z, X, Y and Frame are per tile
	recent []tilePos   // ring buffer of the latest requests
	next   int         // write position in recent
	latest tilePos
	seen   uint64 // sequence of the last request, for LRU and priority
	dirty  bool   // requests arrived since the last plan
	queued int    // jobs of this client in the queue
}

type prefetchJob struct {
	client *prefetchClient
	id     string
	loc    Locator
	req    TileRequest
}

// levelGrid is the tile layout of an image.
type levelGrid struct {
	levels int
	counts [][2]int // columns, rows per level
}

// Prefetcher runs predictive prefetch over a pipeline.
type Prefetcher struct {
	p   *Pipeline
	cfg PrefetchConfig
	act *Activity

	mu      sync.Mutex
	clients map[string]*prefetchClient
	seq     uint64
	queue   []prefetchJob // newest plans first
	ids     map[string]bool
	grids   map[string]levelGrid

	wake   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup

	queued, dropped, produced, skipped, failed atomic.Uint64
	busy                                       atomic.Int64 // workers with a job or a plan
}

// NewPrefetcher starts cfg.Workers prefetch workers over p; Close stops
// them.
func NewPrefetcher(p *Pipeline, cfg PrefetchConfig) *Prefetcher {
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	if cfg.MaxInFlight < 0 {
		cfg.MaxInFlight = 0
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 256
	}
	if cfg.Quiet == 0 {
		cfg.Quiet = 20 * time.Millisecond
	}
	if cfg.Clients <= 0 {
		cfg.Clients = 256
	}
	if cfg.History <= 0 {
		cfg.History = 64
	}
	if cfg.MaxZoomTiles <= 0 {
		cfg.MaxZoomTiles = 64
	}
	if cfg.Activity == nil {
		cfg.Activity = NewActivity()
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Prefetcher{
		p: p, cfg: cfg, act: cfg.Activity,
		clients: map[string]*prefetchClient{}, ids: map[string]bool{}, grids: map[string]levelGrid{},
		wake: make(chan struct{}, 1), cancel: cancel,
	}
	for range cfg.Workers {
		f.wg.Add(1)
		go f.work(ctx)
	}
	return f
}

// Close stops the workers, waiting for the tiles being fetched.
func (f *Prefetcher) Close() {
	f.cancel()
	f.wg.Wait()
}

// Stats returns the counters.
func (f *Prefetcher) Stats() PrefetchStats {
	f.mu.Lock()
	pending, clients := len(f.queue), len(f.clients)
	active := int(f.busy.Load())
	for _, c := range f.clients {
		if c.dirty {
			active++
		}
	}
	f.mu.Unlock()
	return PrefetchStats{
		Queued: f.queued.Load(), Dropped: f.dropped.Load(), Produced: f.produced.Load(),
		Skipped: f.skipped.Load(), Failed: f.failed.Load(), Pending: pending, Active: active,
		Clients: clients, Workers: f.cfg.Workers,
	}
}

// paramsKey names the parameters that change a tile's bytes.
func paramsKey(r TileRequest) string {
	e := r.Encode
	return fmt.Sprintf("%s|%d|%d|%s|%s|%s", e.Encoding, e.JPEGQuality, e.JPEGSubsampling, e.TIFFCompression, r.Edge, r.Style)
}

// Observe records that client (any string naming one viewer, such as its
// address and user agent) was just served tile req of loc. It is cheap and
// never blocks: the work happens in the workers.
func (f *Prefetcher) Observe(client string, loc Locator, req TileRequest) {
	key := client + "\x00" + identity(loc) + "\x00" + paramsKey(req)
	pos := tilePos{req.Frame, req.Z, req.X, req.Y}
	f.mu.Lock()
	c := f.clients[key]
	if c == nil {
		if len(f.clients) >= f.cfg.Clients {
			f.forgetOldestLocked()
		}
		c = &prefetchClient{key: key, recent: make([]tilePos, 0, f.cfg.History)}
		f.clients[key] = c
	}
	c.loc, c.req = loc, req
	if len(c.recent) < f.cfg.History {
		c.recent = append(c.recent, pos)
	} else {
		c.recent[c.next] = pos
		c.next = (c.next + 1) % f.cfg.History
	}
	c.latest = pos
	f.seq++
	c.seen, c.dirty = f.seq, true
	if c.queued > 0 {
		// The viewer moved on: what was planned for its previous view is
		// replanned from the new one.
		f.removeLocked(func(j prefetchJob) bool { return j.client == c })
	}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *Prefetcher) forgetOldestLocked() {
	var old *prefetchClient
	for _, c := range f.clients {
		if old == nil || c.seen < old.seen {
			old = c
		}
	}
	if old == nil {
		return
	}
	if old.queued > 0 {
		f.removeLocked(func(j prefetchJob) bool { return j.client == old })
	}
	delete(f.clients, old.key)
}

// removeLocked drops queued jobs matching drop.
func (f *Prefetcher) removeLocked(drop func(prefetchJob) bool) {
	kept := f.queue[:0]
	for _, j := range f.queue {
		if drop(j) {
			f.dropJobLocked(j)
			continue
		}
		kept = append(kept, j)
	}
	clear(f.queue[len(kept):])
	f.queue = kept
}

func (f *Prefetcher) dropJobLocked(j prefetchJob) {
	delete(f.ids, j.id)
	j.client.queued--
	f.dropped.Add(1)
}

func (f *Prefetcher) work(ctx context.Context) {
	defer f.wg.Done()
	// Prefetch yields the work budget to every request, and keeps what
	// it makes: the next request's hit is its whole point.
	ctx = tilecache.KeepAtOnce(work.WithPriority(ctx, work.Background))
	for {
		// Idle first, then take: work is chosen only when it can start at
		// once, so a viewer's newer requests can still replace it.
		n, err := f.act.WaitQuiet(ctx, f.cfg.MaxInFlight, f.cfg.Quiet)
		if err != nil {
			return
		}
		job, plan, ok := f.take()
		if !ok {
			select {
			case <-f.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		if plan != nil {
			f.plan(ctx, plan)
			f.busy.Add(-1)
			continue
		}
		if f.cfg.OnProduce != nil {
			f.cfg.OnProduce(n)
		}
		res, err := f.p.Tile(ctx, job.loc, job.req)
		f.mu.Lock()
		delete(f.ids, job.id)
		f.mu.Unlock()
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			f.failed.Add(1)
		case res.CacheStatus == tilecache.StatusMiss || res.CacheStatus == "":
			f.produced.Add(1)
		default:
			f.skipped.Add(1)
		}
		f.busy.Add(-1)
	}
}

// planRequest is a snapshot of a client to plan from.
type planRequest struct {
	client *prefetchClient
	loc    Locator
	req    TileRequest
	recent []tilePos
	latest tilePos
}

// take returns the next queued job, or else a client to plan for (the
// most recently active one), or ok false when there is nothing to do.
func (f *Prefetcher) take() (prefetchJob, *planRequest, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queue) > 0 {
		j := f.queue[0]
		f.queue[0] = prefetchJob{}
		f.queue = f.queue[1:]
		j.client.queued--
		f.busy.Add(1)
		// ids keeps the job until it is fetched, so a replan does not
		// queue it again meanwhile.
		return j, nil, true
	}
	var best *prefetchClient
	for _, c := range f.clients {
		if c.dirty && (best == nil || c.seen > best.seen) {
			best = c
		}
	}
	if best == nil {
		return prefetchJob{}, nil, false
	}
	best.dirty = false
	f.busy.Add(1)
	return prefetchJob{}, &planRequest{client: best, loc: best.loc, req: best.req,
		recent: append([]tilePos(nil), best.recent...), latest: best.latest}, true
}

// plan queues the ring around the client's view and the next level in at
// its centre, ahead of older plans.
func (f *Prefetcher) plan(ctx context.Context, pr *planRequest) {
	g, err := f.grid(ctx, pr.loc)
	if err != nil || pr.latest.z >= g.levels {
		return
	}
	tiles := planTiles(g, pr.recent, pr.latest, f.cfg.MaxZoomTiles)
	base := identity(pr.loc) + "\x00" + paramsKey(pr.req) + "\x00"
	var jobs []prefetchJob
	f.mu.Lock()
	defer f.mu.Unlock()
	if pr.client.dirty || f.clients[pr.client.key] != pr.client {
		return // newer requests arrived while planning: plan again later
	}
	for _, t := range tiles {
		id := base + fmt.Sprint(t.frame, "/", t.z, "/", t.x, "/", t.y)
		if f.ids[id] {
			continue
		}
		req := pr.req
		req.Frame, req.Z, req.X, req.Y = t.frame, t.z, t.x, t.y
		jobs = append(jobs, prefetchJob{client: pr.client, id: id, loc: pr.loc, req: req})
		f.ids[id] = true
	}
	f.queued.Add(uint64(len(jobs)))
	if len(jobs) > f.cfg.QueueSize {
		for _, j := range jobs[f.cfg.QueueSize:] {
			delete(f.ids, j.id)
			f.dropped.Add(1)
		}
		jobs = jobs[:f.cfg.QueueSize]
	}
	pr.client.queued += len(jobs)
	f.queue = append(jobs, f.queue...)
	for len(f.queue) > f.cfg.QueueSize {
		last := len(f.queue) - 1
		f.dropJobLocked(f.queue[last])
		f.queue[last] = prefetchJob{}
		f.queue = f.queue[:last]
	}
}

// grid returns the tile layout of loc, cached per image.
func (f *Prefetcher) grid(ctx context.Context, loc Locator) (levelGrid, error) {
	id := identity(loc)
	f.mu.Lock()
	g, ok := f.grids[id]
	f.mu.Unlock()
	if ok {
		return g, nil
	}
	err := f.p.withSource(ctx, loc, func(src tilesource.Source) error {
		info := src.Info()
		g.levels = info.Levels
		for z := range info.Levels {
			c, r := info.TileCount(z)
			g.counts = append(g.counts, [2]int{c, r})
		}
		return nil
	})
	if err != nil {
		return g, err
	}
	f.mu.Lock()
	if len(f.grids) >= 1024 {
		clear(f.grids)
	}
	f.grids[id] = g
	f.mu.Unlock()
	return g, nil
}

// planTiles approximates the viewer's view by the tiles of its latest
// level and frame that are connected to its latest tile (so several
// viewers behind one address do not merge into one huge view), and
// returns the ring of tiles around that view's bounding box, then the
// tiles of the next level in covering the view's centre with as many
// tiles as the view has (at most maxZoom).
func planTiles(g levelGrid, recent []tilePos, latest tilePos, maxZoom int) []tilePos {
	at := map[[2]int]bool{}
	for _, t := range recent {
		if t.z == latest.z && t.frame == latest.frame {
			at[[2]int{t.x, t.y}] = true
		}
	}
	x0, y0, x1, y1 := latest.x, latest.y, latest.x, latest.y
	seen := map[[2]int]bool{{latest.x, latest.y}: true}
	stack := [][2]int{{latest.x, latest.y}}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		x0, y0, x1, y1 = min(x0, p[0]), min(y0, p[1]), max(x1, p[0]), max(y1, p[1])
		for dy := -1; dy <= 1; dy++ {
			for dx := -1; dx <= 1; dx++ {
				q := [2]int{p[0] + dx, p[1] + dy}
				if at[q] && !seen[q] {
					seen[q] = true
					stack = append(stack, q)
				}
			}
		}
	}
	var out []tilePos
	cols, rows := g.counts[latest.z][0], g.counts[latest.z][1]
	for y := y0 - 1; y <= y1+1; y++ {
		for x := x0 - 1; x <= x1+1; x++ {
			inside := x >= x0 && x <= x1 && y >= y0 && y <= y1
			if inside || x < 0 || y < 0 || x >= cols || y >= rows {
				continue
			}
			out = append(out, tilePos{latest.frame, latest.z, x, y})
		}
	}
	z := latest.z + 1
	if z >= g.levels {
		return out
	}
	w, h := x1-x0+1, y1-y0+1
	for w*h > maxZoom {
		if w >= h {
			w--
		} else {
			h--
		}
	}
	// The view's centre in tiles of level z is twice its centre at z-1.
	cx, cy := float64(x0+x1+1), float64(y0+y1+1)
	sx := int(math.Floor(cx - float64(w)/2))
	sy := int(math.Floor(cy - float64(h)/2))
	cols, rows = g.counts[z][0], g.counts[z][1]
	for y := sy; y < sy+h; y++ {
		for x := sx; x < sx+w; x++ {
			if x >= 0 && y >= 0 && x < cols && y < rows {
				out = append(out, tilePos{latest.frame, z, x, y})
			}
		}
	}
	return out
}
