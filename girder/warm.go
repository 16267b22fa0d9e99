package girder

// Background work around the tile routes: warm-up of items (on import or on
// request), a pathologist's worklist precached a few items ahead of what
// has been opened, and predictive prefetch of the tiles a viewer is likely
// to ask for next. All of it yields to real requests: the middleware here
// counts every image request in flight, and background workers start work
// only while that count is low.

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tileserver/tileserver/girder/store"
	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/pipeline"
)

// ItemWarmer produces an image's low-resolution levels into the cache
// (*pipeline.Pipeline implements it).
type ItemWarmer interface {
	Warm(ctx context.Context, loc pipeline.Locator, opt pipeline.WarmOptions, progress func(pipeline.WarmProgress)) (pipeline.WarmProgress, error)
}

// Prefetch is the predictive prefetcher (*pipeline.Prefetcher implements
// it).
type Prefetch interface {
	Observe(client string, loc pipeline.Locator, req pipeline.TileRequest)
	Stats() pipeline.PrefetchStats
}

// BackgroundConfig configures warm-up, worklist precache and prefetch.
type BackgroundConfig struct {
	// Activity counts real image requests in flight; nil makes one. Give
	// the same one to the Prefetcher.
	Activity *pipeline.Activity
	// Warmer enables warm-up and the warm and precache routes.
	Warmer ItemWarmer
	// WarmWorkers is the number of items warmed at once (default 1).
	WarmWorkers int
	// WarmMaxInFlight: warm-up produces only while at most this many real
	// requests are in flight (0 means GOMAXPROCS, so a trickle of requests
	// does not starve it; negative means only when idle).
	WarmMaxInFlight int
	// WarmMaxTiles bounds the warmed levels (see pipeline.WarmOptions).
	WarmMaxTiles int
	// PrecacheBatch is how many worklist items are released at a time
	// (default 5); PrecacheAhead how far past the furthest opened item the
	// worklist may be warmed (default 15).
	PrecacheBatch, PrecacheAhead int
	// Prefetch, when set, is told about every tile served.
	Prefetch Prefetch
}

// WithBackground enables the background work of cfg and its routes:
// POST/GET large_image/cache/warm and POST large_image/cache/precache.
func WithBackground(cfg BackgroundConfig) Option {
	return func(s *Server) { s.background().setup(cfg) }
}

// WithImportHook calls fn after every successful import with the items
// found by that scan (the command wires warm-on-import to it).
func WithImportHook(fn func(ctx context.Context, items []store.Item)) Option {
	return func(s *Server) { s.background().onImport = fn }
}

// background holds the state of the background work; nil without any.
type background struct {
	s        *Server
	on       bool
	act      *pipeline.Activity
	prefetch Prefetch
	onImport func(ctx context.Context, items []store.Item)
	warm     *warmer
}

func (s *Server) background() *background {
	if s.bg == nil {
		s.bg = &background{s: s}
	}
	return s.bg
}

func (b *background) setup(cfg BackgroundConfig) {
	b.on = true
	b.act = cfg.Activity
	if b.act == nil {
		b.act = pipeline.NewActivity()
	}
	b.prefetch = cfg.Prefetch
	if cfg.Warmer != nil {
		b.warm = newWarmer(b.s, b.act, cfg)
	}
}

// backgroundRoutes mounts the request counter and the warm routes.
func (s *Server) backgroundRoutes(e *echo.Echo, g *echo.Group) {
	if s.bg == nil || !s.bg.on {
		return
	}
	if s.bg.warm != nil {
		g.GET("/large_image/cache/warm", s.warmStatus, s.requireAdmin)
		g.POST("/large_image/cache/warm", s.warmItems, s.requireAdmin)
		g.POST("/large_image/cache/precache", s.precache, s.requireAdmin)
	}
}

// Close stops the background workers; queued warm-ups are abandoned.
func (s *Server) Close() {
	if s.bg != nil && s.bg.warm != nil {
		s.bg.warm.close()
	}
}

