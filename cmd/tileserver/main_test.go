package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	slides := filepath.Join(dir, "slides")
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "testdata", "openslide-python", "boxes.tiff"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(slides, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(slides, "boxes.tiff"), data, 0o644); err != nil {
		t.Fatal(err)
	}
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
	res, err = http.Get(base + "/")
	if err != nil || res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("viewer page: %v %v", err, res)
	}
	res.Body.Close()
	res, err = http.Get(base + "/metrics")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("metrics: %v %v", err, res)
	}
	res.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}
