package suite

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/tileserver/tileserver/bench/plots"
	"github.com/tileserver/tileserver/bench/stats"
)

// rawSample is how many requests of each run runs.json.gz keeps: enough
// to redraw every plot, small enough that the file stays a few MB.
const rawSample = 20000

var sectionTitles = []struct{ key, title, doc string }{
	{"modes", "Cache configurations", "Each configuration on a fresh server: *cold* is the first replay of the multi-user trace " +
		"(every tile requested for the first time by the server), *warm* replays the same trace again, looped for the run's duration. " +
		"Think time is 0: this measures the server, not the users."},
	{"policies", "Eviction policies at a small budget", "In-process tier only, with a budget far smaller than the working set, " +
		"twice the users and views of the other runs; the hit rate tells which policy keeps the tiles viewers come back to."},
	{"viewport", "Time to a complete viewport", "Several users at the pace of real people (each looks at a view for a " +
		"think time of 1.5 s on average before acting), in-process cache: the time from a user's action to the last sharp tile of the view."},
	{"prefetch", "Predictive prefetch", "The time-to-viewport trace (think times from the trace, in-process cache) on a fresh " +
		"server with prefetch off, then on (1 worker, only while no request is in flight): prefetch fetches the ring around " +
		"each view and the next level in during the users' think time. Server statistics include the prefetch counters."},
	{"twin", "Full pyramid vs every other level", "The same trace, cold, on the full pyramid and on its twin that stores only " +
		"every other level (like Aperio SVS); the twin's missing levels are synthesised from the next sharper level."},
	{"peers", "Peers", "The same warm trace against this server (in-process cache) and each peer; ratios are against the first row."},
}

// writeReport writes report.md, results.json and the plots.
func (s *suiteRun) writeReport() (string, error) {
	var all []stats.Record
	for _, r := range s.results {
		all = append(all, r.Record)
	}
	if err := stats.SaveSummaries(filepath.Join(s.cfg.Out, "results.json"), all); err != nil {
		return "", err
	}
	if err := stats.SaveSampledRuns(filepath.Join(s.cfg.Out, "runs.json.gz"), all, rawSample); err != nil {
		return "", err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Tile server benchmark\n\n")
	fmt.Fprintf(&b, "Run %s on %s/%s with %d CPUs. Server: `%s`. Slide: `slide.tif` (%d px square unless --slide was given, "+
		"256 px JPEG tiles, BigTIFF). %d users × %d views, seed %d, 1920×1080 viewport, warm runs of %s. "+
		"Summaries: `results.json`; per-request data (at most %d requests a run, evenly sampled, every view): `runs.json.gz`; "+
		"server logs: `logs/`.\n\n",
		time.Now().UTC().Format(time.RFC3339), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), s.cfg.Server, s.cfg.Size,
		s.cfg.Users, s.cfg.Views, s.cfg.Seed, s.cfg.Duration, rawSample)
	for _, sec := range sectionTitles {
		recs := s.section(sec.key)
		if len(recs) == 0 {
			continue
		}
		fmt.Fprintf(&b, "## %s\n\n%s\n\n", sec.title, sec.doc)
		var ss []stats.Summary
		var series []plots.Series
		for _, r := range recs {
			ss = append(ss, r.Summary)
			series = append(series, plots.Series{Name: r.Summary.Name, Run: r.Run})
		}
		if err := stats.SummaryTable(ss).Markdown(&b); err != nil {
			return "", err
		}
		if len(ss) > 1 {
			b.WriteString("\nRatios against the first row:\n\n")
			_ = stats.RatioTable(ss).Markdown(&b)
		}
		for _, x := range ss {
			if x.FirstError != "" {
				fmt.Fprintf(&b, "\n%s: %d errors, first: `%s`\n", x.Name, x.Errors, x.FirstError)
			}
		}
		files, err := plots.All(s.cfg.Out, sec.key+"-", series)
		if err != nil {
			return "", err
		}
		b.WriteString("\n")
		for _, f := range files {
			fmt.Fprintf(&b, "![%s](%s)\n", filepath.Base(f), filepath.Base(f))
		}
		b.WriteString("\n")
	}
	path := filepath.Join(s.cfg.Out, "report.md")
	return path, os.WriteFile(path, b.Bytes(), 0o644)
}
