// Package suite runs the standard benchmark: it makes a large slide, runs
// the tile server in each cache configuration, replays viewer traces cold
// and warm, compares eviction policies, optionally replays against peer
// servers, and writes a Markdown report with tables and plots.
package suite

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/tileserver/tileserver/bench/replay"
	"github.com/tileserver/tileserver/bench/stats"
	"github.com/tileserver/tileserver/bench/trace"
)

// Config is the suite's configuration; Register binds it to flags.
type Config struct {
	Server    string // tileserver binary
	Out       string // report directory
	Slide     string // existing pyramidal slide; generated when empty
	Twin      string // existing every-other-level twin; generated when empty
	Size      int    // generated slide width and height
	Memcached string // memcached binary
	// Args are the server arguments per configuration, with placeholders
	// {addr} {data} {slides} {token} {memcached} {budget} {policy}.
	Args     map[string]string
	Modes    []string // cache configurations to measure
	Policies []string // eviction policies to compare
	Budget   int64    // small in-process budget for the policy comparison
	Users    int
	Views    int
	Seed     int64
	Duration time.Duration // length of each warm run
	Think    bool          // time-to-viewport run waits the trace's think times
	Prefetch bool          // measure time to viewport with prefetch off and on
	Peers    []string      // name=URLTEMPLATE, replayed with the warm trace
	Log      io.Writer
}

// DefaultArgs are the tileserver flags of each configuration.
var DefaultArgs = map[string]string{
	// Background work is off except where a section measures it, so cold
	// runs stay cold.
	"common":           "--addr {addr} --data {data} --slides {slides} --admin-token {token} --log-level warn --warm-on-import=false --prefetch=false",
	"none":             "--cache none",
	"memory":           "--cache memory",
	"memcached":        "--cache memcached --memcached {memcached}",
	"memory+memcached": "--cache memory+memcached --memcached {memcached}",
	"policy":           "--cache memory --cache-memory-bytes {budget} --cache-policy {policy}",
	"prefetch-off":     "--cache memory --prefetch=false",
	"prefetch-on":      "--cache memory --prefetch=true --prefetch-workers 1",
}

// DefaultConfig is the standard suite.
func DefaultConfig() Config {
	args := map[string]string{}
	for k, v := range DefaultArgs {
		args[k] = v
	}
	return Config{Server: "bin/tileserver", Out: "out/bench", Size: 30000, Memcached: "memcached", Args: args,
		Modes: []string{"none", "memory", "memcached", "memory+memcached"}, Policies: []string{"lru", "tinylfu"},
		Budget: 32 << 20, Users: 8, Views: 40, Seed: 1, Duration: 10 * time.Second, Think: true, Prefetch: true, Log: io.Discard}
}

// Register binds c to flags of fs.
func (c *Config) Register(fs *flag.FlagSet) {
	fs.StringVar(&c.Server, "server", c.Server, "tileserver `binary`")
	fs.StringVar(&c.Out, "out", c.Out, "report `dir` (report.md, results.json, plots, logs)")
	fs.StringVar(&c.Slide, "slide", c.Slide, "use this pyramidal TIFF `file` instead of generating one")
	fs.StringVar(&c.Twin, "twin", c.Twin, "use this every-other-level `file` instead of generating one with tiffcp")
	fs.IntVar(&c.Size, "size", c.Size, "width and height of the generated slide in `pixels`")
	fs.StringVar(&c.Memcached, "memcached", c.Memcached, "memcached `binary`")
	fs.Func("server-args", "override the server flags of a configuration, `name=ARGS` (names: common, "+
		"none, memory, memcached, memory+memcached, policy, prefetch-off, prefetch-on; placeholders {addr} {data} {slides} {token} "+
		"{memcached} {budget} {policy})", func(s string) error {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return errors.New("want name=ARGS")
		}
		c.Args[k] = v
		return nil
	})
	fs.Func("modes", "comma-separated cache `configurations` (default none,memory,memcached,memory+memcached)", func(s string) error {
		c.Modes = strings.Split(s, ",")
		return nil
	})
	fs.Func("policies", "comma-separated eviction `policies` to compare (default lru,tinylfu)", func(s string) error {
		c.Policies = strings.Split(s, ",")
		return nil
	})
	fs.Int64Var(&c.Budget, "budget", c.Budget, "in-process cache `bytes` for the policy comparison")
	fs.IntVar(&c.Users, "users", c.Users, "simultaneous viewers")
	fs.IntVar(&c.Views, "views", c.Views, "views per viewer")
	fs.Int64Var(&c.Seed, "seed", c.Seed, "trace seed")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "length of each warm run")
	fs.BoolVar(&c.Think, "think", c.Think, "time-to-viewport run waits the trace's think times (real time)")
	fs.BoolVar(&c.Prefetch, "prefetch", c.Prefetch, "measure time to viewport with predictive prefetch off and on (same trace)")
	fs.Func("peer", "also replay against a running peer, `name=URLTEMPLATE` (repeatable; see /work/shared/peers)", func(s string) error {
		c.Peers = append(c.Peers, s)
		return nil
	})
}