// WarmItems queues items for warm-up (source names why: "import",
// "request") and returns how many were queued. Items already queued or
// running are left alone; with onlyChanged, so are items already warmed
// at their current version.
func (s *Server) WarmItems(ids []string, source string, onlyChanged bool) int {
	if s.bg == nil || s.bg.warm == nil {
		return 0
	}
	return s.bg.warm.enqueue(ids, source, onlyChanged)
}

// imported runs the import hook with the items under sub.
func (s *Server) imported(ctx context.Context, sub string) {
	if s.bg == nil || s.bg.onImport == nil {
		return
	}
	sub = strings.Trim(sub, "/")
	var items []store.Item
	for _, it := range s.store.Items(store.ItemQuery{}) {
		if sub == "" || it.Path == sub || strings.HasPrefix(it.Path, sub+"/") {
			items = append(items, it)
		}
	}
	s.bg.onImport(ctx, items)
}

// ctxTileCall is the echo context key under which the tile handler leaves
// what it asked the pipeline, for prefetch.
const ctxTileCall = "girder.tileCall"

type tileCall struct {
	loc pipeline.Locator
	req pipeline.TileRequest
}

// trackImageRequests runs an image request of the tile routes counted in
// flight, marks its item opened for the worklist, and tells the prefetcher
// about the tile served.
func (s *Server) trackImageRequests(c echo.Context, next echo.HandlerFunc) error {
	route := c.Path()
	if !s.tracking() || !strings.HasPrefix(route, "/api/v1/item/") || !strings.Contains(route, "/tiles") {
		return next(c)
	}
	id := c.Param("id")
	s.beginImageRequest(id, time.Now())
	ended := false
	defer func() {
		if !ended { // a panicking handler must not leave the count up
			s.bg.act.End()
		}
	}()
	err := next(c)
	ended = true
	s.bg.act.End()
	if err == nil && id != "" && c.Response().Status == http.StatusOK {
		if tc, ok := c.Get(ctxTileCall).(tileCall); ok {
			s.servedTile(c.Request(), tc.loc, tc.req)
		}
	}
	return err
}

// tracking reports whether image requests are counted for the background
// work (warm-up and prefetch yield to them).
func (s *Server) tracking() bool { return s.bg != nil && s.bg.on }

// beginImageRequest counts an image request of item id, begun at now, in
// flight (the caller ends it with s.bg.act.End or EndAt) and marks the item
// opened for the worklist.
func (s *Server) beginImageRequest(id string, now time.Time) {
	s.bg.act.BeginAt(now)
	if id != "" && s.bg.warm != nil {
		s.bg.warm.opened(id)
	}
}

// servedTile tells the prefetcher, if any, that the tile req of loc was
// served to the client of r.
func (s *Server) servedTile(r *http.Request, loc pipeline.Locator, req pipeline.TileRequest) {
	if s.bg != nil && s.bg.prefetch != nil {
		s.bg.prefetch.Observe(clientKey(r), loc, req)
	}
}

// clientKey names a viewer: its address and a hash of its user agent.
func clientKey(r *http.Request) string {
	h := fnv.New64a()
	h.Write([]byte(r.UserAgent()))
	return clientIP(r) + "|" + strconv.FormatUint(h.Sum64(), 36)
}

// clientIP is the client's address: the first X-Forwarded-For entry, else
// X-Real-IP, else the connection's peer (echo's RealIP without an
// extractor, so a server behind a proxy tells its viewers apart). It is
// also echo's IPExtractor, so both agree.
func clientIP(r *http.Request) string {
	if v := r.Header.Get("X-Forwarded-For"); v != "" {
		if i := strings.IndexByte(v, ','); i > 0 {
			v = v[:i]
		}
		return strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(v), "["), "]")
	}
	if v := r.Header.Get("X-Real-Ip"); v != "" {
		return strings.TrimSuffix(strings.TrimPrefix(v, "["), "]")
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	return host
}

// Warm states of an item.
const (
	warmQueued  = "queued"
	warmRunning = "running"
	warmDone    = "done"
	warmFailed  = "failed"
	warmSkipped = "skipped"
)

// maxWarmRecords bounds the per-item records kept for the status route;
// the oldest finished ones go first.
const maxWarmRecords = 5000

