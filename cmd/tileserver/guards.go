package main

// The settings that bound what one request can cost: output-pixel, decode
// and loop limits (package limits), HTTP timeouts and body size, CORS, and
// the Go memory limit derived from the cache budgets.

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/tileserver/tileserver/tilesource/limits"
)

// guardSettings are the parsed guard options.
type guardSettings struct {
	MaxOutputPixels int64
	MaxDecodedBytes int64
	MaxImageSide    int64
	MaxLoop         int
	MaxStyleBands   int
	MemoryLimit     int64
	ReadTimeout     time.Duration
	WriteTimeout    time.Duration
	IdleTimeout     time.Duration
	MaxBodyBytes    int64
	CORSOrigins     []string
}

var guardOptions = []option{
	{"max-output-pixels", "0", "largest image a route makes, in pixels: regions, thumbnails, fill canvases, associated images and their intermediates " +
		"(0 = (cache-memory-bytes + source-cache-bytes) / 8, between 4096² and 8192²)"},
	{"max-decoded-bytes", "0", "largest decoded tile, strip or frame read from a file, in bytes (0 = 256M)"},
	{"max-image-side", "0", "largest image width or height a file may declare (0 = 1048576)"},
	{"max-loop", "1000", "largest request-driven count: frameList entries, quad_info strides and groups"},
	{"max-style-bands", "64", "most bands a style may list (each is a pass over every pixel)"},
	{"memory-limit", "0", "Go memory limit (GOMEMLIMIT) in bytes, suffixes K, M, G, T (0 = GOMEMLIMIT if set, " +
		"else cache-memory-bytes + source-cache-bytes + 256M + 8 bytes × max-output-pixels)"},
	{"read-timeout", "30s", "longest time to read a request, body included"},
	{"write-timeout", "2m", "longest time from the end of a request's headers to the end of its response"},
	{"idle-timeout", "2m", "how long an idle keep-alive connection is kept"},
	{"max-body-bytes", "1M", "largest request body (413 beyond)"},
	{"cors-origins", "", "origins allowed to read responses from a browser page (comma-separated; * for any, as IIIF viewers need); empty turns CORS off"},
}

func init() { options = append(options, guardOptions...) }

func parseGuards(v map[string]string) (guardSettings, error) {
	var g guardSettings
	var err error
	for _, b := range []struct {
		name string
		dst  *int64
	}{{"max-output-pixels", &g.MaxOutputPixels}, {"max-decoded-bytes", &g.MaxDecodedBytes},
		{"memory-limit", &g.MemoryLimit}, {"max-body-bytes", &g.MaxBodyBytes}} {
		if *b.dst, err = parseBytes(v[b.name]); err != nil {
			return g, fmt.Errorf("--%s: %w", b.name, err)
		}
	}
	if g.MaxImageSide, err = strconv.ParseInt(strings.TrimSpace(v["max-image-side"]), 10, 64); err != nil || g.MaxImageSide < 0 {
		return g, fmt.Errorf("--max-image-side: %q is not a number of pixels", v["max-image-side"])
	}
	for _, n := range []struct {
		name string
		dst  *int
	}{{"max-loop", &g.MaxLoop}, {"max-style-bands", &g.MaxStyleBands}} {
		if *n.dst, err = strconv.Atoi(strings.TrimSpace(v[n.name])); err != nil || *n.dst < 1 {
			return g, fmt.Errorf("--%s: %q is not a positive number", n.name, v[n.name])
		}
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{"read-timeout", &g.ReadTimeout}, {"write-timeout", &g.WriteTimeout}, {"idle-timeout", &g.IdleTimeout}} {
		if *d.dst, err = parseDuration(v[d.name]); err != nil || *d.dst <= 0 {
			return g, fmt.Errorf("--%s: %q is not a positive duration", d.name, v[d.name])
		}
	}
	for _, o := range strings.Split(v["cors-origins"], ",") {
		if o = strings.TrimSpace(o); o != "" {
			g.CORSOrigins = append(g.CORSOrigins, o)
		}
	}
	return g, nil
}

// Bounds of the derived output-pixel limit: a 4096² region is always
// possible, and no default lets one request make more than 8192² pixels.
const (
	minDefaultOutputPixels = 4096 * 4096
	maxDefaultOutputPixels = 8192 * 8192
)

// memoryOverhead is what the process needs beyond the cache budgets when
// nothing large is in flight: runtime, HTTP buffers, parsed slides' working
// sets, encoders. The memory limit adds 8 bytes per output pixel on top,
// room for one largest region and its intermediate.
const memoryOverhead = 256 << 20

// applyLimits sets the request and file limits from the settings; cache
// is the tile cache's in-process budget plus the source cache budget.
func applyLimits(g guardSettings, cache int64) limits.Limits {
	l := limits.Limits{MaxOutputPixels: g.MaxOutputPixels, MaxDecodedBytes: g.MaxDecodedBytes,
		MaxImageSide: g.MaxImageSide, MaxLoop: g.MaxLoop, MaxStyleBands: g.MaxStyleBands}
	if l.MaxOutputPixels == 0 {
		l.MaxOutputPixels = min(max(cache/8, minDefaultOutputPixels), maxDefaultOutputPixels)
	}
	limits.Set(l)
	return limits.Get()
}

// applyMemoryLimit sets the Go runtime's soft memory limit: the flag, else
// the GOMEMLIMIT environment variable (which the runtime has already
// applied), else the budgets plus the overhead. It returns the limit and
// where it came from.
func applyMemoryLimit(g guardSettings, cache int64, l limits.Limits, lookupEnv func(string) (string, bool)) (int64, string) {
	if g.MemoryLimit > 0 {
		debug.SetMemoryLimit(g.MemoryLimit)
		return g.MemoryLimit, "--memory-limit"
	}
	if v, ok := lookupEnv("GOMEMLIMIT"); ok && strings.TrimSpace(v) != "" {
		return debug.SetMemoryLimit(-1), "GOMEMLIMIT"
	}
	n := cache + memoryOverhead + 8*l.MaxOutputPixels
	debug.SetMemoryLimit(n)
	return n, "budgets"
}

// logGuards reports the limits in force at start-up.
func logGuards(log *slog.Logger, l limits.Limits, memLimit int64, memFrom string) {
	log.Info("limits", "max_output_pixels", l.MaxOutputPixels, "max_decoded_bytes", l.MaxDecodedBytes,
		"max_image_side", l.MaxImageSide, "max_loop", l.MaxLoop, "max_style_bands", l.MaxStyleBands, "memory_limit", memLimit, "memory_limit_from", memFrom)
}
