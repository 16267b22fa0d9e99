package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tileserver/tileserver/tilecache"
	"github.com/tileserver/tileserver/tilesource/dicom/dicomweb"
)

// settings are the command's options after merging flags, environment,
// the YAML file and defaults (in that order of precedence).
type settings struct {
	Addr             string
	DebugAddr        string
	Data             string
	Slides           string
	AdminToken       string
	ConfigFile       string
	Cache            string
	Memcached        []string
	CacheMemoryBytes int64
	CachePolicy      string
	CacheDoorkeeper  bool
	// RegionsFromPyramid is pipeline.Config.RegionsFromPyramid.
	RegionsFromPyramid bool
	MaxAge             int
	LogLevel           string
	// memcached tuning and the open-source cache budget.
	MemcachedTTL     time.Duration
	MemcachedMaxItem int64
	MemcachedTimeout time.Duration
	MemcachedPool    int
	SourceCacheBytes int64
	// The persistent disk tier: on when DiskDir is set; DiskKey (32 bytes)
	// encrypts its entries.
	DiskDir      string
	DiskBytes    int64
	DiskTTL      time.Duration
	CacheKeyFile string
	DiskKey      []byte
	// Background work (see girder.BackgroundConfig).
	WarmOnImport    bool
	WarmWorkers     int
	Prefetch        bool
	PrefetchWorkers int
	PrecacheBatch   int
	PrecacheAhead   int
	// Slides in object storage (s3.go).
	S3 s3Settings
	// The global work budget (pixels, 0 = from the cores), its wait queue
	// (0 = from the cores) and the per-request deadline.
	WorkPixels     int64
	WorkQueue      int
	RequestTimeout time.Duration
	// DICOMweb archives served as collections, listed again every
	// DICOMwebRefresh (0: only at start and on PUT large_image/import).
	DICOMweb        []dicomweb.Archive
	DICOMwebRefresh time.Duration
	// Limits, timeouts, body size, CORS and the memory limit (guards.go).
	Guards guardSettings
}

// option is one setting: its flag name (also the YAML key, and the
// environment variable TILESERVER_<NAME> with dashes as underscores), its
// default and usage.
type option struct {
	name, def, usage string
}

var options = []option{
	{"addr", "127.0.0.1:8080", "listen address host:port"},
	{"debug-addr", "", "separate listen address of Go's profiles (/debug/pprof/), e.g. 127.0.0.1:6060; empty turns it off, and heap-profile sampling with it (never expose it)"},
	{"data", "./data", "data directory (item database)"},
	{"slides", "./data/slides", "slide root directory mirrored as folders and items, or s3://bucket/prefix?endpoint=host:port&region=… (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_SHARED_CREDENTIALS_FILE)"},
	{"slides-block-cache", "256M", "memory for blocks of slide objects read from object storage (headers, directories; suffixes K, M, G)"},
	{"slides-local-cache", "", "directory of local copies of objects only OpenSlide or libvips can read (default <data>/slide-copies)"},
	{"slides-local-cache-size", "4G", "budget of those local copies in bytes (0 refuses such formats on object storage)"},
	{"admin-token", "", "token required by admin routes (Girder-Token header or ?token=); empty disables them"},
	{"config", "", "YAML file whose keys are these flag names"},
	{"cache", "", "tile cache tiers: none, memory, memcached or memory+memcached (default memory, memory+memcached when --memcached is set)"},
	{"memcached", "", "memcached servers host:port,host:port,…"},
	{"cache-memory-bytes", "0", "in-process tile cache budget in bytes (suffixes K, M, G, T; 0 = from total memory)"},
	{"cache-policy", "tinylfu", "in-process eviction policy: tinylfu or lru"},
	{"cache-doorkeeper", "true", "keep a tile passed on as stored in a local slide in the in-process tier from its second recent request, not its first (tiles requested once take no memory; re-reading one costs one read of the file)"},
	{"regions-from-pyramid", "false", "make regions, thumbnails, DeepZoom and IIIF images from the pyramid level they need, made as the zxy tiles of that level are (and sharing their cache), not from the finest stored level as large_image does: several times faster below the stored levels once their tiles exist, pixels close to large_image's"},
	{"max-age", "3600", "Cache-Control max-age of image responses, seconds"},
	{"log-level", "info", "log level: debug, info, warn or error"},
	{"disk-cache", "", "directory of the persistent disk tile cache tier (behind memory and memcached); empty turns the tier off"},
	{"disk-cache-size", "0", "disk tier budget in bytes (suffixes K, M, G, T; 0 = a quarter of the free space, at most 10 GiB)"},
	{"disk-cache-ttl", "0", "how long a disk entry is served, e.g. 72h or 7d (0 = 7 days)"},
	{"memcached-ttl", "0", "memcached expiry of tiles, e.g. 24h or 30d (0 = none: memcached evicts least recently used)"},
	{"memcached-max-item", "1M", "largest tile written to memcached; match memcached's -I (suffixes K, M)"},
	{"memcached-timeout", "200ms", "timeout of each memcached operation; a slower answer is a miss"},
	{"memcached-pool", "64", "idle connections kept per memcached server (about the number of concurrent requests)"},
	{"source-cache-bytes", "0", "memory budget of open slides (decoders, caches, parsed directories) in bytes (0 = 1/16 of total memory)"},
	{"cache-key-file", "", "file holding the 32-byte key (hex, base64 or raw bytes) that encrypts disk entries; " +
		"alternatively put the key itself in " + cacheKeyEnv},
	{"warm-on-import", "true", "warm imported items in the background: thumbnail, levels of up to 64 tiles, associated images"},
	{"warm-workers", "1", "items warmed at once (warm-up yields to real requests)"},
	{"prefetch", "true", "prefetch the tiles around each viewer's view and the next level in, only while the server is idle"},
	{"prefetch-workers", "1", "prefetch goroutines"},
	{"precache-batch", "5", "worklist (POST large_image/cache/precache) items warmed per batch"},
	{"precache-ahead", "15", "how many worklist items past the furthest opened one may be warmed"},
	{"work-pixels", "0", "pixels decoded, resampled or encoded at once across all requests (suffixes K, M, G; 0 = 1M per core)"},
	{"work-queue", "0", "pixel work waiting for the budget beyond which requests get 503 + Retry-After (0 = 64 per core)"},
	{"request-timeout", "60s", "deadline of each image request and of each shared tile production (503 + Retry-After past it)"},
	{"dicomweb", "", "DICOMweb archive NAME=URL served as a collection (repeat the flag, or separate with commas); " +
		"credentials in TILESERVER_DICOMWEB_<NAME>_BEARER or _BASIC (user:password), or in files named by _BEARER_FILE or _BASIC_FILE"},
	{"dicomweb-refresh", "10m", "how often the DICOMweb archives are listed again (0 = only at start and on PUT large_image/import)"},
}