// WarmItemStatus is one item in the warm status.
type WarmItemStatus struct {
	ID       string                `json:"id"`
	Name     string                `json:"name"`
	Source   string                `json:"source"`
	State    string                `json:"state"`
	Progress pipeline.WarmProgress `json:"progress"`
	Error    string                `json:"error,omitempty"`
	Queued   time.Time             `json:"queued"`
	Started  *time.Time            `json:"started,omitempty"`
	Finished *time.Time            `json:"finished,omitempty"`
	version  string
	seq      uint64
}

// PrecacheStatus describes the worklist.
type PrecacheStatus struct {
	Items []string `json:"items"`
	// Opened is the number of list items up to the furthest one opened;
	// Next the index of the next item to release.
	Opened int `json:"opened"`
	Next   int `json:"next"`
	// Batch lists the released items not finished yet.
	Batch     []string `json:"batch"`
	BatchSize int      `json:"batchSize"`
	Ahead     int      `json:"ahead"`
}

// WarmStatus is the document of GET large_image/cache/warm.
type WarmStatus struct {
	Queued   int              `json:"queued"`
	Running  int              `json:"running"`
	Done     int              `json:"done"`
	Failed   int              `json:"failed"`
	Skipped  int              `json:"skipped"`
	Workers  int              `json:"workers"`
	Items    []WarmItemStatus `json:"items"`
	Precache PrecacheStatus   `json:"precache"`
}

type warmer struct {
	s           *Server
	w           ItemWarmer
	act         *pipeline.Activity
	workers     int
	maxInFlight int64
	maxTiles    int
	batchSize   int
	ahead       int

	mu      sync.Mutex
	records map[string]*WarmItemStatus
	seq     uint64
	queue   []string // worklist items first (prio of them), then the rest
	prio    int
	wake    chan struct{}
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	list     []string
	index    map[string]int
	openedTo int
	// lastOpened is the item opened last since the worklist was set:
	// opening it again changes nothing, and every tile request of an
	// open slide asks, so those skip the lock.
	lastOpened atomic.Pointer[string]
	next       int
	batch      map[string]bool
	// released and began, when set, are called (locked) as each worklist
	// item is released (with its index and the opened position) and as a
	// worker begins an item: for tests.
	released func(index, opened int)
	began    func(id string)
}

func newWarmer(s *Server, act *pipeline.Activity, cfg BackgroundConfig) *warmer {
	w := &warmer{
		s: s, w: cfg.Warmer, act: act, workers: cfg.WarmWorkers, maxTiles: cfg.WarmMaxTiles,
		batchSize: cfg.PrecacheBatch, ahead: cfg.PrecacheAhead,
		records: map[string]*WarmItemStatus{}, wake: make(chan struct{}, 1),
		index: map[string]int{}, batch: map[string]bool{},
	}
	if w.workers <= 0 {
		w.workers = 1
	}
	switch {
	case cfg.WarmMaxInFlight == 0:
		w.maxInFlight = int64(runtime.GOMAXPROCS(0))
	case cfg.WarmMaxInFlight > 0:
		w.maxInFlight = int64(cfg.WarmMaxInFlight)
	}
	if w.batchSize <= 0 {
		w.batchSize = 5
	}
	if w.ahead <= 0 {
		w.ahead = 15
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	for range w.workers {
		w.wg.Add(1)
		go w.work(ctx)
	}
	return w
}

func (w *warmer) close() {
	w.cancel()
	w.wg.Wait()
}

func (w *warmer) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// enqueue queues ids; see Server.WarmItems.
func (w *warmer) enqueue(ids []string, source string, onlyChanged bool) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, id := range ids {
		if w.addLocked(id, source, onlyChanged, false) {
			n++
		}
	}
	if n > 0 {
		w.signal()
	}
	return n
}

// addLocked queues one item; worklist items go after the worklist items
// already queued and before everything else.
func (w *warmer) addLocked(id, source string, onlyChanged, prio bool) bool {
	it, ok := w.s.store.Item(id)
	if !ok {
		return false
	}
	if r := w.records[id]; r != nil {
		if r.State == warmQueued || r.State == warmRunning {
			return false
		}
		if onlyChanged && r.State == warmDone && r.version == it.Version {
			return false
		}
	}
	w.seq++
	w.records[id] = &WarmItemStatus{ID: id, Name: it.Name, Source: source, State: warmQueued,
		Queued: time.Now().UTC(), version: it.Version, seq: w.seq}
	if prio {
		w.queue = append(w.queue[:w.prio], append([]string{id}, w.queue[w.prio:]...)...)
		w.prio++
	} else {
		w.queue = append(w.queue, id)
	}
	w.pruneLocked()
	return true
}