// result is one measured run in the report.
type result struct {
	Section string
	Record  stats.Record
}

type suiteRun struct {
	cfg     Config
	slides  string // the slides folder the server serves
	results []result
	planned int       // measured runs the suite will make, for progress
	started time.Time // when the first measured run began
}

// plannedRuns counts the measured runs of the configured sections.
func (s *suiteRun) plannedRuns() int {
	// Cache modes cold and warm, one run per policy, the viewport run and
	// the twin's two cold runs.
	n := 2*len(s.cfg.Modes) + len(s.cfg.Policies) + 1 + 2
	if s.cfg.Prefetch {
		n += 2
	}
	if len(s.cfg.Peers) > 0 {
		n += 1 + len(s.cfg.Peers)
	}
	return n
}

// estimate is a rough length of the whole suite: the fixed-length warm
// runs, the think-time runs (users think between views in real time) and
// about half a minute per cold replay and per slide made.
func (s *suiteRun) estimate() time.Duration {
	c := s.cfg
	warm := time.Duration(len(c.Modes)+2*len(c.Policies)+len(c.Peers)+1) * c.Duration
	thinkRuns := 1
	if c.Prefetch {
		thinkRuns += 2
	}
	think := time.Duration(0)
	if c.Think {
		// Each user's views follow each other: half the views, each after
		// a mean think time.
		think = time.Duration(thinkRuns*(c.Views/2)) * time.Duration(trace.DefaultOptions().ThinkMS) * time.Millisecond
	}
	cold := time.Duration(len(c.Modes)+4+len(c.Peers)) * 30 * time.Second
	slides := time.Duration(0)
	if c.Slide == "" {
		slides = 3 * time.Minute
	}
	return warm + think + cold + slides
}

const token = "tilebench"

// Run executes the suite and returns the path of the report.
func Run(ctx context.Context, cfg Config) (string, error) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	// Tools run in other working directories (vips in a scratch folder,
	// the server under its own), so every path must be absolute.
	for _, p := range []*string{&cfg.Server, &cfg.Out, &cfg.Slide, &cfg.Twin} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return "", err
		}
		*p = abs
	}
	if _, err := os.Stat(cfg.Server); err != nil {
		return "", fmt.Errorf("tileserver binary: %w", err)
	}
	for _, d := range []string{cfg.Out, filepath.Join(cfg.Out, "logs"), filepath.Join(cfg.Out, "slides")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	s := &suiteRun{cfg: cfg, slides: filepath.Join(cfg.Out, "slides")}
	s.planned = s.plannedRuns()
	s.logf("suite: %d measured runs, about %s in all (warm runs %s each, think-time runs at the users' pace)",
		s.planned, s.estimate().Round(time.Minute), cfg.Duration)
	if err := s.prepareSlides(ctx); err != nil {
		return "", err
	}
	sections := []func(context.Context) error{s.cacheModes, s.policies, s.viewport, s.prefetch, s.twin, s.peers}
	for _, f := range sections {
		if err := f(ctx); err != nil {
			return "", err
		}
	}
	return s.writeReport()
}

func (s *suiteRun) logf(format string, args ...any) {
	fmt.Fprintf(s.cfg.Log, format+"\n", args...)
}

