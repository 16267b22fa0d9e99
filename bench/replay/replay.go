// Package replay plays a viewer trace against a tile server over HTTP and
// records every request.
package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tileserver/tileserver/bench/trace"
)

// Options control a replay.
type Options struct {
	Template Template
	// Users is the number of simultaneous viewers; 0 means one per user
	// in the trace. With more users than the trace has, user u replays
	// the trace's user u mod n.
	Users int
	// Parallel is how many requests one viewer has in flight (browsers
	// open 6 connections per host).
	Parallel int
	// ThinkFromTrace waits the trace's think time before each view;
	// otherwise Think is waited.
	ThinkFromTrace bool
	Think          time.Duration
	// Rate caps the total request rate (requests per second); 0 means
	// no cap.
	Rate float64
	// Duration stops the run after this long; sessions start over until
	// then. 0 plays each session once.
	Duration time.Duration
	// MaxRequests stops the run after this many requests; 0 means no
	// limit.
	MaxRequests int
	// Timeout bounds one request; 0 means 30 s.
	Timeout time.Duration
	// Client is used for the requests; nil makes one sized for the run.
	Client *http.Client
	// Progress, when set, receives a progress bar for long runs.
	Progress io.Writer
}

// Result is one tile request.
type Result struct {
	User  int `json:"user"`
	Round int `json:"round"` // how many times the session started over
	Seq   int `json:"seq"`   // the view in the session
	Z     int `json:"z"`
	X     int `json:"x"`
	Y     int `json:"y"`
	// Sharp is true for tiles of the view's sharp level.
	Sharp bool `json:"sharp"`
	// StartNS is when the request was sent, from the start of the run.
	StartNS   int64  `json:"startNs"`
	LatencyNS int64  `json:"latencyNs"`
	Status    int    `json:"status"`
	Bytes     int64  `json:"bytes"`
	Cache     string `json:"cache,omitempty"`
	Err       string `json:"err,omitempty"`
}

// ViewTiming is when one view started and when it was complete.
type ViewTiming struct {
	User     int    `json:"user"`
	Round    int    `json:"round"`
	Seq      int    `json:"seq"`
	Action   string `json:"action"`
	Level    int    `json:"level"`
	Requests int    `json:"requests"`
	Errors   int    `json:"errors"`
	// StartNS is when the user acted (after thinking); DoneNS when the
	// last tile of the sharp level arrived (the last tile of any level if
	// the view asked for no sharp tile). Both from the start of the run.
	StartNS int64 `json:"startNs"`
	DoneNS  int64 `json:"doneNs"`
}

// Run is the record of one replay.
type Run struct {
	Target    string       `json:"target"`
	Started   time.Time    `json:"started"`
	ElapsedNS int64        `json:"elapsedNs"`
	Results   []Result     `json:"results"`
	Views     []ViewTiming `json:"views"`
}

// Replay plays tr against the server. It returns the run even when it is
// cut short by ctx.
func Replay(ctx context.Context, tr *trace.Trace, o Options) (*Run, error) {
	if tr == nil || len(tr.Views) == 0 {
		return nil, errors.New("replay: empty trace")
	}
	sessions := tr.ByUser()
	users := o.Users
	if users <= 0 {
		users = len(sessions)
	}
	if o.Parallel <= 0 {
		o.Parallel = 6
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	// Resolve every URL up front so a bad template fails before any load.
	urls := map[int][][]string{}
	for u, views := range sessions {
		for _, v := range views {
			s, _ := tr.Slide(v.Item)
			var us []string
			for _, tl := range v.Tiles {
				url, err := o.Template.URL(s, tl)
				if err != nil {
					return nil, err
				}
				us = append(us, url)
			}
			urls[u] = append(urls[u], us)
		}
	}
	client := o.Client
	if client == nil {
		client = newClient(users * o.Parallel)
	}
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	r := &runner{o: o, client: client, start: time.Now()}
	run := &Run{Target: o.Template.String(), Started: r.start}
	stopProgress := startProgress(o.Progress, r, o, tr.Requests()*users/max(len(sessions), 1))

	var wg sync.WaitGroup
	perUser := make([]userLog, users)
	for u := 0; u < users; u++ {
		wg.Add(1)
		go func(u int) {
			defer wg.Done()
			src := u % len(sessions)
			perUser[u] = r.user(ctx, u, sessions[src], urls[src])
		}(u)
	}
	wg.Wait()
	stopProgress()
	run.ElapsedNS = int64(time.Since(r.start))
	for _, l := range perUser {
		run.Results = append(run.Results, l.results...)
		run.Views = append(run.Views, l.views...)
	}
	return run, nil
}

func newClient(conns int) *http.Client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns + 16,
		MaxIdleConnsPerHost: conns + 16,
		IdleConnTimeout:     90 * time.Second,
		// Tiles are already compressed; gzip would only cost time.
		DisableCompression: true,
	}
	return &http.Client{Transport: tr}
}