// pruneLocked forgets the oldest finished records beyond maxWarmRecords.
func (w *warmer) pruneLocked() {
	if len(w.records) <= maxWarmRecords {
		return
	}
	var old []*WarmItemStatus
	for _, r := range w.records {
		if r.State != warmQueued && r.State != warmRunning && !w.batch[r.ID] {
			old = append(old, r)
		}
	}
	sort.Slice(old, func(i, j int) bool { return old[i].seq < old[j].seq })
	for _, r := range old[:max(0, min(len(old), len(w.records)-maxWarmRecords))] {
		delete(w.records, r.ID)
	}
}

func (w *warmer) work(ctx context.Context) {
	defer w.wg.Done()
	wait := func(ctx context.Context) error {
		_, err := w.act.WaitIdle(ctx, w.maxInFlight)
		return err
	}
	for {
		if err := wait(ctx); err != nil {
			return
		}
		w.mu.Lock()
		if len(w.queue) == 0 {
			w.mu.Unlock()
			select {
			case <-w.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		id := w.queue[0]
		w.queue = w.queue[1:]
		if w.prio > 0 {
			w.prio--
		}
		r := w.records[id]
		if r == nil { // pruned while queued cannot happen, but stay safe
			w.mu.Unlock()
			continue
		}
		now := time.Now().UTC()
		r.State, r.Started = warmRunning, &now
		if w.began != nil {
			w.began(id)
		}
		w.mu.Unlock()

		start := time.Now()
		pr, err := w.warmOne(ctx, id, wait, r)
		if ctx.Err() != nil {
			return
		}
		w.mu.Lock()
		fin := time.Now().UTC()
		r.Finished, r.Progress = &fin, pr
		if err != nil {
			r.State, r.Error = warmFailed, publicMessage(err)
		} else {
			r.State = warmDone
		}
		delete(w.batch, id)
		w.scheduleLocked()
		w.mu.Unlock()
		if err != nil {
			w.s.log.Warn("warm: item failed", "item", id, "name", r.Name, "err", err)
		} else {
			w.s.log.Info("warm: item done", "item", id, "name", r.Name, "source", r.Source,
				"levels", pr.Levels, "done", pr.Done, "produced", pr.Produced, "cached", pr.Cached,
				"failed", pr.Failed, "duration", time.Since(start).Round(time.Millisecond))
		}
	}
}

// warmOne warms one item. A panic while warming it (a reader bug on a damaged file) fails
// that item only: the caller logs it once and goes on with the next, so
// warm-up can never take start-up down.
func (w *warmer) warmOne(ctx context.Context, id string, wait func(context.Context) error, r *WarmItemStatus) (pr pipeline.WarmProgress, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &tilesource.Error{Status: http.StatusInternalServerError, Message: "Internal error",
				Cause: fmt.Errorf("warm-up panicked: %v", v)}
		}
	}()
	it, loc, err := w.s.itemLocator(id, http.StatusBadRequest)
	if err != nil {
		return pipeline.WarmProgress{}, err
	}
	w.mu.Lock()
	r.version = it.Version
	w.mu.Unlock()
	return w.w.Warm(ctx, loc, pipeline.WarmOptions{MaxTiles: w.maxTiles, Wait: wait}, func(p pipeline.WarmProgress) {
		w.mu.Lock()
		r.Progress = p
		w.mu.Unlock()
	})
}

// publicMessage is the client-safe text of an error.
func publicMessage(err error) string {
	if te, ok := err.(*tilesource.Error); ok {
		return te.Message
	}
	return "Internal error"
}

