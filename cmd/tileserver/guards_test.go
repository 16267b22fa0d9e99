package main

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/tileserver/tileserver/tilesource/limits"
)

func TestGuardSettings(t *testing.T) {
	s, err := loadSettings(nil, envMap(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	g := s.Guards
	if g.ReadTimeout != 30*time.Second || g.WriteTimeout != 2*time.Minute || g.IdleTimeout != 2*time.Minute ||
		g.MaxBodyBytes != 1<<20 || g.MaxLoop != 1000 || g.MaxStyleBands != 64 || g.CORSOrigins != nil || g.MemoryLimit != 0 {
		t.Errorf("defaults: %+v", g)
	}
	s, err = loadSettings([]string{"--cors-origins", "*", "--max-output-pixels", "1M", "--memory-limit", "2G"},
		envMap(map[string]string{"TILESERVER_READ_TIMEOUT": "5s"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if g := s.Guards; strings.Join(g.CORSOrigins, ",") != "*" || g.MaxOutputPixels != 1<<20 || g.MemoryLimit != 2<<30 ||
		g.ReadTimeout != 5*time.Second {
		t.Errorf("set: %+v", g)
	}
	for _, args := range [][]string{{"--read-timeout", "0"}, {"--max-loop", "0"}, {"--max-body-bytes", "big"}, {"--max-image-side", "-1"}} {
		if _, err := loadSettings(args, envMap(nil), io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestLimitsFromBudgets(t *testing.T) {
	defer limits.Set(limits.Limits{})
	g := guardSettings{MaxLoop: 1000, MaxStyleBands: 64}
	for _, c := range []struct {
		cache, want int64
	}{{192 << 20, 192 << 20 / 8}, {1 << 20, 4096 * 4096}, {64 << 30, 8192 * 8192}} {
		if l := applyLimits(g, c.cache); l.MaxOutputPixels != c.want || l.MaxLoop != 1000 {
			t.Errorf("budget %d: %+v, want %d output pixels", c.cache, l, c.want)
		}
	}
	g.MaxOutputPixels = 12345
	if l := applyLimits(g, 1<<30); l.MaxOutputPixels != 12345 || limits.Get().MaxOutputPixels != 12345 {
		t.Errorf("explicit limit: %+v", l)
	}
}

func TestMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(math.MaxInt64)
	l := limits.Limits{MaxOutputPixels: 1 << 20}
	n, from := applyMemoryLimit(guardSettings{}, 192<<20, l, envMap(nil))
	if want := int64(192<<20 + memoryOverhead + 8<<20); n != want || from != "budgets" || debug.SetMemoryLimit(-1) != want {
		t.Errorf("derived: %d from %s, want %d", n, from, want)
	}
	debug.SetMemoryLimit(700 << 20) // as the runtime does for GOMEMLIMIT=700MiB
	n, from = applyMemoryLimit(guardSettings{}, 192<<20, l, envMap(map[string]string{"GOMEMLIMIT": "700MiB"}))
	if n != 700<<20 || from != "GOMEMLIMIT" {
		t.Errorf("GOMEMLIMIT: %d from %s", n, from)
	}
	n, from = applyMemoryLimit(guardSettings{MemoryLimit: 1 << 30}, 192<<20, l, envMap(map[string]string{"GOMEMLIMIT": "700MiB"}))
	if n != 1<<30 || from != "--memory-limit" || debug.SetMemoryLimit(-1) != 1<<30 {
		t.Errorf("flag: %d from %s", n, from)
	}
}

// The command's server drops a client that sends its body too slowly,
// and answers every response with nosniff.
func TestServerTimeouts(t *testing.T) {
	defer limits.Set(limits.Limits{})
	defer debug.SetMemoryLimit(math.MaxInt64)
	dir := t.TempDir()
	slides := filepath.Join(dir, "slides")
	if err := os.MkdirAll(slides, 0o755); err != nil {
		t.Fatal(err)
	}
	sv := startServer(t, []string{"--data", filepath.Join(dir, "data"), "--slides", slides, "--admin-token", "tok",
		"--read-timeout", "300ms", "--warm-on-import=false", "--prefetch=false"}, nil)
	defer sv.stop(t)

	res, err := http.Get(sv.base + "/api/v1/item")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers %v", res.Header)
	}

	c, err := net.Dial("tcp", strings.TrimPrefix(sv.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Write([]byte("POST /api/v1/large_image/import HTTP/1.1\r\nHost: x\r\nGirder-Token: tok\r\n" +
		"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"))
	if err != nil {
		t.Fatal(err)
	}
	// The server must end the exchange on its own; this deadline only
	// keeps a broken server from hanging the test.
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server kept a slow body open")
	}
	if !bytes.HasPrefix(got, []byte("HTTP/1.1 400 ")) || !bytes.Contains(got, []byte("The request body could not be read.")) {
		t.Fatalf("answer to a cut-off body: %q", got)
	}
}
