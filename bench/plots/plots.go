// Package plots draws replay runs as PNG charts with gonum/plot: latency
// distribution, hit rate over time and time to a complete viewport.
package plots

import (
	"fmt"
	"math"
	"path/filepath"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/tileserver/tileserver/bench/replay"
	"github.com/tileserver/tileserver/bench/stats"
)

// Series is one named run.
type Series struct {
	Name string
	Run  *replay.Run
}

// File names written by All.
const (
	LatencyFile  = "latency.png"
	HitRateFile  = "hitrate.png"
	ViewportFile = "viewport.png"
)

// All writes the three charts into dir with the given name prefix and
// returns the paths written (the hit-rate chart is skipped when no run
// carried X-Tile-Cache).
func All(dir, prefix string, ss []Series) ([]string, error) {
	var out []string
	p := filepath.Join(dir, prefix+LatencyFile)
	if err := Latency(p, ss); err != nil {
		return out, err
	}
	out = append(out, p)
	p = filepath.Join(dir, prefix+HitRateFile)
	ok, err := HitRate(p, ss)
	if err != nil {
		return out, err
	}
	if ok {
		out = append(out, p)
	}
	p = filepath.Join(dir, prefix+ViewportFile)
	if err := Viewport(p, ss); err != nil {
		return out, err
	}
	return append(out, p), nil
}

// Latency draws the cumulative distribution of request latency (log
// scale), one line per run.
func Latency(path string, ss []Series) error {
	p := plot.New()
	p.Title.Text = "Tile latency distribution"
	p.X.Label.Text = "latency (ms, log scale)"
	p.Y.Label.Text = "fraction of requests at or below"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = 0, 1
	for i, s := range ss {
		var ms []float64
		for _, r := range s.Run.Results {
			if r.Status != 0 {
				ms = append(ms, math.Max(float64(r.LatencyNS)/1e6, 0.001))
			}
		}
		if len(ms) == 0 {
			continue
		}
		if err := addLine(p, i, s.Name, cdf(ms)); err != nil {
			return err
		}
	}
	return save(p, path)
}

// HitRate draws the fraction of cache hits per second of the run. It
// reports false (and writes nothing) when no request carried the header.
func HitRate(path string, ss []Series) (bool, error) {
	p := plot.New()
	p.Title.Text = "Cache hit rate over time"
	p.X.Label.Text = "time (s)"
	p.Y.Label.Text = "hit fraction"
	p.Y.Min, p.Y.Max = 0, 1
	any := false
	for i, s := range ss {
		secs := float64(s.Run.ElapsedNS) / 1e9
		bucket := math.Max(1, secs/60)
		pts := stats.HitRateOverTime(s.Run, bucket)
		if len(pts) == 0 {
			continue
		}
		any = true
		xy := make(plotter.XYs, len(pts))
		for j, pt := range pts {
			xy[j] = plotter.XY{X: pt.T + bucket/2, Y: pt.Value}
		}
		if err := addLine(p, i, s.Name, xy); err != nil {
			return false, err
		}
	}
	if !any {
		return false, nil
	}
	return true, save(p, path)
}

// Viewport draws the cumulative distribution of the time to a complete
// viewport (log scale), one line per run.
func Viewport(path string, ss []Series) error {
	p := plot.New()
	p.Title.Text = "Time to a complete viewport"
	p.X.Label.Text = "ms (log scale)"
	p.Y.Label.Text = "fraction of views at or below"
	p.Y.Min, p.Y.Max = 0, 1
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	for i, s := range ss {
		var ms []float64
		for _, v := range s.Run.Views {
			if v.Requests > 0 {
				ms = append(ms, math.Max(float64(v.DoneNS-v.StartNS)/1e6, 0.01))
			}
		}
		if len(ms) == 0 {
			continue
		}
		if err := addLine(p, i, s.Name, cdf(ms)); err != nil {
			return err
		}
	}
	return save(p, path)
}

// cdf is the empirical cumulative distribution of values, at most ~200
// points (enough for a smooth line, small files).
func cdf(values []float64) plotter.XYs {
	v := append([]float64(nil), values...)
	sort.Float64s(v)
	xy := make(plotter.XYs, 0, 201)
	step := max(len(v)/200, 1)
	for j := 0; j < len(v); j += step {
		xy = append(xy, plotter.XY{X: v[j], Y: float64(j+1) / float64(len(v))})
	}
	return append(xy, plotter.XY{X: v[len(v)-1], Y: 1})
}

func addLine(p *plot.Plot, i int, name string, xy plotter.XYs) error {
	l, err := plotter.NewLine(xy)
	if err != nil {
		return fmt.Errorf("plot %s: %w", name, err)
	}
	l.Color = plotutil.Color(i)
	l.Width = vg.Points(1.5)
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}

func save(p *plot.Plot, path string) error {
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}
