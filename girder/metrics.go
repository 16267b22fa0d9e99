package girder

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/work"
)

// retryAfter is the Retry-After of 503 answers, in seconds.
const retryAfter = "2"

// Route families of the request metrics.
var routeFamilies = []string{"tile", "thumbnail", "region", "metadata", "analysis", "other"}

// routeFamily maps a route template (echo's c.Path()) to its family.
func routeFamily(route string) string {
	i := strings.Index(route, "/tiles")
	if i < 0 {
		if strings.HasPrefix(route, "/api/v1/item") || strings.HasPrefix(route, "/api/v1/folder") ||
			strings.HasPrefix(route, "/api/v1/collection") || strings.HasPrefix(route, "/api/v1/file") {
			return "metadata"
		}
		return "other"
	}
	switch rest := route[i+len("/tiles"):]; {
	case strings.HasPrefix(rest, "/zxy/"), strings.HasPrefix(rest, "/fzxy/"), strings.HasPrefix(rest, "/dzi_files/"):
		return "tile"
	case rest == "/thumbnail", strings.HasPrefix(rest, "/images/") && !strings.HasSuffix(rest, "/metadata"):
		return "thumbnail"
	case rest == "/region", rest == "/tile_frames":
		return "region"
	case rest == "/histogram", rest == "/bands", rest == "/pixel":
		return "analysis"
	}
	return "metadata"
}

// errorCause names why a request failed, for the error counters.
func errorCause(status int, err error) string {
	switch {
	case errors.Is(err, work.ErrOverloaded):
		return "overloaded"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case status == 499:
		return "cancelled"
	}
	var te *tilesource.Error
	internal := errors.As(err, &te) && te.Cause != nil
	switch {
	case status == http.StatusNotFound && internal:
		// A tile that exists but could not be read (large_image answers
		// 404 for it).
		return "source"
	case status == http.StatusNotFound:
		return "not_found"
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		return "forbidden"
	case status == http.StatusBadGateway, status == http.StatusGatewayTimeout:
		return "upstream"
	case status == http.StatusServiceUnavailable:
		return "unavailable"
	case status >= 500:
		return "internal"
	}
	return "bad_request"
}

// httpMetrics counts requests per route family: the Prometheus series of
// /metrics and the totals the cache panel shows.
type httpMetrics struct {
	requests *prometheus.CounterVec
	errs     *prometheus.CounterVec
	latency  *prometheus.HistogramVec

	mu    sync.Mutex
	panel map[string]*familyTotals
}

type familyTotals struct {
	Requests uint64            `json:"requests"`
	Errors   map[string]uint64 `json:"errors"`
	// LatencyMeanMS and LatencyMaxMS are over every request of the family.
	LatencyMeanMS float64 `json:"latency_mean_ms"`
	LatencyMaxMS  float64 `json:"latency_max_ms"`
	latencySum    time.Duration
}

func newHTTPMetrics() *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tileserver_http_requests_total",
			Help: "HTTP requests by route family and status code.",
		}, []string{"family", "code"}),
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tileserver_http_errors_total",
			Help: "Failed HTTP requests (status 400 and above), once per request, by route family and cause.",
		}, []string{"family", "cause"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tileserver_http_request_duration_seconds",
			Help:    "HTTP request latency by route family.",
			Buckets: []float64{.002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"family"}),
		panel: map[string]*familyTotals{},
	}
	for _, f := range routeFamilies {
		m.latency.WithLabelValues(f)
		m.panel[f] = &familyTotals{Errors: map[string]uint64{}}
	}
	return m
}

func (m *httpMetrics) observe(family string, status int, err error, d time.Duration) {
	m.requests.WithLabelValues(family, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(family).Observe(d.Seconds())
	cause := ""
	if status >= 400 {
		cause = errorCause(status, err)
		m.errs.WithLabelValues(family, cause).Inc()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.panel[family]
	t.Requests++
	t.latencySum += d
	t.LatencyMaxMS = max(t.LatencyMaxMS, float64(d.Microseconds())/1000)
	if cause != "" {
		t.Errors[cause]++
	}
}

// snapshot returns the per-family totals for the cache panel.
func (m *httpMetrics) snapshot() map[string]familyTotals {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]familyTotals, len(m.panel))
	for f, t := range m.panel {
		c := *t
		c.Errors = make(map[string]uint64, len(t.Errors))
		for k, v := range t.Errors {
			c.Errors[k] = v
		}
		if t.Requests > 0 {
			c.LatencyMeanMS = float64(t.latencySum.Microseconds()) / 1000 / float64(t.Requests)
		}
		out[f] = c
	}
	return out
}

// observe is the outermost middleware: it gives API requests their
// deadline and records every request's family, status, cause and latency.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		req := c.Request()
		// Admin routes (imports, cache clears) may legitimately run long.
		if s.cfg.RequestTimeout > 0 && !strings.Contains(req.URL.Path, "/large_image/") {
			ctx, cancel := context.WithTimeout(req.Context(), s.cfg.RequestTimeout)
			defer cancel()
			c.SetRequest(req.WithContext(ctx))
		}
		err := next(c)
		if err != nil {
			// Render the error now, so that its status is known here.
			c.Error(err)
		}
		s.http.observe(routeFamily(c.Path()), c.Response().Status, err, time.Since(start))
		return nil
	}
}

// WithWorkBudget shows the global work budget in the cache panel and in
// /metrics.
func WithWorkBudget(b *work.Budget) Option { return func(s *Server) { s.work = b } }

// HTTPCollector returns the request, error and latency series and the work
// budget's gauges, for registration in /metrics.
func (s *Server) HTTPCollector() prometheus.Collector { return httpCollector{s} }

type httpCollector struct{ s *Server }

var (
	descWorkUsed = prometheus.NewDesc("tileserver_work_pixels_in_use",
		"Pixels of decode/resample/encode work running now (the global work budget).", nil, nil)
	descWorkCapacity = prometheus.NewDesc("tileserver_work_pixels_capacity", "The global work budget in pixels.", nil, nil)
	descWorkQueued   = prometheus.NewDesc("tileserver_work_queued",
		"Steps waiting for the work budget, by priority.", []string{"priority"}, nil)
	descWorkRefused = prometheus.NewDesc("tileserver_work_refused_total",
		"Steps refused because the work queue was full (answered 503).", nil, nil)
)

func (h httpCollector) Describe(ch chan<- *prometheus.Desc) {
	h.s.http.requests.Describe(ch)
	h.s.http.errs.Describe(ch)
	h.s.http.latency.Describe(ch)
	ch <- descWorkUsed
	ch <- descWorkCapacity
	ch <- descWorkQueued
	ch <- descWorkRefused
}

func (h httpCollector) Collect(ch chan<- prometheus.Metric) {
	h.s.http.requests.Collect(ch)
	h.s.http.errs.Collect(ch)
	h.s.http.latency.Collect(ch)
	if h.s.work == nil {
		return
	}
	st := h.s.work.Stats()
	ch <- prometheus.MustNewConstMetric(descWorkUsed, prometheus.GaugeValue, float64(st.Used))
	ch <- prometheus.MustNewConstMetric(descWorkCapacity, prometheus.GaugeValue, float64(st.Capacity))
	ch <- prometheus.MustNewConstMetric(descWorkQueued, prometheus.GaugeValue, float64(st.Queued), "foreground")
	ch <- prometheus.MustNewConstMetric(descWorkQueued, prometheus.GaugeValue, float64(st.QueuedBackground), "background")
	ch <- prometheus.MustNewConstMetric(descWorkRefused, prometheus.CounterValue, float64(st.Refused))
}
