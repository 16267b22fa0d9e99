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
		sort.Float64s(ms)
		xy := make(plotter.XYs, 0, 200)
		// At most ~200 points per line keeps the file small.
		step := max(len(ms)/200, 1)
		for j := 0; j < len(ms); j += step {
			xy = append(xy, plotter.XY{X: ms[j], Y: float64(j+1) / float64(len(ms))})
		}
		xy = append(xy, plotter.XY{X: ms[len(ms)-1], Y: 1})
		if err := addLine(p, i, s.Name, xy); err != nil {
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

// Viewport draws each view's time to a complete viewport, in the order
// the views started.
func Viewport(path string, ss []Series) error {
	p := plot.New()
	p.Title.Text = "Time to a complete viewport, per view"
	p.X.Label.Text = "view (in start order)"
	p.Y.Label.Text = "ms"
	for i, s := range ss {
		views := append([]replay.ViewTiming(nil), s.Run.Views...)
		sort.SliceStable(views, func(a, b int) bool { return views[a].StartNS < views[b].StartNS })
		var xy plotter.XYs
		for _, v := range views {
			if v.Requests == 0 {
				continue
			}
			xy = append(xy, plotter.XY{X: float64(len(xy)), Y: float64(v.DoneNS-v.StartNS) / 1e6})
		}
		if len(xy) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(xy)
		if err != nil {
			return err
		}
		sc.GlyphStyle.Color = plotutil.Color(i)
		sc.GlyphStyle.Shape = plotutil.Shape(i)
		sc.GlyphStyle.Radius = vg.Points(2)
		p.Add(sc)
		p.Legend.Add(s.Name, sc)
	}
	return save(p, path)
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