// listOptions may be given several times on the command line; the values
// are joined with commas, as in the environment.
var listOptions = map[string]bool{"dicomweb": true}

// textFlag is a flag.Value keeping the text it is given, checked with the
// other sources' values once they are merged.
type textFlag struct{ p *string }

func (f textFlag) String() string {
	if f.p == nil {
		return ""
	}
	return *f.p
}

func (f textFlag) Set(v string) error {
	*f.p = v
	return nil
}

// listFlag is a textFlag that appends each use to a comma-separated list.
type listFlag struct{ textFlag }

func (f listFlag) Set(v string) error {
	if *f.p != "" {
		v = *f.p + "," + v
	}
	*f.p = v
	return nil
}

// boolFlag is a switch: given alone (--prefetch) it is "true"; with a
// value (--prefetch=false) it keeps the text.
type boolFlag struct{ textFlag }

// IsBoolFlag lets the flag package accept the flag without a value.
func (f boolFlag) IsBoolFlag() bool { return true }

// cacheKeyEnv holds the disk tier key itself (hex or base64); it is not a
// flag so the key never shows in a process list.
const cacheKeyEnv = "TILESERVER_CACHE_KEY"

func envName(name string) string {
	return "TILESERVER_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// loadSettings merges the sources of configuration: flag > environment >
// YAML file > default.
func loadSettings(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (settings, error) {
	fs := flag.NewFlagSet("tileserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	flagVals := map[string]*string{}
	for _, o := range options {
		if listOptions[o.name] {
			p := new(string)
			fs.Var(listFlag{textFlag{p}}, o.name, o.usage+" (env "+envName(o.name)+")")
			flagVals[o.name] = p
			continue
		}
		if o.def == "true" || o.def == "false" {
			p := new(string)
			*p = o.def
			fs.Var(boolFlag{textFlag{p}}, o.name, o.usage+" (env "+envName(o.name)+")")
			flagVals[o.name] = p
			continue
		}
		flagVals[o.name] = fs.String(o.name, o.def, o.usage+" (env "+envName(o.name)+")")
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: tileserver [flags]\n"+
			"       tileserver import-dicomweb --url URL --study UID --series UID [flags] (see --help there)\n\n"+
			"Serves the Girder large_image tile API for the slides under --slides.\n"+
			"Every flag can also be set as an environment variable TILESERVER_<FLAG>\n"+
			"(upper case, dashes as underscores) or as a key of the --config YAML file;\n"+
			"a flag wins over the environment, which wins over the file. The disk tier's\n"+
			"encryption key may be given in "+cacheKeyEnv+" instead of --cache-key-file.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return settings{}, err
	}
	if fs.NArg() > 0 {
		return settings{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	vals := map[string]string{}
	for _, o := range options {
		vals[o.name] = o.def
	}
	cfgPath, _ := lookupEnv(envName("config"))
	if set["config"] {
		cfgPath = *flagVals["config"]
	}
	if cfgPath != "" {
		file, err := readYAML(cfgPath)
		if err != nil {
			return settings{}, err
		}
		for k, v := range file {
			vals[k] = v
		}
	}
	for _, o := range options {
		if v, ok := lookupEnv(envName(o.name)); ok {
			vals[o.name] = v
		}
		if set[o.name] {
			vals[o.name] = *flagVals[o.name]
		}
	}
	vals["config"] = cfgPath
	s, err := parseSettings(vals)
	if err != nil {
		return s, err
	}
	if s.DICOMweb, err = parseArchives(vals["dicomweb"], lookupEnv); err != nil {
		return s, err
	}
	keyEnv, hasKeyEnv := lookupEnv(cacheKeyEnv)
	if s.DiskKey, err = loadDiskKey(s.CacheKeyFile, keyEnv, hasKeyEnv && keyEnv != ""); err != nil {
		return s, err
	}
	return s, nil
}

// loadDiskKey reads the disk tier key from the key file or the
// environment; neither gives nil (no encryption).
func loadDiskKey(file, env string, hasEnv bool) ([]byte, error) {
	switch {
	case file != "" && hasEnv:
		return nil, fmt.Errorf("both --cache-key-file and %s are set: use one", cacheKeyEnv)
	case hasEnv:
		k, err := tilecache.ParseDiskKey(env)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cacheKeyEnv, err)
		}
		return k, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--cache-key-file: %w", err)
		}
		k, err := tilecache.ParseDiskKey(string(b))
		if err != nil && len(b) == 32 && !isText(b) {
			// The raw key; a 32-character text is a mistyped hex or
			// base64 key, not a raw one.
			return b, nil
		}
		if err != nil {
			return nil, fmt.Errorf("--cache-key-file %s: %w", file, err)
		}
		return k, nil
	}
	return nil, nil
}

// readYAML reads a flat YAML mapping of option names to scalars (a list is
// allowed for memcached).
func readYAML(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	known := map[string]bool{}
	for _, o := range options {
		known[o.name] = true
	}
	out := map[string]string{}
	var unknown []string
	for k, v := range raw {
		if !known[k] || k == "config" {
			unknown = append(unknown, k)
			continue
		}
		switch t := v.(type) {
		case nil:
			out[k] = ""
		case []any:
			parts := make([]string, len(t))
			for i, p := range t {
				parts[i] = fmt.Sprint(p)
			}
			out[k] = strings.Join(parts, ",")
		case map[string]any:
			return nil, fmt.Errorf("config %s: key %q must be a scalar", path, k)
		default:
			out[k] = fmt.Sprint(t)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("config %s: unknown keys %s", path, strings.Join(unknown, ", "))
	}
	return out, nil
}

func parseSettings(v map[string]string) (settings, error) {
	s := settings{
		Addr: v["addr"], DebugAddr: v["debug-addr"], Data: v["data"], Slides: v["slides"], AdminToken: v["admin-token"],
		ConfigFile: v["config"], Cache: v["cache"], CachePolicy: v["cache-policy"], LogLevel: v["log-level"],
	}
	for _, m := range strings.Split(v["memcached"], ",") {
		if m = strings.TrimSpace(m); m != "" {
			s.Memcached = append(s.Memcached, m)
		}
	}
	if s.Cache == "" {
		s.Cache = "memory"
		if len(s.Memcached) > 0 {
			s.Cache = "memory+memcached"
		}
	}
	switch s.Cache {
	case "none", "memory":
	case "memcached", "memory+memcached":
		if len(s.Memcached) == 0 {
			return s, fmt.Errorf("--cache %s needs --memcached", s.Cache)
		}
	default:
		return s, fmt.Errorf("--cache: unknown mode %q (none, memory, memcached, memory+memcached)", s.Cache)
	}
	var err error
	if s.CacheMemoryBytes, err = parseBytes(v["cache-memory-bytes"]); err != nil {
		return s, fmt.Errorf("--cache-memory-bytes: %w", err)
	}
	if s.MaxAge, err = strconv.Atoi(strings.TrimSpace(v["max-age"])); err != nil || s.MaxAge < 0 {
		return s, fmt.Errorf("--max-age: %q is not a number of seconds", v["max-age"])
	}
	s.DiskDir, s.CacheKeyFile = strings.TrimSpace(v["disk-cache"]), strings.TrimSpace(v["cache-key-file"])
	if s.DiskBytes, err = parseBytes(v["disk-cache-size"]); err != nil {
		return s, fmt.Errorf("--disk-cache-size: %w", err)
	}
	if s.DiskTTL, err = parseDuration(v["disk-cache-ttl"]); err != nil {
		return s, fmt.Errorf("--disk-cache-ttl: %w", err)
	}
	if s.DICOMwebRefresh, err = parseDuration(v["dicomweb-refresh"]); err != nil {
		return s, fmt.Errorf("--dicomweb-refresh: %w", err)
	}
	if s.MemcachedTTL, err = parseDuration(v["memcached-ttl"]); err != nil {
		return s, fmt.Errorf("--memcached-ttl: %w", err)
	}
	if s.MemcachedTimeout, err = parseDuration(v["memcached-timeout"]); err != nil || s.MemcachedTimeout <= 0 {
		return s, fmt.Errorf("--memcached-timeout: %q is not a positive duration", v["memcached-timeout"])
	}
	if s.MemcachedMaxItem, err = parseBytes(v["memcached-max-item"]); err != nil || s.MemcachedMaxItem <= 0 {
		return s, fmt.Errorf("--memcached-max-item: %q is not a positive size", v["memcached-max-item"])
	}
	if s.SourceCacheBytes, err = parseBytes(v["source-cache-bytes"]); err != nil {
		return s, fmt.Errorf("--source-cache-bytes: %w", err)
	}
	for _, b := range []struct {
		name string
		dst  *bool
	}{{"warm-on-import", &s.WarmOnImport}, {"prefetch", &s.Prefetch}, {"cache-doorkeeper", &s.CacheDoorkeeper},
		{"regions-from-pyramid", &s.RegionsFromPyramid}} {
		if *b.dst, err = strconv.ParseBool(strings.TrimSpace(v[b.name])); err != nil {
			return s, fmt.Errorf("--%s: %q is not true or false", b.name, v[b.name])
		}
	}
	for _, n := range []struct {
		name string
		dst  *int
	}{{"warm-workers", &s.WarmWorkers}, {"prefetch-workers", &s.PrefetchWorkers}, {"memcached-pool", &s.MemcachedPool},
		{"precache-batch", &s.PrecacheBatch}, {"precache-ahead", &s.PrecacheAhead}} {
		if *n.dst, err = strconv.Atoi(strings.TrimSpace(v[n.name])); err != nil || *n.dst < 1 {
			return s, fmt.Errorf("--%s: %q is not a positive number", n.name, v[n.name])
		}
	}
	if s.S3, err = parseS3Settings(v); err != nil {
		return s, err
	}
	if s.WorkPixels, err = parseBytes(v["work-pixels"]); err != nil {
		return s, fmt.Errorf("--work-pixels: %w", err)
	}
	if s.WorkQueue, err = strconv.Atoi(strings.TrimSpace(v["work-queue"])); err != nil || s.WorkQueue < 0 {
		return s, fmt.Errorf("--work-queue: %q is not a number", v["work-queue"])
	}
	if s.RequestTimeout, err = parseDuration(v["request-timeout"]); err != nil || s.RequestTimeout <= 0 {
		return s, fmt.Errorf("--request-timeout: %q is not a positive duration", v["request-timeout"])
	}
	if s.Guards, err = parseGuards(v); err != nil {
		return s, err
	}
	if s.Addr == "" || s.Data == "" || s.Slides == "" {
		return s, errors.New("--addr, --data and --slides must not be empty")
	}
	return s, nil
}

// isText reports whether b is printable ASCII (and white space).
func isText(b []byte) bool {
	for _, c := range b {
		if (c < 0x20 || c > 0x7e) && c != '\n' && c != '\r' && c != '\t' {
			return false
		}
	}
	return true
}

// parseDuration reads a Go duration, or a whole number of days such as
// "7d"; "" is 0.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q is not a duration", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration (such as 72h or 7d)", s)
	}
	return d, nil
}

// parseBytes reads a byte count with an optional binary suffix (K, M, G, T,
// optionally followed by "iB" or "B").
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	u := strings.ToUpper(s)
	u = strings.TrimSuffix(strings.TrimSuffix(u, "IB"), "B")
	mult := int64(1)
	if n := len(u); n > 0 {
		switch u[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			u = u[:n-1]
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(u), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a byte count", s)
	}
	return n * mult, nil
}
