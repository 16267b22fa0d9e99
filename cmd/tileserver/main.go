// Command tileserver serves the Girder large_image tile API for a directory
// of slides: it mirrors the slide root into an embedded item store and
// answers tile, thumbnail, region and DeepZoom requests through the tile
// pipeline and its caches.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tileserver/tileserver/coarsedeadline"
	"github.com/tileserver/tileserver/girder"
	"github.com/tileserver/tileserver/girder/store"
	"github.com/tileserver/tileserver/girder/web"
	"github.com/tileserver/tileserver/tilecache"
	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/dicom/dicomweb"
	"github.com/tileserver/tileserver/tilesource/pipeline"
	"github.com/tileserver/tileserver/tilesource/work"
)

// workDefaults fills the work budget's zero settings from the core count:
// 1 Mi pixels per core (four 512² decodes, or sixteen 256² tiles) and 64
// waiting steps per core.
func workDefaults(pixels int64, queue, cores int) (int64, int) {
	if pixels <= 0 {
		pixels = int64(cores) << 20
	}
	if queue <= 0 {
		queue = 64 * cores
	}
	return pixels, queue
}

// deadlineResolution is how late past its time a connection's read, write
// or idle timeout may take effect (package coarsedeadline).
const deadlineResolution = 500 * time.Millisecond

// heapSamplingOff turns Go's heap-profile sampling off once per process
// (tests start several servers at once).
var heapSamplingOff sync.Once

// tileCacheConfig is the tile cache's configuration from the settings.
// Its shared tiers keep entries under this release's rendering version.
func tileCacheConfig(cfg settings, log *slog.Logger) tilecache.Config {
	tcfg := tilecache.DefaultConfig()
	tcfg.Mode = cfg.Cache
	tcfg.Policy = cfg.CachePolicy
	tcfg.KeepCheapAtOnce = !cfg.CacheDoorkeeper
	tcfg.MemoryBytes = cfg.CacheMemoryBytes
	tcfg.MemcachedServers = cfg.Memcached
	tcfg.TTL, tcfg.Timeout, tcfg.MaxIdleConns = cfg.MemcachedTTL, cfg.MemcachedTimeout, cfg.MemcachedPool
	tcfg.MemcachedMaxItemBytes = int(cfg.MemcachedMaxItem)
	tcfg.Logger = log
	tcfg.DiskDir, tcfg.DiskBytes, tcfg.DiskTTL, tcfg.DiskKey = cfg.DiskDir, cfg.DiskBytes, cfg.DiskTTL, cfg.DiskKey
	tcfg.ProduceTimeout = cfg.RequestTimeout
	tcfg.Namespace = pipeline.RenderVersion
	return tcfg
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tileserver:", err)
		os.Exit(1)
	}
}