func (s *suiteRun) prepareSlides(ctx context.Context) error {
	slide := filepath.Join(s.slides, "slide.tif")
	twin := filepath.Join(s.slides, "slide-4x.tif")
	if err := provide(s.cfg.Slide, slide); err != nil {
		return err
	}
	if _, err := os.Stat(slide); err != nil {
		s.logf("making a %d px slide with vips", s.cfg.Size)
		if err := MakeSlide(ctx, slide, s.cfg.Size, s.cfg.Log); err != nil {
			return err
		}
	}
	if err := provide(s.cfg.Twin, twin); err != nil {
		return err
	}
	if _, err := os.Stat(twin); err != nil {
		if _, err := exec.LookPath("tiffcp"); err != nil {
			s.logf("tiffcp not found (Debian libtiff-tools): skipping the every-other-level twin")
			return nil
		}
		s.logf("making the every-other-level twin with tiffcp")
		if err := MakeTwin(ctx, slide, twin, s.cfg.Log); err != nil {
			return err
		}
	}
	return nil
}

// provide links an existing file into the slides folder.
func provide(src, dst string) error {
	if src == "" {
		return nil
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return err
	}
	os.Remove(dst)
	// The server refuses links that leave its slide root: a hard link
	// costs nothing on the same file system, a copy elsewhere.
	if err := os.Link(abs, dst); err == nil {
		return nil
	}
	return copyFile(abs, dst)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// server is one started tileserver.
type server struct {
	p    *Process
	mc   *Process
	base string
}

func (sv *server) stop() {
	sv.p.Stop()
	if sv.mc != nil {
		sv.mc.Stop()
	}
}

// start runs the server in configuration name with a fresh data folder
// (and a fresh memcached when the arguments need one).
func (s *suiteRun) start(ctx context.Context, label, name string, vars map[string]string) (*server, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	data, err := os.MkdirTemp("", "tilebench-data-")
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	v := map[string]string{"{addr}": addr, "{data}": data, "{slides}": s.slides, "{token}": token}
	for k, x := range vars {
		v[k] = x
	}
	sv := &server{base: "http://" + addr}
	argText := s.cfg.Args["common"] + " " + s.cfg.Args[name]
	if strings.Contains(argText, "{memcached}") {
		mc, mcAddr, err := StartMemcached(ctx, s.cfg.Memcached, filepath.Join(s.cfg.Out, "logs", label+".memcached.log"), 1024)
		if err != nil {
			return nil, fmt.Errorf("memcached: %w", err)
		}
		sv.mc, v["{memcached}"] = mc, mcAddr
	}
	var args []string
	for _, a := range strings.Fields(argText) {
		for k, x := range v {
			a = strings.ReplaceAll(a, k, x)
		}
		args = append(args, a)
	}
	s.logf("%s: %s %s", label, s.cfg.Server, strings.Join(args, " "))
	sv.p, err = Start(s.cfg.Server, args, filepath.Join(s.cfg.Out, "logs", label+".log"))
	if err == nil {
		err = WaitHTTP(ctx, sv.p, sv.base+"/healthz", 60*time.Second)
	}
	if err != nil {
		if sv.p != nil {
			sv.p.Stop()
		}
		if sv.mc != nil {
			sv.mc.Stop()
		}
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	go func() { <-sv.p.done; os.RemoveAll(data) }()
	return sv, nil
}

// slide finds the item of a file name on the server and reads its
// metadata. A fresh server imports its slide root in the background after
// it answers /healthz, so the item is waited for, up to a minute.
func (sv *server) slide(ctx context.Context, file string) (trace.Slide, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		sl, found, err := sv.findSlide(ctx, file)
		if err != nil || found {
			return sl, err
		}
		if time.Now().After(deadline) {
			return trace.Slide{}, fmt.Errorf("no item named %s on the server after a minute", file)
		}
		select {
		case <-ctx.Done():
			return trace.Slide{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// findSlide looks the item of a file name up once.
func (sv *server) findSlide(ctx context.Context, file string) (trace.Slide, bool, error) {
	u := sv.base + "/api/v1/item?limit=50&text=" + url.QueryEscape(strings.TrimSuffix(file, filepath.Ext(file)))
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return trace.Slide{}, false, err
	}
	defer resp.Body.Close()
	var items []struct {
		ID   string `json:"_id"`
		Name string `json:"name"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&items); err != nil {
		return trace.Slide{}, false, fmt.Errorf("item search: %w", err)
	}
	for _, it := range items {
		if it.Name == file {
			sl, err := replay.FetchSlide(ctx, nil, sv.base+"/api/v1/item/"+it.ID+"/tiles", it.ID)
			return sl, true, err
		}
	}
	return trace.Slide{}, false, nil
}

func (sv *server) statsURL() string { return sv.base + replay.StatsPath + "?token=" + token }

// measure replays tr against sv and records it under section.
func (s *suiteRun) measure(ctx context.Context, section, name string, sv *server, tr *trace.Trace, o replay.Options) error {
	tp, err := replay.ParseTemplate(sv.base, "ours")
	if err != nil {
		return err
	}
	o.Template = tp
	return s.measureTemplate(ctx, section, name, sv.statsURL(), tr, o)
}

func (s *suiteRun) measureTemplate(ctx context.Context, section, name, statsURL string, tr *trace.Trace, o replay.Options) error {
	if o.Progress == nil {
		if f, ok := s.cfg.Log.(*os.File); ok && replay.IsTerminal(f) {
			o.Progress = f
		}
	}
	if s.started.IsZero() {
		s.started = time.Now()
	}
	s.logf("[%d/%d, %s elapsed] %s: %s", len(s.results)+1, s.planned, time.Since(s.started).Round(time.Second), section, name)
	var before map[string]float64
	if statsURL != "" {
		before, _ = replay.FetchStats(ctx, nil, statsURL)
	}
	run, err := replay.Replay(ctx, tr, o)
	if err != nil {
		return err
	}
	sum := stats.Summarize(name, run)
	if before != nil {
		sum.ServerBefore = before
		sum.ServerAfter, _ = replay.FetchStats(ctx, nil, statsURL)
	}
	s.logf("  %-28s %6d req %8.0f req/s p50 %.2f ms p99 %.2f ms hit %.0f%% errors %d",
		name, sum.Requests, sum.Throughput, sum.Latency.P50, sum.Latency.P99, 100*max(sum.HitRate, 0), sum.Errors)
	s.results = append(s.results, result{Section: section, Record: stats.Record{Summary: sum, Run: run}})
	return ctx.Err()
}

func (s *suiteRun) gen(sl trace.Slide, users, views int, seed int64) (*trace.Trace, error) {
	return trace.Generate([]trace.Slide{sl}, trace.Options{Seed: seed, Users: users, Views: views})
}

// cacheModes: each configuration, cold (first replay on a fresh server)
// and warm (the same trace again, looped for the duration).
func (s *suiteRun) cacheModes(ctx context.Context) error {
	for _, mode := range s.cfg.Modes {
		sv, err := s.start(ctx, "mode-"+mode, mode, nil)
		if err != nil {
			return err
		}
		err = func() error {
			sl, err := sv.slide(ctx, "slide.tif")
			if err != nil {
				return err
			}
			tr, err := s.gen(sl, s.cfg.Users, s.cfg.Views, s.cfg.Seed)
			if err != nil {
				return err
			}
			if err := s.measure(ctx, "modes", mode+" cold", sv, tr, replay.Options{}); err != nil {
				return err
			}
			return s.measure(ctx, "modes", mode+" warm", sv, tr, replay.Options{Duration: s.cfg.Duration})
		}()
		sv.stop()
		if err != nil {
			return err
		}
	}
	return nil
}

// policies: a small in-process budget, many users on fresh traces, so the
// cache must choose what to keep.
func (s *suiteRun) policies(ctx context.Context) error {
	for _, pol := range s.cfg.Policies {
		sv, err := s.start(ctx, "policy-"+pol, "policy", map[string]string{"{budget}": fmt.Sprint(s.cfg.Budget), "{policy}": pol})
		if err != nil {
			return err
		}
		err = func() error {
			sl, err := sv.slide(ctx, "slide.tif")
			if err != nil {
				return err
			}
			tr, err := s.gen(sl, 2*s.cfg.Users, 2*s.cfg.Views, s.cfg.Seed+100)
			if err != nil {
				return err
			}
			return s.measure(ctx, "policies", pol, sv, tr, replay.Options{Duration: 2 * s.cfg.Duration})
		}()
		sv.stop()
		if err != nil {
			return err
		}
	}
	return nil
}

// viewport: several users at the pace of real people (think times from the
// trace), in-process cache; what a pathologist feels.
func (s *suiteRun) viewport(ctx context.Context) error {
	sv, err := s.start(ctx, "viewport", "memory", nil)
	if err != nil {
		return err
	}
	defer sv.stop()
	sl, err := sv.slide(ctx, "slide.tif")
	if err != nil {
		return err
	}
	// People look at a view before they act: the trace's think times are
	// the generator's default (1.5 s mean), waited in real time.
	tr, err := trace.Generate([]trace.Slide{sl}, trace.Options{Seed: s.cfg.Seed + 200, Users: s.cfg.Users,
		Views: s.cfg.Views / 2, ThinkMS: trace.DefaultOptions().ThinkMS})
	if err != nil {
		return err
	}
	return s.measure(ctx, "viewport", fmt.Sprintf("%d users, memory", s.cfg.Users), sv, tr, replay.Options{ThinkFromTrace: s.cfg.Think})
}

// prefetch: the time-to-viewport trace (think times from the trace) on a
// fresh server with predictive prefetch off, then on; prefetch works in
// the users' think time.
func (s *suiteRun) prefetch(ctx context.Context) error {
	if !s.cfg.Prefetch {
		return nil
	}
	for _, name := range []string{"prefetch-off", "prefetch-on"} {
		sv, err := s.start(ctx, name, name, nil)
		if err != nil {
			return err
		}
		err = func() error {
			sl, err := sv.slide(ctx, "slide.tif")
			if err != nil {
				return err
			}
			// Think times are what prefetch works in: use the trace
			// generator's default (1.5 s mean) rather than none.
			tr, err := trace.Generate([]trace.Slide{sl}, trace.Options{Seed: s.cfg.Seed + 500, Users: s.cfg.Users,
				Views: s.cfg.Views / 2, ThinkMS: trace.DefaultOptions().ThinkMS})
			if err != nil {
				return err
			}
			label := fmt.Sprintf("%d users, %s", s.cfg.Users, strings.ReplaceAll(name, "-", " "))
			return s.measure(ctx, "prefetch", label, sv, tr, replay.Options{ThinkFromTrace: s.cfg.Think})
		}()
		sv.stop()
		if err != nil {
			return err
		}
	}
	return nil
}

// twin: the same trace cold on the full pyramid and on the every-other-
// level twin, whose missing levels are synthesised.
func (s *suiteRun) twin(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(s.slides, "slide-4x.tif")); err != nil {
		return nil
	}
	sv, err := s.start(ctx, "twin", "memory", nil)
	if err != nil {
		return err
	}
	defer sv.stop()
	for _, f := range []string{"slide.tif", "slide-4x.tif"} {
		sl, err := sv.slide(ctx, f)
		if err != nil {
			return err
		}
		tr, err := s.gen(sl, s.cfg.Users, s.cfg.Views, s.cfg.Seed+300)
		if err != nil {
			return err
		}
		if err := s.measure(ctx, "twin", f+" cold", sv, tr, replay.Options{}); err != nil {
			return err
		}
	}
	return nil
}

// peers: our in-process configuration, then each peer, warm, the same
// trace.
func (s *suiteRun) peers(ctx context.Context) error {
	if len(s.cfg.Peers) == 0 {
		return nil
	}
	sv, err := s.start(ctx, "peers-ours", "memory", nil)
	if err != nil {
		return err
	}
	defer sv.stop()
	sl, err := sv.slide(ctx, "slide.tif")
	if err != nil {
		return err
	}
	tr, err := s.gen(sl, s.cfg.Users, s.cfg.Views, s.cfg.Seed+400)
	if err != nil {
		return err
	}
	// Prime every server once, then measure warm.
	if _, err := replay.Replay(ctx, tr, replay.Options{Template: mustOurs(sv.base)}); err != nil {
		return err
	}
	if err := s.measure(ctx, "peers", "ours (memory)", sv, tr, replay.Options{Duration: s.cfg.Duration}); err != nil {
		return err
	}
	for _, p := range s.cfg.Peers {
		name, tmpl, ok := strings.Cut(p, "=")
		if !ok {
			return fmt.Errorf("--peer %q: want name=URLTEMPLATE", p)
		}
		tp, err := replay.ParseTemplate("", tmpl)
		if err != nil {
			return err
		}
		if _, err := replay.Replay(ctx, tr, replay.Options{Template: tp}); err != nil {
			return err
		}
		if err := s.measureTemplate(ctx, "peers", name, "", tr, replay.Options{Template: tp, Duration: s.cfg.Duration}); err != nil {
			return err
		}
	}
	return nil
}

func mustOurs(base string) replay.Template {
	tp, _ := replay.ParseTemplate(base, "ours")
	return tp
}

func (s *suiteRun) section(name string) []stats.Record {
	var out []stats.Record
	for _, r := range s.results {
		if r.Section == name {
			out = append(out, r.Record)
		}
	}
	return out
}
