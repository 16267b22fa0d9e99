package girder

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/work"
)

// retryAfter is the Retry-After of 503 answers, in seconds.
const retryAfter = "2"

// familyTile is the metrics family of the tile routes.
const familyTile = "tile"

// Route families of the request metrics.
var routeFamilies = []string{familyTile, "thumbnail", "region", "metadata", "analysis", "other"}

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
		return familyTile
	case rest == "/thumbnail", strings.HasPrefix(rest, "/images/") && !strings.HasSuffix(rest, "/metadata"):
		return "thumbnail"
	case rest == "/region", rest == "/tile_frames":
		return "region"
	case rest == "/histogram", rest == "/bands", rest == "/pixel":
		return "analysis"
	}
	return "metadata"
}

// zxyRoute reports whether route (echo's c.Path()) is a zxy or fzxy tile
// route.
func zxyRoute(route string) bool {
	return strings.Contains(route, "/tiles/zxy/") || strings.Contains(route, "/tiles/fzxy/")
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
// /metrics and the totals the cache panel shows. Every request passes
// here, hits included, so the common case takes no lock and resolves no
// label: each family's series are looked up once and kept.
type httpMetrics struct {
	requests *prometheus.CounterVec
	errs     *prometheus.CounterVec
	latency  *prometheus.HistogramVec

	families map[string]*familyMetrics // fixed at construction
}

// familyMetrics are one route family's resolved series and panel totals.
// Every request touches them, from every core: the panel's request count
// and mean latency are read from the histogram rather than kept in
// counters of their own, and the series of status 200 is resolved once.
type familyMetrics struct {
	latency prometheus.Histogram
	ok      prometheus.Counter // the series of status 200, most requests'
	codes   sync.Map           // other status codes → prometheus.Counter, made on first use

	latencyMax atomic.Int64 // nanoseconds

	mu     sync.Mutex // guards errors, touched only by failed requests
	errors map[string]uint64
}

type familyTotals struct {
	Requests uint64            `json:"requests"`
	Errors   map[string]uint64 `json:"errors"`
	// LatencyMeanMS and LatencyMaxMS are over every request of the family.
	LatencyMeanMS float64 `json:"latency_mean_ms"`
	LatencyMaxMS  float64 `json:"latency_max_ms"`
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
		families: map[string]*familyMetrics{},
	}
	for _, f := range routeFamilies {
		m.families[f] = &familyMetrics{
			// A HistogramVec's series are Histograms; its API returns
			// them as Observers.
			latency: m.latency.WithLabelValues(f).(prometheus.Histogram),
			ok:      m.requests.WithLabelValues(f, "200"),
			errors:  map[string]uint64{},
		}
	}
	return m
}

func (m *httpMetrics) observe(family string, status int, err error, d time.Duration) {
	f := m.families[family]
	if status == http.StatusOK {
		f.ok.Inc()
	} else {
		c, ok := f.codes.Load(status)
		if !ok {
			c, _ = f.codes.LoadOrStore(status, m.requests.WithLabelValues(family, strconv.Itoa(status)))
		}
		c.(prometheus.Counter).Inc()
	}
	f.latency.Observe(d.Seconds())
	for {
		old := f.latencyMax.Load()
		if int64(d) <= old || f.latencyMax.CompareAndSwap(old, int64(d)) {
			break
		}
	}
	if status >= 400 {
		cause := errorCause(status, err)
		m.errs.WithLabelValues(family, cause).Inc()
		f.mu.Lock()
		f.errors[cause]++
		f.mu.Unlock()
	}
}

// snapshot returns the per-family totals for the cache panel.
func (m *httpMetrics) snapshot() map[string]familyTotals {
	out := make(map[string]familyTotals, len(m.families))
	for name, f := range m.families {
		t := familyTotals{LatencyMaxMS: float64(time.Duration(f.latencyMax.Load()).Microseconds()) / 1000}
		var dm dto.Metric
		if err := f.latency.Write(&dm); err == nil {
			h := dm.GetHistogram()
			t.Requests = h.GetSampleCount()
			if t.Requests > 0 {
				// Milliseconds, truncated to the microsecond as the
				// maximum is, so the mean never shows above it.
				t.LatencyMeanMS = math.Trunc(h.GetSampleSum()*1e6/float64(t.Requests)) / 1000
			}
		}
		f.mu.Lock()
		t.Errors = make(map[string]uint64, len(f.errors))
		for k, v := range f.errors {
			t.Errors[k] = v
		}
		f.mu.Unlock()
		out[name] = t
	}
	return out
}

// middleware is the server's one echo middleware, the steps of every
// request in order: headers and CORS, the deadline, metrics, panic
// recovery, the body limit, repeated parameters, image-request tracking.
// It is one function rather than a chain of middlewares because echo
// composes its chain anew on every request, a closure per middleware on
// every tile hit.
//
// The zxy tile routes get no deadline of their own: such a request only
// ever waits for the tile cache's shared production, which carries the
// same deadline (tilecache's ProduceTimeout is --request-timeout), so a
// per-request timer would only add a timer to every cache hit.
func (s *Server) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if done, err := s.setHeaders(c); done {
			return err
		}
		start := time.Now()
		req := c.Request()
		route := c.Path()
		// Admin routes (imports, cache clears) may legitimately run long.
		if s.cfg.RequestTimeout > 0 && !zxyRoute(route) && !strings.Contains(req.URL.Path, "/large_image/") {
			ctx, cancel := context.WithTimeout(req.Context(), s.cfg.RequestTimeout)
			defer cancel()
			c.SetRequest(req.WithContext(ctx))
		}
		err := s.guarded(c, next)
		if err != nil {
			// Render the error now, so that its status is known here.
			c.Error(err)
		}
		s.http.observe(routeFamily(route), c.Response().Status, err, time.Since(start))
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
