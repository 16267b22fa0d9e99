package stats

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Table is a small grid of text rendered as aligned text or Markdown.
type Table struct {
	Header []string
	Rows   [][]string
}

// Text writes the table with aligned columns.
func (t Table) Text(w io.Writer) error {
	width := make([]int, len(t.Header))
	for _, r := range append([][]string{t.Header}, t.Rows...) {
		for i, c := range r {
			if i < len(width) {
				width[i] = max(width[i], len(c))
			}
		}
	}
	var b strings.Builder
	for _, r := range append([][]string{t.Header}, t.Rows...) {
		for i, c := range r {
			if i > 0 {
				b.WriteString("  ")
			}
			if i == 0 {
				fmt.Fprintf(&b, "%-*s", width[i], c)
			} else {
				fmt.Fprintf(&b, "%*s", width[i], c)
			}
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Markdown writes the table as a GitHub-flavoured Markdown table.
func (t Table) Markdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| " + strings.Join(t.Header, " | ") + " |\n|")
	for i := range t.Header {
		if i == 0 {
			b.WriteString(" --- |")
		} else {
			b.WriteString(" ---: |")
		}
	}
	b.WriteString("\n")
	for _, r := range t.Rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// SummaryTable has one column per run and one row per measure.
func SummaryTable(ss []Summary) Table {
	t := Table{Header: []string{"measure"}}
	for _, s := range ss {
		t.Header = append(t.Header, s.Name)
	}
	row := func(name string, f func(Summary) string) {
		r := []string{name}
		for _, s := range ss {
			r = append(r, f(s))
		}
		t.Rows = append(t.Rows, r)
	}
	row("requests", func(s Summary) string { return fmt.Sprint(s.Requests) })
	row("errors", func(s Summary) string { return fmt.Sprint(s.Errors) })
	row("req/s", func(s Summary) string { return fmt.Sprintf("%.0f", s.Throughput) })
	row("latency p50 ms", func(s Summary) string { return ms(s.Latency.P50) })
	row("latency p90 ms", func(s Summary) string { return ms(s.Latency.P90) })
	row("latency p99 ms", func(s Summary) string { return ms(s.Latency.P99) })
	row("hit rate", func(s Summary) string {
		if s.HitRate < 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f%%", 100*s.HitRate)
	})
	for _, c := range []string{HitMemory, HitMemcached, HitDisk, Coalesced, Miss} {
		// Only the tiers some run used.
		for _, s := range ss {
			if s.Cache[c] > 0 {
				row("  "+c, func(s Summary) string { return share(s, c) })
				break
			}
		}
	}
	row("viewport p50 ms", func(s Summary) string { return ms(s.ViewportMs.P50) })
	row("viewport p90 ms", func(s Summary) string { return ms(s.ViewportMs.P90) })
	return t
}

// withoutEmptyRows drops the rows whose every value is "-" or "0": a
// statistic no run has says nothing.
func (t Table) withoutEmptyRows() Table {
	out := Table{Header: t.Header}
	for _, r := range t.Rows {
		for _, c := range r[1:] {
			if c != "-" && c != "0" {
				out.Rows = append(out.Rows, r)
				break
			}
		}
	}
	return out
}

// ServerTable lists the change of each server cache statistic over each
// run (after minus before).
func ServerTable(ss []Summary) Table {
	keys := map[string]bool{}
	for _, s := range ss {
		for k := range s.ServerDelta() {
			keys[k] = true
		}
	}
	t := Table{Header: []string{"server statistic (after - before)"}}
	for _, s := range ss {
		t.Header = append(t.Header, s.Name)
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		r := []string{k}
		for _, s := range ss {
			if v, ok := s.ServerDelta()[k]; ok {
				r = append(r, fmt.Sprintf("%.0f", v))
			} else {
				r = append(r, "-")
			}
		}
		t.Rows = append(t.Rows, r)
	}
	return t.withoutEmptyRows()
}

// RatioTable compares every run with the first: throughput as other/first
// (above 1 means the first is slower), latencies as other/first (above 1
// means the first is faster).
func RatioTable(ss []Summary) Table {
	t := Table{Header: []string{"target", "req/s", "req/s ratio", "p50 ms", "p50 ratio", "p99 ms", "p99 ratio", "viewport p50 ms", "viewport ratio", "errors"}}
	if len(ss) == 0 {
		return t
	}
	ref := ss[0]
	for _, s := range ss {
		t.Rows = append(t.Rows, []string{
			s.Name,
			fmt.Sprintf("%.0f", s.Throughput), ratio(s.Throughput, ref.Throughput),
			ms(s.Latency.P50), ratio(s.Latency.P50, ref.Latency.P50),
			ms(s.Latency.P99), ratio(s.Latency.P99, ref.Latency.P99),
			ms(s.ViewportMs.P50), ratio(s.ViewportMs.P50, ref.ViewportMs.P50),
			fmt.Sprint(s.Errors),
		})
	}
	return t
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func ms(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func share(s Summary, c string) string {
	n := s.Cache[c]
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(max(s.Requests, 1)))
}