// setWorklist replaces the worklist: worklist items of the previous list
// still queued are dropped, and the first batch is released.
func (w *warmer) setWorklist(ids []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range w.queue[:w.prio] {
		if r := w.records[id]; r != nil && r.State == warmQueued {
			r.State = warmSkipped
		}
	}
	w.queue = append([]string(nil), w.queue[w.prio:]...)
	w.prio = 0
	w.list, w.index = nil, map[string]int{}
	for _, id := range ids {
		if _, dup := w.index[id]; dup {
			continue
		}
		w.index[id] = len(w.list)
		w.list = append(w.list, id)
	}
	w.openedTo, w.next, w.batch = 0, 0, map[string]bool{}
	w.lastOpened.Store(nil)
	w.scheduleLocked()
}

// opened records that a worklist item was opened, moving the window.
func (w *warmer) opened(id string) {
	if last := w.lastOpened.Load(); last != nil && *last == id {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if k, ok := w.index[id]; ok && k+1 > w.openedTo {
		w.openedTo = k + 1
		w.scheduleLocked()
	}
	w.lastOpened.Store(&id)
}

// scheduleLocked releases the next batch of the worklist once the current
// one is finished: up to batchSize items, never more than ahead items past
// the furthest opened one. Items before that one were passed by the
// pathologist and are not warmed.
func (w *warmer) scheduleLocked() {
	if len(w.batch) > 0 {
		return
	}
	if w.next < w.openedTo {
		w.next = w.openedTo
	}
	released := 0
	for w.next < len(w.list) && w.next < w.openedTo+w.ahead && released < w.batchSize {
		id := w.list[w.next]
		if w.released != nil {
			w.released(w.next, w.openedTo)
		}
		w.next++
		released++
		if w.addLocked(id, "precache", true, true) {
			w.batch[id] = true
		} else if r := w.records[id]; r != nil && (r.State == warmQueued || r.State == warmRunning) {
			w.batch[id] = true
		}
	}
	if released > 0 {
		w.signal()
	}
	if len(w.batch) == 0 && released > 0 {
		// Everything released was warm already: go on with the next batch.
		w.scheduleLocked()
	}
}

// status returns the counts, the records (queue order, newest last) and
// the worklist.
func (w *warmer) status(withItems bool) WarmStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := WarmStatus{Workers: w.workers, Items: []WarmItemStatus{}}
	for _, r := range w.records {
		switch r.State {
		case warmQueued:
			st.Queued++
		case warmRunning:
			st.Running++
		case warmDone:
			st.Done++
		case warmFailed:
			st.Failed++
		case warmSkipped:
			st.Skipped++
		}
		if withItems {
			st.Items = append(st.Items, *r)
		}
	}
	sort.Slice(st.Items, func(i, j int) bool { return st.Items[i].seq < st.Items[j].seq })
	st.Precache = PrecacheStatus{Items: append([]string{}, w.list...), Opened: w.openedTo, Next: w.next,
		Batch: []string{}, BatchSize: w.batchSize, Ahead: w.ahead}
	for _, id := range w.list {
		if w.batch[id] {
			st.Precache.Batch = append(st.Precache.Batch, id)
		}
	}
	return st
}

// itemIDs reads the item list of the warm and precache routes: ?items=
// (comma-separated or a JSON array) or a JSON body {"items": [...]}.
func itemIDs(c echo.Context) ([]string, error) {
	var ids []string
	if q := strings.TrimSpace(c.QueryParam("items")); q != "" {
		if strings.HasPrefix(q, "[") {
			if err := json.Unmarshal([]byte(q), &ids); err != nil {
				return nil, typeError("items")
			}
		} else {
			for _, id := range strings.Split(q, ",") {
				if id = strings.TrimSpace(id); id != "" {
					ids = append(ids, id)
				}
			}
		}
	} else if c.Request().ContentLength != 0 {
		var body struct {
			Items []string `json:"items"`
		}
		if err := json.NewDecoder(c.Request().Body).Decode(&body); err != nil {
			return nil, tilesource.BadRequest("Invalid JSON body.")
		}
		ids = body.Items
	}
	return ids, nil
}