type runner struct {
	o      Options
	client *http.Client
	start  time.Time
	issued atomic.Int64 // requests started (the request budget and the rate)
	done   atomic.Int64 // requests finished (the progress bar)
}

type userLog struct {
	results []Result
	views   []ViewTiming
}

// user plays one session, over and over while a duration is set.
func (r *runner) user(ctx context.Context, u int, views []trace.View, urls [][]string) userLog {
	var log userLog
	for round := 0; ; round++ {
		for i, v := range views {
			think := r.o.Think
			if r.o.ThinkFromTrace {
				think = time.Duration(v.ThinkMS) * time.Millisecond
			}
			if round == 0 && i == 0 {
				think = 0 // everyone opens the slide at once
			}
			if !sleep(ctx, think) {
				return log
			}
			vt, res, ok := r.view(ctx, u, round, v, urls[i])
			log.results = append(log.results, res...)
			if len(res) > 0 || ok {
				log.views = append(log.views, vt)
			}
			if !ok {
				return log
			}
		}
		if r.o.Duration <= 0 {
			return log
		}
	}
}

// view requests one view's tiles with the viewer's parallelism, in order.
// ok is false when the run must stop (deadline or request budget).
func (r *runner) view(ctx context.Context, u, round int, v trace.View, urls []string) (ViewTiming, []Result, bool) {
	vt := ViewTiming{User: u, Round: round, Seq: v.Seq, Action: v.Action, Level: v.Level, StartNS: r.since()}
	results := make([]Result, len(urls))
	sent := make([]bool, len(urls))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(r.o.Parallel, len(urls)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				tl := v.Tiles[i]
				results[i] = r.get(ctx, urls[i])
				results[i].User, results[i].Round, results[i].Seq = u, round, v.Seq
				results[i].Z, results[i].X, results[i].Y = tl.Z, tl.X, tl.Y
				results[i].Sharp = tl.Z == v.Level
			}
		}()
	}
	ok := true
	for i := range urls {
		if ctx.Err() != nil || !r.admit(ctx) {
			ok = false
			break
		}
		sent[i] = true
		next <- i
	}
	close(next)
	wg.Wait()
	var out []Result
	doneAll, doneSharp := vt.StartNS, int64(-1)
	for i, res := range results {
		if !sent[i] {
			continue
		}
		out = append(out, res)
		vt.Requests++
		if res.Err != "" {
			vt.Errors++
		}
		end := res.StartNS + res.LatencyNS
		doneAll = max(doneAll, end)
		if res.Sharp {
			doneSharp = max(doneSharp, end)
		}
	}
	vt.DoneNS = doneAll
	if doneSharp >= 0 {
		vt.DoneNS = doneSharp
	}
	if !ok {
		// A view cut short is not a complete view.
		vt.Errors += len(urls) - vt.Requests
	}
	return vt, out, ok
}

// admit takes a request from the budget and waits for the rate.
func (r *runner) admit(ctx context.Context) bool {
	k := r.issued.Add(1)
	if r.o.MaxRequests > 0 && k > int64(r.o.MaxRequests) {
		return false
	}
	if r.o.Rate > 0 {
		at := time.Duration(float64(k-1) / r.o.Rate * float64(time.Second))
		return sleep(ctx, at-time.Since(r.start))
	}
	return true
}

func (r *runner) get(ctx context.Context, url string) Result {
	defer r.done.Add(1)
	res := Result{StartNS: r.since()}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.o.Timeout)
	defer cancel()
	t0 := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	resp, err := r.client.Do(req)
	if err != nil {
		res.LatencyNS = int64(time.Since(t0))
		res.Err = err.Error()
		return res
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	res.LatencyNS = int64(time.Since(t0))
	res.Status, res.Bytes = resp.StatusCode, n
	res.Cache = resp.Header.Get("X-Tile-Cache")
	switch {
	case err != nil:
		res.Err = err.Error()
	case resp.StatusCode != http.StatusOK:
		res.Err = fmt.Sprintf("HTTP %d", resp.StatusCode)
	}
	return res
}

func (r *runner) since() int64 { return int64(time.Since(r.start)) }

// sleep waits d or until ctx is done; it reports whether the run goes on.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
