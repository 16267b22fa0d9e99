package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tileserver/tileserver/tilesource/pipeline"
)

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestSettingsPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "tileserver.yaml")
	yml := "addr: 0.0.0.0:9000\ndata: /from/yaml\nmax-age: 60\nmemcached:\n  - mc1:11211\n  - mc2:11211\ncache-memory-bytes: 2G\n"
	if err := os.WriteFile(cfgFile, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"TILESERVER_CONFIG": cfgFile, "TILESERVER_MAX_AGE": "120", "TILESERVER_DATA": "/from/env"}
	s, err := loadSettings([]string{"--data", "/from/flag"}, envMap(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr != "0.0.0.0:9000" || s.Data != "/from/flag" || s.MaxAge != 120 || s.Slides != "./data/slides" {
		t.Errorf("precedence: %+v", s)
	}
	if strings.Join(s.Memcached, ",") != "mc1:11211,mc2:11211" || s.Cache != "memory+memcached" || s.CacheMemoryBytes != 2<<30 {
		t.Errorf("memcached/cache: %+v", s)
	}

	s, err = loadSettings(nil, envMap(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr != "127.0.0.1:8080" || s.Data != "./data" || s.Cache != "memory" || s.MaxAge != 3600 {
		t.Errorf("defaults: %+v", s)
	}

	bad := [][]string{{"--cache", "disk"}, {"--cache", "memcached"}, {"--max-age", "soon"}, {"--cache-memory-bytes", "lots"}, {"extra"}}
	for _, args := range bad {
		if _, err := loadSettings(args, envMap(nil), io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	if err := os.WriteFile(cfgFile, []byte("adress: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadSettings([]string{"--config", cfgFile}, envMap(nil), io.Discard); err == nil || !strings.Contains(err.Error(), "adress") {
		t.Errorf("unknown YAML key: %v", err)
	}
}

func TestHelpDocumentsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	_, err := loadSettings([]string{"--help"}, envMap(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, o := range options {
		if !strings.Contains(out.String(), "-"+o.name) || !strings.Contains(out.String(), envName(o.name)) {
			t.Errorf("--help does not document %s / %s", o.name, envName(o.name))
		}
	}
}

// TestRunServesAndShutsDown starts the real server on a free port over a
// slide root holding one real slide, waits for the import, fetches a tile
// and stops it as SIGINT would.
func TestRunServesAndShutsDown(t *testing.T) {
	dir := t.TempDir()
	slides := slideRoot(t, dir, "openslide-python/boxes.tiff", "boxes.tiff")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "data"), "--slides", slides, "--log-level", "warn"},
			envMap(nil), pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no listening line: %v (run: %v)", err, <-done)
	}
	go io.Copy(io.Discard, pr)
	if !strings.HasPrefix(line, "tileserver listening on http://127.0.0.1:") {
		t.Fatalf("stdout %q", line)
	}
	base := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(line), "tileserver listening on "), "/")
	res, err := http.Get(base + "/healthz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", err, res)
	}
	res.Body.Close()
	// Without --debug-addr nobody can read a heap profile, so none is
	// sampled (Do orders this read after run's write).
	heapSamplingOff.Do(func() {})
	if runtime.MemProfileRate != 0 {
		t.Errorf("MemProfileRate %d without a debug listener, want 0", runtime.MemProfileRate)
	}

	// The import runs in the background; wait for the item (bounded).
	var items []map[string]any
	for i := 0; i < 200 && len(items) == 0; i++ {
		res, err := http.Get(base + "/api/v1/item?text=boxes")
		if err != nil {
			t.Fatal(err)
		}
		if err := json.NewDecoder(res.Body).Decode(&items); err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if len(items) == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if len(items) != 1 {
		t.Fatalf("boxes.tiff not imported: %v", items)
	}
	res, err = http.Get(base + "/api/v1/item/" + items[0]["_id"].(string) + "/tiles/zxy/0/0/0")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "image/jpeg" || len(body) == 0 {
		t.Fatalf("tile: %d %s %q", res.StatusCode, res.Header.Get("Content-Type"), body)
	}
	// The synthetic test image is an item too; its tiles are the test
	// source's (PNG by default, 256 px, 10 levels).
	var tests []map[string]any
	res, err = http.Get(base + "/api/v1/item?text=synthetic")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(res.Body).Decode(&tests); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if len(tests) != 1 || tests[0]["largeImage"].(map[string]any)["sourceName"] != "test" {
		t.Fatalf("test item: %v", tests)
	}
	var meta map[string]any
	res, err = http.Get(base + "/api/v1/item/" + tests[0]["_id"].(string) + "/tiles")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(res.Body).Decode(&meta); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if meta["levels"] != float64(10) || meta["sizeX"] != float64(131072) || meta["tileWidth"] != float64(256) {
		t.Errorf("test item metadata: %v", meta)
	}
	res, err = http.Get(base + "/api/v1/item/" + tests[0]["_id"].(string) + "/tiles/zxy/9/3/4")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "image/png" {
		t.Errorf("test item tile: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	res, err = http.Get(base + "/")
	if err != nil || res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("viewer page: %v %v", err, res)
	}
	res.Body.Close()
	res, err = http.Get(base + "/metrics")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("metrics: %v %v", err, res)
	}
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()
	// Prefetch and warm-on-import are on by default.
	for _, m := range []string{`tileserver_prefetch_tiles_total{outcome="queued"}`, `tileserver_warm_items{state="done"}`,
		"tileserver_image_requests_in_flight"} {
		if !bytes.Contains(metrics, []byte(m)) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func TestDiskAndBackgroundSettings(t *testing.T) {
	s, err := loadSettings(nil, envMap(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.DiskDir != "" || s.DiskBytes != 0 || s.DiskTTL != 0 || s.DiskKey != nil || !s.WarmOnImport || s.WarmWorkers != 1 ||
		!s.Prefetch || s.PrefetchWorkers != 1 || s.PrecacheBatch != 5 || s.PrecacheAhead != 15 {
		t.Errorf("defaults: %+v", s)
	}

	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "tileserver.yaml")
	yml := "disk-cache: /from/yaml\ndisk-cache-ttl: 1h\ndisk-cache-size: 1G\nprefetch: false\nwarm-workers: 3\n"
	if err := os.WriteFile(cfgFile, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"TILESERVER_CONFIG": cfgFile, "TILESERVER_DISK_CACHE_TTL": "90m", "TILESERVER_DISK_CACHE": "/from/env"}
	s, err = loadSettings([]string{"--disk-cache", "/from/flag", "--warm-on-import=false", "--prefetch-workers", "2",
		"--precache-batch", "3", "--precache-ahead", "9"}, envMap(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.DiskDir != "/from/flag" || s.DiskTTL != 90*time.Minute || s.DiskBytes != 1<<30 || s.Prefetch || s.WarmOnImport ||
		s.WarmWorkers != 3 || s.PrefetchWorkers != 2 || s.PrecacheBatch != 3 || s.PrecacheAhead != 9 {
		t.Errorf("precedence: %+v", s)
	}
	// A switch given alone is on, over the environment.
	s, err = loadSettings([]string{"--warm-on-import", "--regions-from-pyramid"},
		envMap(map[string]string{"TILESERVER_WARM_ON_IMPORT": "false"}), io.Discard)
	if err != nil || !s.WarmOnImport || !s.RegionsFromPyramid {
		t.Errorf("switches alone: %v %+v", err, s)
	}
	if s, err = loadSettings(nil, envMap(nil), io.Discard); err != nil || s.RegionsFromPyramid {
		t.Errorf("regions from the pyramid by default: %v %v", s.RegionsFromPyramid, err)
	}
	if s, err = loadSettings([]string{"--disk-cache-ttl", "7d"}, envMap(nil), io.Discard); err != nil || s.DiskTTL != 7*24*time.Hour {
		t.Errorf("7d: %v %v", s.DiskTTL, err)
	}
	for _, args := range [][]string{{"--disk-cache-ttl", "soon"}, {"--disk-cache-ttl", "-1h"}, {"--disk-cache-size", "lots"},
		{"--warm-workers", "0"}, {"--prefetch=maybe"}, {"--regions-from-pyramid=often"}, {"--precache-ahead", "x"}} {
		if _, err := loadSettings(args, envMap(nil), io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestMemcachedAndSourceCacheSettings(t *testing.T) {
	s, err := loadSettings(nil, envMap(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.MemcachedTTL != 0 || s.MemcachedMaxItem != 1<<20 || s.MemcachedTimeout != 200*time.Millisecond ||
		s.MemcachedPool != 64 || s.SourceCacheBytes != 0 {
		t.Errorf("defaults: %+v", s)
	}
	env := map[string]string{"TILESERVER_MEMCACHED_TTL": "30d", "TILESERVER_MEMCACHED_POOL": "16"}
	s, err = loadSettings([]string{"--memcached-max-item", "8M", "--memcached-timeout", "50ms",
		"--source-cache-bytes", "2G", "--memcached-pool", "128"}, envMap(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.MemcachedTTL != 30*24*time.Hour || s.MemcachedMaxItem != 8<<20 || s.MemcachedTimeout != 50*time.Millisecond ||
		s.MemcachedPool != 128 || s.SourceCacheBytes != 2<<30 {
		t.Errorf("flags and env: %+v", s)
	}
	// The tile cache gets them, and names shared entries with this
	// release's rendering version.
	tc := tileCacheConfig(s, slog.New(slog.DiscardHandler))
	if tc.TTL != s.MemcachedTTL || tc.MemcachedMaxItemBytes != 8<<20 || tc.MaxIdleConns != 128 ||
		tc.Namespace != pipeline.RenderVersion || tc.Namespace == "" || tc.KeepCheapAtOnce {
		t.Errorf("tile cache configuration %+v", tc)
	}
	// The doorkeeper is on by default; off, every tile is kept at once.
	s, err = loadSettings(nil, envMap(map[string]string{"TILESERVER_CACHE_DOORKEEPER": "false"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if tc := tileCacheConfig(s, slog.New(slog.DiscardHandler)); !tc.KeepCheapAtOnce {
		t.Error("TILESERVER_CACHE_DOORKEEPER=false: doorkeeper still on")
	}
	for _, args := range [][]string{{"--memcached-timeout", "0"}, {"--memcached-max-item", "0"},
		{"--memcached-pool", "0"}, {"--source-cache-bytes", "much"}, {"--memcached-ttl", "later"},
		{"--cache-doorkeeper=sometimes"}} {
		if _, err := loadSettings(args, envMap(nil), io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestCacheKeyFileAndEnv(t *testing.T) {
	dir := t.TempDir()
	key := bytes.Repeat([]byte{0xa5}, 32)
	hexKey := strings.Repeat("a5", 32)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for name, content := range map[string][]byte{
		"hex":    []byte(hexKey + "\n"),
		"base64": []byte(base64.StdEncoding.EncodeToString(key)),
		"raw":    key,
	} {
		s, err := loadSettings([]string{"--cache-key-file", write(name, content)}, envMap(nil), io.Discard)
		if err != nil || !bytes.Equal(s.DiskKey, key) {
			t.Errorf("%s key file: %x %v", name, s.DiskKey, err)
		}
	}
	s, err := loadSettings(nil, envMap(map[string]string{"TILESERVER_CACHE_KEY": hexKey}), io.Discard)
	if err != nil || !bytes.Equal(s.DiskKey, key) {
		t.Errorf("TILESERVER_CACHE_KEY: %x %v", s.DiskKey, err)
	}
	s, err = loadSettings(nil, envMap(map[string]string{"TILESERVER_CACHE_KEY_FILE": write("env", []byte(hexKey))}), io.Discard)
	if err != nil || !bytes.Equal(s.DiskKey, key) {
		t.Errorf("TILESERVER_CACHE_KEY_FILE: %x %v", s.DiskKey, err)
	}
	short := write("short", []byte(strings.Repeat("a5", 16)))
	_, err = loadSettings([]string{"--cache-key-file", short}, envMap(nil), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--cache-key-file") || !strings.Contains(err.Error(), "32 bytes") {
		t.Errorf("16-byte key: %v", err)
	}
	if _, err := loadSettings(nil, envMap(map[string]string{"TILESERVER_CACHE_KEY": "abcd"}), io.Discard); err == nil ||
		!strings.Contains(err.Error(), "TILESERVER_CACHE_KEY") {
		t.Errorf("short env key: %v", err)
	}
	if _, err := loadSettings([]string{"--cache-key-file", filepath.Join(dir, "missing")}, envMap(nil), io.Discard); err == nil {
		t.Error("missing key file accepted")
	}
	if _, err := loadSettings([]string{"--cache-key-file", short}, envMap(map[string]string{"TILESERVER_CACHE_KEY": hexKey}), io.Discard); err == nil ||
		!strings.Contains(err.Error(), "use one") {
		t.Errorf("key file and env key: %v", err)
	}
}

// server is one run of the command for a test.
// slideRoot makes dir/slides holding a copy of the test file src (a path
// under ../shared/testdata) named name, and returns its path.
func slideRoot(t *testing.T, dir, src, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "testdata", filepath.FromSlash(src)))
	if err != nil {
		t.Fatal(err)
	}
	slides := filepath.Join(dir, "slides")
	if err := os.MkdirAll(slides, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(slides, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return slides
}

// importedItem waits (bounded) for the background import to list the one
// item whose name contains text, and returns its id.
func importedItem(t *testing.T, base, text string) string {
	t.Helper()
	var items []map[string]any
	for i := 0; i < 200 && len(items) == 0; i++ {
		getJSON(t, base+"/api/v1/item?text="+text, &items)
		if len(items) == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if len(items) != 1 {
		t.Fatalf("%s not imported: %v", text, items)
	}
	return items[0]["_id"].(string)
}

type server struct {
	base   string
	cancel context.CancelFunc
	done   chan error
}

func startServer(t *testing.T, args []string, env map[string]string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	sv := &server{cancel: cancel, done: make(chan error, 1)}
	go func() {
		sv.done <- run(ctx, append([]string{"--addr", "127.0.0.1:0", "--log-level", "warn"}, args...), envMap(env), pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("no listening line: %v (run: %v)", err, <-sv.done)
	}
	go io.Copy(io.Discard, pr)
	sv.base = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(line), "tileserver listening on "), "/")
	return sv
}

func (sv *server) stop(t *testing.T) {
	t.Helper()
	sv.cancel()
	if err := <-sv.done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// TestRunWithDiskCache: a tile produced by one run is a disk hit in the
// next run over the same directory and key, and a miss under another key.
func TestRunWithDiskCache(t *testing.T) {
	dir := t.TempDir()
	slides := slideRoot(t, dir, "openslide-python/boxes.tiff", "boxes.tiff")
	args := []string{"--data", filepath.Join(dir, "data"), "--slides", slides, "--admin-token", "tok",
		"--disk-cache", filepath.Join(dir, "disk"), "--warm-on-import=false", "--prefetch=false"}
	key := map[string]string{"TILESERVER_CACHE_KEY": strings.Repeat("5a", 32)}

	tile := func(sv *server) string {
		t.Helper()
		res, err := http.Get(sv.base + "/api/v1/item/" + importedItem(t, sv.base, "boxes") + "/tiles/zxy/3/1/1")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("tile: %d", res.StatusCode)
		}
		return res.Header.Get("X-Tile-Cache")
	}
	sv := startServer(t, args, key)
	if got := tile(sv); got != "miss" {
		t.Errorf("first run: %s", got)
	}
	// The disk write is asynchronous: wait (bounded) until it is done.
	for i := 0; ; i++ {
		var info struct {
			TileCache struct {
				Disk struct {
					Enabled bool
					Writes  int
				}
			}
		}
		getJSON(t, sv.base+"/api/v1/large_image/cache?token=tok", &info)
		if !info.TileCache.Disk.Enabled {
			t.Fatalf("disk tier not on: %+v", info)
		}
		if info.TileCache.Disk.Writes > 0 {
			break
		}
		if i == 500 {
			t.Fatal("the tile was never written to disk")
		}
		time.Sleep(10 * time.Millisecond)
	}
	sv.stop(t)

	sv = startServer(t, args, key)
	if got := tile(sv); got != "hit-disk" {
		t.Errorf("second run, same key: %s", got)
	}
	sv.stop(t)

	sv = startServer(t, args, map[string]string{"TILESERVER_CACHE_KEY": strings.Repeat("77", 32)})
	if got := tile(sv); got != "miss" {
		t.Errorf("third run, another key: %s", got)
	}
	sv.stop(t)

	// A key of the wrong length stops start-up with a clear error.
	err := run(context.Background(), append(args, "--addr", "127.0.0.1:0"),
		envMap(map[string]string{"TILESERVER_CACHE_KEY": "00ff"}), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "32 bytes") {
		t.Errorf("short key: %v", err)
	}
}

// TestRunRegionsFromPyramid: with --regions-from-pyramid a region at 5× of
// a slide storing only 20× is made from the zxy tiles of level 2 (so
// those tiles are in the cache afterwards); by default it is made from
// full resolution, as large_image makes it, and leaves them uncached.
func TestRunRegionsFromPyramid(t *testing.T) {
	dir := t.TempDir()
	slides := slideRoot(t, dir, "libvips/CMU-1-Small-Region.svs", "cmu.svs")
	get := func(u string) *http.Response {
		t.Helper()
		res, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("%s: %d", u, res.StatusCode)
		}
		return res
	}
	for _, c := range []struct {
		flag string
		want string
	}{{"--regions-from-pyramid", "hit-memory"}, {"--regions-from-pyramid=false", "miss"}} {
		sv := startServer(t, []string{"--data", filepath.Join(dir, "data"+c.flag), "--slides", slides,
			"--warm-on-import=false", "--prefetch=false", c.flag}, nil)
		item := sv.base + "/api/v1/item/" + importedItem(t, sv.base, "cmu")
		get(item + "/tiles/region?magnification=5&encoding=PNG")
		if got := get(item + "/tiles/zxy/2/1/1").Header.Get("X-Tile-Cache"); got != c.want {
			t.Errorf("%s: tile 2/1/1 after the region at 5×: %s, want %s", c.flag, got, c.want)
		}
		sv.stop(t)
	}
}