// checkItems validates ids: each must name an item with a large image.
func (s *Server) checkItems(ids []string) error {
	for _, id := range ids {
		if err := checkObjectID(id); err != nil {
			return err
		}
		it, ok := s.store.Item(id)
		if !ok {
			return &tilesource.Error{Status: http.StatusBadRequest, Message: "No such item: " + id, Type: "validation", Field: "items"}
		}
		if it.SourceName == "" {
			return &tilesource.Error{Status: http.StatusBadRequest, Message: msgNoLargeImage, Field: "items"}
		}
	}
	return nil
}

func (s *Server) warmStatus(c echo.Context) error {
	return c.JSON(http.StatusOK, s.bg.warm.status(true))
}

func (s *Server) warmItems(c echo.Context) error {
	ids, err := itemIDs(c)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return &tilesource.Error{Status: http.StatusBadRequest, Message: "No items given.", Type: "validation", Field: "items"}
	}
	if err := s.checkItems(ids); err != nil {
		return err
	}
	n := s.bg.warm.enqueue(ids, "request", false)
	return c.JSON(http.StatusOK, map[string]any{"added": n, "status": s.bg.warm.status(true)})
}

func (s *Server) precache(c echo.Context) error {
	ids, err := itemIDs(c)
	if err != nil {
		return err
	}
	if err := s.checkItems(ids); err != nil {
		return err
	}
	s.bg.warm.setWorklist(ids)
	return c.JSON(http.StatusOK, s.bg.warm.status(true))
}

// backgroundInfo adds the prefetch counters and the warm counts to the
// cache info document.
func (s *Server) backgroundInfo(info map[string]any) {
	if s.bg == nil {
		return
	}
	if s.bg.prefetch != nil {
		info["prefetch"] = s.bg.prefetch.Stats()
	}
	if s.bg.warm != nil {
		st := s.bg.warm.status(false)
		info["warm"] = map[string]int{"queued": st.Queued, "running": st.Running, "done": st.Done,
			"failed": st.Failed, "skipped": st.Skipped}
	}
}

// Collector exposes the prefetch counters and warm-up counts as Prometheus
// metrics read at scrape time.
func (s *Server) Collector() prometheus.Collector { return bgCollector{s} }

var (
	descPrefetch = prometheus.NewDesc("tileserver_prefetch_tiles_total",
		"Prefetch tiles by outcome: queued, dropped (queue full or viewer moved on), produced, skipped (already cached), failed.",
		[]string{"outcome"}, nil)
	descPrefetchPending = prometheus.NewDesc("tileserver_prefetch_pending", "Prefetch tiles waiting in the queue.", nil, nil)
	descWarmItems       = prometheus.NewDesc("tileserver_warm_items",
		"Items known to the warm-up by state (queued, running, done, failed, skipped).", []string{"state"}, nil)
	descInFlight = prometheus.NewDesc("tileserver_image_requests_in_flight", "Image requests being served.", nil, nil)
)

type bgCollector struct{ s *Server }

func (b bgCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPrefetch
	ch <- descPrefetchPending
	ch <- descWarmItems
	ch <- descInFlight
}

func (b bgCollector) Collect(ch chan<- prometheus.Metric) {
	bg := b.s.bg
	if bg == nil || !bg.on {
		return
	}
	ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(bg.act.InFlight()))
	if bg.prefetch != nil {
		st := bg.prefetch.Stats()
		for _, o := range []struct {
			name string
			v    uint64
		}{{"queued", st.Queued}, {"dropped", st.Dropped}, {"produced", st.Produced}, {"skipped", st.Skipped}, {"failed", st.Failed}} {
			ch <- prometheus.MustNewConstMetric(descPrefetch, prometheus.CounterValue, float64(o.v), o.name)
		}
		ch <- prometheus.MustNewConstMetric(descPrefetchPending, prometheus.GaugeValue, float64(st.Pending))
	}
	if bg.warm != nil {
		st := bg.warm.status(false)
		for _, o := range []struct {
			name string
			v    int
		}{{warmQueued, st.Queued}, {warmRunning, st.Running}, {warmDone, st.Done}, {warmFailed, st.Failed}, {warmSkipped, st.Skipped}} {
			ch <- prometheus.MustNewConstMetric(descWarmItems, prometheus.GaugeValue, float64(o.v), o.name)
		}
	}
}