// run starts the server and blocks until ctx is cancelled, then shuts down
// gracefully.
func run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == importDICOMwebCmd {
		return runImportDICOMweb(ctx, args[1:], lookupEnv, stdout, stderr)
	}
	cfg, err := loadSettings(args, lookupEnv, stderr)
	if err != nil {
		return err
	}
	if cfg.DebugAddr == "" {
		// Heap profiles are only served on the debug listener. Without
		// it, sampling would still walk the stack once per 512 KiB
		// allocated: about every 37th stored tile read.
		heapSamplingOff.Do(func() { runtime.MemProfileRate = 0 })
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	dirs := []string{cfg.Data, cfg.Slides}
	if cfg.S3.Bucket != nil {
		dirs = dirs[:1]
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	var (
		st         *store.Store
		open       func(string) (tilesource.Source, error)
		openSeries func([]string) (tilesource.Source, error)
	)
	if cfg.S3.Bucket != nil {
		st, open, openSeries, err = openS3(cfg)
	} else {
		st, err = store.Open(cfg.Data, cfg.Slides)
	}
	if err != nil {
		return err
	}
	defer st.Close()
	// The synthetic test image is always there, as in large_image's demo.
	if _, err := st.PutTestItem(); err != nil {
		return err
	}

	tiles, err := tilecache.New(tileCacheConfig(cfg, log))
	if err != nil {
		return err
	}
	defer tiles.Close()
	scfg := tilecache.DefaultSourcesConfig()
	scfg.MemoryBytes = cfg.SourceCacheBytes
	sources := tilecache.NewSources(scfg)
	defer sources.Close()
	// Budgets as the caches resolved them (0 in the flags means "from
	// total memory"); the in-process tier counts only when it is on.
	cacheBudget := sources.Config().MemoryBytes
	if strings.Contains(tiles.Config().Mode, "memory") {
		cacheBudget += tiles.Config().MemoryBytes
	}
	lim := applyLimits(cfg.Guards, cacheBudget)
	memLimit, memFrom := applyMemoryLimit(cfg.Guards, cacheBudget, lim, lookupEnv)
	logGuards(log, lim, memLimit, memFrom)
	budget := work.New(workDefaults(cfg.WorkPixels, cfg.WorkQueue, runtime.GOMAXPROCS(0)))
	archives, err := dicomweb.NewArchives(cfg.DICOMweb)
	if err != nil {
		return err
	}
	remoteClient := pipeline.DefaultHTTPClient()
	pl, err := pipeline.New(pipeline.Config{Tiles: tiles, Sources: sources, HTTPClient: remoteClient, DICOMweb: archives, Work: budget,
		Open: open, OpenSeries: openSeries, RegionsFromPyramid: cfg.RegionsFromPyramid})
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := tilecache.Register(reg, tiles, sources); err != nil {
		return err
	}
	// Background work yields to real requests: one counter of image
	// requests in flight gates both warm-up and prefetch.
	activity := pipeline.NewActivity()
	bg := girder.BackgroundConfig{Activity: activity, Warmer: pl, WarmWorkers: cfg.WarmWorkers,
		PrecacheBatch: cfg.PrecacheBatch, PrecacheAhead: cfg.PrecacheAhead}
	if cfg.Prefetch {
		pf := pipeline.NewPrefetcher(pl, pipeline.PrefetchConfig{Workers: cfg.PrefetchWorkers, Activity: activity})
		defer pf.Close()
		bg.Prefetch = pf
	}
	var srv *girder.Server
	opts := []girder.Option{
		girder.WithCacheAdmin(girder.TileCacheAdmin{Tiles: tiles, Sources: sources}),
		girder.WithHandler("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{})),
		girder.WithRoutes(func(e *echo.Echo) { web.Register(e, web.Config{AdminDisabled: cfg.AdminToken == ""}) }),
		girder.WithBackground(bg),
	}
	// Always set, even with no archive: the first listing also removes
	// the collections of archives taken out of the configuration.
	opts = append(opts, girder.WithDICOMweb(archives, dicomweb.OpenOptions{Client: remoteClient, Cache: tiles}))
	for _, a := range archives.List() {
		log.Info("dicomweb: archive", "archive", a)
	}
	if cfg.WarmOnImport {
		// Unchanged items already warmed are skipped, so a re-import only
		// warms what is new.
		opts = append(opts, girder.WithImportHook(func(_ context.Context, items []store.Item) {
			ids := make([]string, len(items))
			for i, it := range items {
				ids[i] = it.ID
			}
			srv.WarmItems(ids, "import", true)
		}))
	}
	opts = append(opts, girder.WithWorkBudget(budget))
	srv = girder.New(girder.Config{MaxAge: cfg.MaxAge, AdminToken: cfg.AdminToken, Logger: log,
		CORSOrigins: cfg.Guards.CORSOrigins, MaxBodyBytes: cfg.Guards.MaxBodyBytes,
		RequestTimeout: cfg.RequestTimeout}, pl, st, opts...)
	defer srv.Close()
	if err := reg.Register(srv.Collector()); err != nil {
		return err
	}
	if err := reg.Register(srv.HTTPCollector()); err != nil {
		return err
	}

	tcp, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	// The timeouts below are seconds to minutes: enforcing them by a sweep
	// every half second spares a runtime timer per deadline, of which
	// net/http sets several per request.
	ln := coarsedeadline.NewListener(tcp, deadlineResolution)
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       cfg.Guards.ReadTimeout,
		WriteTimeout:      cfg.Guards.WriteTimeout,
		IdleTimeout:       cfg.Guards.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// The import runs beside the server so a large slide tree does not
	// delay the first requests; items appear as the scan commits.
	importDone := make(chan struct{})
	go func() {
		defer close(importDone)
		log.Info("import: scanning", "slides", slidesForLog(cfg))
		if _, err := srv.Import(ctx, ""); err != nil && ctx.Err() == nil {
			log.Error("import failed", "err", err)
		}
	}()

	// Archives are listed beside the server too, and again every
	// --dicomweb-refresh.
	refreshDone := make(chan struct{})
	go func() {
		defer close(refreshDone)
		srv.RefreshArchives(ctx, cfg.DICOMwebRefresh)
	}()

	if cfg.DebugAddr != "" {
		_, stop, err := serveDebug(cfg.DebugAddr, log)
		if err != nil {
			return err
		}
		defer stop()
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	fmt.Fprintf(stdout, "tileserver listening on http://%s/\n", ln.Addr())

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err = hs.Shutdown(shutCtx)
	<-importDone
	<-refreshDone
	return err
}
