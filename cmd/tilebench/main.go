// Command tilebench generates viewer traces, replays them against tile
// servers, compares servers and runs the standard benchmark suite.
//
//	tilebench trace   --base URL --item ID --users 4 --out trace.jsonl
//	tilebench replay  --base URL --item ID --duration 30s --json run.json
//	tilebench compare --trace t.jsonl --target ours=URL --target iip=URL
//	tilebench suite   --server bin/tileserver --out out/bench
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/tileserver/tileserver/bench/plots"
	"github.com/tileserver/tileserver/bench/replay"
	"github.com/tileserver/tileserver/bench/stats"
	"github.com/tileserver/tileserver/bench/suite"
	"github.com/tileserver/tileserver/bench/trace"
)

const usage = `tilebench: benchmark harness for large-image tile servers

Usage:
  tilebench trace   [flags]   generate a viewer trace (JSON lines)
  tilebench replay  [flags]   replay a trace against one server
  tilebench compare [flags]   replay one trace against several servers, with ratios
  tilebench suite   [flags]   the standard suite: makes a slide, runs the server in
                              each cache configuration, writes a Markdown report

Run "tilebench COMMAND --help" for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "tilebench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return errors.New("no command")
		}
		return nil
	}
	switch args[0] {
	case "trace":
		return cmdTrace(ctx, args[1:], stdout, stderr)
	case "replay":
		return cmdReplay(ctx, args[1:], stdout, stderr)
	case "compare":
		return cmdCompare(ctx, args[1:], stdout, stderr)
	case "suite":
		return cmdSuite(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("unknown command %q (want trace, replay, compare or suite)", args[0])
}

// traceFlags are the flags that produce a trace: load one, or generate one
// from slide geometry.
type traceFlags struct {
	trace    string
	slides   multi
	base     string
	item     string
	meta     string
	users    int
	views    int
	seed     int64
	viewport string
	thinkMS  int
	coarse   int
	noCache  bool
}

func (f *traceFlags) register(fs *flag.FlagSet, withFile bool) {
	if withFile {
		fs.StringVar(&f.trace, "trace", "", "trace `file` (JSON lines); generated when empty")
	}
	fs.Var(&f.slides, "slide", "slide geometry `ID:WxH[:TILE]` to generate a trace for (repeatable; users are spread over slides)")
	fs.StringVar(&f.base, "base", "", "server base `URL` (metadata is read from BASE/api/v1/item/ID/tiles)")
	fs.StringVar(&f.item, "item", "", "item `ID` of the slide on the server")
	fs.StringVar(&f.meta, "meta", "", "tile metadata `URL` to read the geometry from (default BASE/api/v1/item/ITEM/tiles)")
	fs.IntVar(&f.users, "users", 1, "simultaneous viewers")
	fs.IntVar(&f.views, "views", 40, "views (user actions) per viewer")
	fs.Int64Var(&f.seed, "seed", 1, "random seed (same seed, same trace)")
	fs.StringVar(&f.viewport, "viewport", "1920x1080", "screen size `WxH`")
	fs.IntVar(&f.thinkMS, "think-ms", 1500, "mean time a viewer looks at a view, stored in the trace")
	fs.IntVar(&f.coarse, "coarse", 2, "coarser levels requested before the sharp one")
	fs.BoolVar(&f.noCache, "no-browser-cache", false, "re-request tiles a viewer already has")
}

func (f *traceFlags) get(ctx context.Context) (*trace.Trace, error) {
	if f.trace != "" {
		return trace.Load(f.trace)
	}
	var slides []trace.Slide
	for _, s := range f.slides {
		sl, err := parseSlide(s)
		if err != nil {
			return nil, err
		}
		slides = append(slides, sl)
	}
	if len(slides) == 0 {
		meta := f.meta
		if meta == "" {
			if f.base == "" || f.item == "" {
				return nil, errors.New("need --trace, --slide, --meta or --base with --item")
			}
			meta = strings.TrimRight(f.base, "/") + "/api/v1/item/" + f.item + "/tiles"
		}
		id := f.item
		if id == "" {
			id = "slide"
		}
		sl, err := replay.FetchSlide(ctx, nil, meta, id)
		if err != nil {
			return nil, err
		}
		slides = append(slides, sl)
	}
	w, h, err := parseSize(f.viewport)
	if err != nil {
		return nil, fmt.Errorf("--viewport: %w", err)
	}
	coarse := f.coarse
	if coarse == 0 {
		coarse = -1
	}
	return trace.Generate(slides, trace.Options{Seed: f.seed, Users: f.users, Views: f.views,
		ViewportW: w, ViewportH: h, ThinkMS: f.thinkMS, Coarse: coarse, NoBrowserCache: f.noCache})
}

func cmdTrace(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("trace", "Generate simulated viewer sessions (OpenSeadragon-like) as JSON lines.", stderr)
	var tf traceFlags
	tf.register(fs, false)
	out := fs.String("out", "", "write the trace to `file` (default stdout)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tr, err := tf.get(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%d users, %d views, %d tile requests\n", tr.Users(), len(tr.Views), tr.Requests())
	if *out == "" {
		return tr.Write(stdout)
	}
	return tr.Save(*out)
}

// loadFlags control how a trace is replayed.
type loadFlags struct {
	parallel int
	think    string
	rate     float64
	duration time.Duration
	requests int
	timeout  time.Duration
	dzTile   int
}

func (f *loadFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.parallel, "parallel", 6, "requests in flight per viewer (browsers use 6)")
	fs.StringVar(&f.think, "think", "0", "wait before each view: \"trace\" (the trace's think times) or a duration")
	fs.Float64Var(&f.rate, "rate", 0, "cap on total requests per second (0: none)")
	fs.DurationVar(&f.duration, "duration", 0, "run this long, restarting sessions (0: play the trace once)")
	fs.IntVar(&f.requests, "requests", 0, "stop after this many requests (0: no limit)")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "timeout of one request")
	fs.IntVar(&f.dzTile, "dz-tile", 256, "tile size the DeepZoom servers use ({level} templates)")
}

func (f *loadFlags) options(tmpl replay.Template, users int, stderr io.Writer) (replay.Options, error) {
	tmpl.DeepZoomTileSize = f.dzTile
	o := replay.Options{Template: tmpl, Users: users, Parallel: f.parallel, Rate: f.rate,
		Duration: f.duration, MaxRequests: f.requests, Timeout: f.timeout}
	if f.think == "trace" {
		o.ThinkFromTrace = true
	} else {
		d, err := time.ParseDuration(f.think)
		if err != nil && f.think != "0" {
			return o, fmt.Errorf("--think: %w", err)
		}
		o.Think = d
	}
	if ef, ok := stderr.(*os.File); ok && replay.IsTerminal(ef) {
		o.Progress = stderr
	}
	return o, nil
}

func cmdReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("replay", `Replay a trace against one server and print a summary.
The URL template is a preset (ours, large_image, iip-deepzoom, iip-iiif,
openslide-deepzoom) relative to --base, a path relative to --base, or a full
URL; placeholders: {id} {z} {x} {y} {level} (DeepZoom) {left} {top} {width}
{height} {outw} {outh}.`, stderr)
	var tf traceFlags
	tf.register(fs, true)
	var lf loadFlags
	lf.register(fs)
	tmpl := fs.String("template", "ours", "URL `template` or preset name")
	name := fs.String("name", "run", "name of the run in tables and plots")
	stURL := fs.String("stats", "", "cache statistics `URL` read before and after (default BASE"+replay.StatsPath+"; \"none\" to skip)")
	jsonOut := fs.String("json", "", "save the summary and every request as JSON to `file`")
	plotDir := fs.String("plots", "", "write PNG plots into `dir`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tr, err := tf.get(ctx)
	if err != nil {
		return err
	}
	tp, err := replay.ParseTemplate(tf.base, *tmpl)
	if err != nil {
		return err
	}
	users := 0
	if tf.trace != "" {
		users = tf.users
		if !flagSet(fs, "users") {
			users = 0
		}
	}
	o, err := lf.options(tp, users, stderr)
	if err != nil {
		return err
	}
	statsURL := *stURL
	if statsURL == "" && tf.base != "" {
		statsURL = strings.TrimRight(tf.base, "/") + replay.StatsPath
	}
	rec, err := replayOne(ctx, *name, tr, o, statsURL)
	if err != nil {
		return err
	}
	if err := report(stdout, []stats.Record{rec}, *jsonOut, *plotDir); err != nil {
		return err
	}
	return nil
}

// replayOne runs one replay with server statistics around it.
func replayOne(ctx context.Context, name string, tr *trace.Trace, o replay.Options, statsURL string) (stats.Record, error) {
	var before map[string]float64
	if statsURL != "" && statsURL != "none" {
		before, _ = replay.FetchStats(ctx, nil, statsURL) // peers have none
	}
	run, err := replay.Replay(ctx, tr, o)
	if err != nil {
		return stats.Record{}, err
	}
	s := stats.Summarize(name, run)
	if before != nil {
		s.ServerBefore = before
		s.ServerAfter, _ = replay.FetchStats(ctx, nil, statsURL)
	}
	return stats.Record{Summary: s, Run: run}, nil
}

func report(w io.Writer, recs []stats.Record, jsonOut, plotDir string) error {
	var ss []stats.Summary
	var series []plots.Series
	for _, r := range recs {
		ss = append(ss, r.Summary)
		series = append(series, plots.Series{Name: r.Summary.Name, Run: r.Run})
	}
	if err := stats.SummaryTable(ss).Text(w); err != nil {
		return err
	}
	if t := stats.ServerTable(ss); len(t.Rows) > 0 {
		fmt.Fprintln(w)
		_ = t.Text(w)
	}
	if len(ss) > 1 {
		fmt.Fprintln(w)
		_ = stats.RatioTable(ss).Text(w)
	}
	for _, s := range ss {
		if s.FirstError != "" {
			fmt.Fprintf(w, "%s: %d errors, first: %s\n", s.Name, s.Errors, s.FirstError)
		}
	}
	if jsonOut != "" {
		if len(recs) == 1 {
			if err := recs[0].Save(jsonOut); err != nil {
				return err
			}
		} else if err := stats.SaveRecords(jsonOut, recs); err != nil {
			return err
		}
	}
	if plotDir != "" {
		if err := os.MkdirAll(plotDir, 0o755); err != nil {
			return err
		}
		files, err := plots.All(plotDir, "", series)
		if err != nil {
			return err
		}
		fmt.Fprintln(w, "plots:", strings.Join(files, " "))
	}
	return nil
}

func cmdCompare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("compare", `Replay the same trace against several servers, one after the other, and
report each against the first (--target name=URLTEMPLATE, repeatable; the
template is a full URL or a preset relative to --base).`, stderr)
	var tf traceFlags
	tf.register(fs, true)
	var lf loadFlags
	lf.register(fs)
	var targets multi
	fs.Var(&targets, "target", "`name=URLTEMPLATE` (repeatable; the first is the reference)")
	jsonOut := fs.String("json", "", "save every run as JSON to `file`")
	plotDir := fs.String("plots", "", "write PNG plots into `dir`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(targets) == 0 {
		return errors.New("need at least one --target name=URLTEMPLATE")
	}
	tr, err := tf.get(ctx)
	if err != nil {
		return err
	}
	var recs []stats.Record
	for _, t := range targets {
		name, tmpl, ok := strings.Cut(t, "=")
		if !ok || name == "" {
			return fmt.Errorf("--target %q: want name=URLTEMPLATE", t)
		}
		tp, err := replay.ParseTemplate(tf.base, tmpl)
		if err != nil {
			return err
		}
		o, err := lf.options(tp, 0, stderr)
		if err != nil {
			return err
		}
		statsURL := "none"
		if strings.Contains(tp.String(), "/api/v1/item/") {
			statsURL = tp.String()[:strings.Index(tp.String(), "/api/v1/item/")] + replay.StatsPath
		}
		fmt.Fprintf(stderr, "replaying against %s\n", name)
		rec, err := replayOne(ctx, name, tr, o, statsURL)
		if err != nil {
			return err
		}
		recs = append(recs, rec)
	}
	return report(stdout, recs, *jsonOut, *plotDir)
}

func cmdSuite(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("suite", `Run the standard suite: make a large JPEG-tiled BigTIFF (and a twin with
every other level, like SVS) with vips and tiffcp, start the tile server in
each cache configuration (none, memory, memcached, memory+memcached; cold
and warm), compare eviction policies at a small budget, measure time to a
complete viewport for several users, optionally replay against the peers,
and write report.md with tables and plots into --out.`, stderr)
	cfg := suite.DefaultConfig()
	cfg.Register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Log = stderr
	path, err := suite.Run(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "report:", path)
	return nil
}

func newFlagSet(name, doc string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("tilebench "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: tilebench %s [flags]\n\n%s\n\nFlags:\n", name, doc)
		fs.PrintDefaults()
	}
	return fs
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

// parseSlide parses ID:WxH[:TILE]; levels follow the spec's formula.
func parseSlide(s string) (trace.Slide, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" {
		return trace.Slide{}, fmt.Errorf("--slide %q: want ID:WxH[:TILE]", s)
	}
	w, h, err := parseSize(parts[1])
	if err != nil {
		return trace.Slide{}, fmt.Errorf("--slide %q: %w", s, err)
	}
	tile := 256
	if len(parts) == 3 {
		if tile, err = strconv.Atoi(parts[2]); err != nil || tile <= 0 {
			return trace.Slide{}, fmt.Errorf("--slide %q: bad tile size", s)
		}
	}
	return trace.Geometry(parts[0], w, h, tile), nil
}

func parseSize(s string) (int, int, error) {
	a, b, ok := strings.Cut(s, "x")
	w, e1 := strconv.Atoi(a)
	h, e2 := strconv.Atoi(b)
	if !ok || e1 != nil || e2 != nil || w <= 0 || h <= 0 {
		return 0, 0, fmt.Errorf("size %q: want WxH", s)
	}
	return w, h, nil
}
