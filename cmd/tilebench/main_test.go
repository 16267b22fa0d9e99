package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tileserver/tileserver/bench/fakeserver"
	"github.com/tileserver/tileserver/bench/stats"
	"github.com/tileserver/tileserver/bench/suite"
	"github.com/tileserver/tileserver/bench/trace"
)

func runCmd(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func TestHelp(t *testing.T) {
	for _, c := range []string{"trace", "replay", "compare", "suite"} {
		_, stderr, err := runCmd(t, c, "--help")
		if !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr, "Usage: tilebench "+c) {
			t.Errorf("%s --help: %v\n%s", c, err, stderr)
		}
	}
	if out, _, err := runCmd(t, "--help"); err != nil || !strings.Contains(out, "tilebench compare") {
		t.Errorf("top-level help: %v %q", err, out)
	}
	if _, _, err := runCmd(t, "frobnicate"); err == nil {
		t.Error("unknown command accepted")
	}
}

func TestTraceCommandDeterministic(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")
	for _, p := range []string{a, b} {
		if _, _, err := runCmd(t, "trace", "--slide", "s:30000x20000", "--users", "3", "--views", "7", "--seed", "5", "--out", p); err != nil {
			t.Fatal(err)
		}
	}
	ba, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if !bytes.Equal(ba, bb) || len(ba) == 0 {
		t.Fatal("trace command is not deterministic")
	}
	tr, err := trace.Load(a)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Users() != 3 || len(tr.Views) != 21 || tr.Slides[0].Levels != 8 {
		t.Errorf("trace: %d users, %d views, slide %+v", tr.Users(), len(tr.Views), tr.Slides[0])
	}
}

// A short end-to-end replay against a real HTTP server that mimics the
// routes: metadata read from the server, JSON and plots written.
func TestReplayEndToEnd(t *testing.T) {
	srv := fakeserver.New(trace.Geometry("abc", 20000, 15000, 256))
	defer srv.Close()
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "run.json")
	out, stderr, err := runCmd(t, "replay", "--base", srv.URL, "--item", "abc", "--users", "2", "--views", "6",
		"--json", jsonPath, "--plots", dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	for _, want := range []string{"latency p99 ms", "hit rate", "viewport p50 ms", "tileCache.misses"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	rec, err := stats.LoadRecord(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Summary.Requests == 0 || rec.Summary.Requests != srv.Total() || rec.Summary.Errors != 0 {
		t.Errorf("summary %+v, server saw %d", rec.Summary, srv.Total())
	}
	if d := rec.Summary.ServerDelta()["tileCache.misses"]; int(d) != rec.Summary.Cache["miss"] {
		t.Errorf("server reports %v new misses, headers %d", d, rec.Summary.Cache["miss"])
	}
	if len(rec.Run.Results) != rec.Summary.Requests {
		t.Errorf("%d results saved for %d requests", len(rec.Run.Results), rec.Summary.Requests)
	}
	for _, f := range []string{"latency.png", "hitrate.png", "viewport.png"} {
		checkPNG(t, filepath.Join(dir, f))
	}
}

func checkPNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() < 400 || b.Dy() < 200 {
		t.Errorf("%s is %v", path, b)
	}
}

func TestCompare(t *testing.T) {
	sl := trace.Geometry("slide", 30000, 30000, 256)
	srv := fakeserver.New(sl)
	defer srv.Close()
	dir := t.TempDir()
	tp := filepath.Join(dir, "t.jsonl")
	if _, _, err := runCmd(t, "trace", "--slide", "slide:30000x30000", "--users", "2", "--views", "5", "--out", tp); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := runCmd(t, "compare", "--trace", tp, "--base", srv.URL,
		"--target", "ours=ours", "--target", "osdz="+srv.URL+"/slide_files/{level}/{x}_{y}.jpeg", "--json", filepath.Join(dir, "c.json"))
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if !strings.Contains(out, "req/s ratio") || !strings.Contains(out, "osdz") {
		t.Errorf("compare output:\n%s", out)
	}
	var recs []stats.Record
	b, _ := os.ReadFile(filepath.Join(dir, "c.json"))
	if err := json.Unmarshal(b, &recs); err != nil || len(recs) != 2 {
		t.Fatalf("compare json: %v (%d records)", err, len(recs))
	}
	tr, _ := trace.Load(tp)
	for _, r := range recs {
		if r.Summary.Requests != tr.Requests() || r.Summary.Errors != 0 {
			t.Errorf("%s: %d requests %d errors, trace has %d", r.Summary.Name, r.Summary.Requests, r.Summary.Errors, tr.Requests())
		}
	}
	// Both forms reach the same tiles: the second pass is all hits.
	if recs[1].Summary.Cache["hit-memory"] != tr.Requests() {
		t.Errorf("DeepZoom pass hit %d of %d", recs[1].Summary.Cache["hit-memory"], tr.Requests())
	}
}

// TestRealServer replays a short trace against the real tileserver's
// synthetic test item; it is skipped while the server does not build.
func TestRealServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the server")
	}
	bin := filepath.Join(t.TempDir(), "tileserver")
	build := exec.Command("go", "build", "-o", bin, "./cmd/tileserver")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Skipf("tileserver does not build yet: %s", firstLine(string(out)))
	}
	port, err := suite.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "slides"), 0o755)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	p, err := suite.Start(bin, []string{"--addr", fmt.Sprintf("127.0.0.1:%d", port), "--data", filepath.Join(dir, "data"),
		"--slides", filepath.Join(dir, "slides")}, filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if err := suite.WaitHTTP(context.Background(), p, base+"/api/v1/item/test/tiles", 60e9); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		t.Fatalf("%v\n%s", err, log)
	}
	q := "?sizeX=20000&sizeY=12000&encoding=JPEG"
	jsonPath := filepath.Join(dir, "run.json")
	_, stderr, err := runCmd(t, "replay", "--meta", base+"/api/v1/item/test/tiles"+q, "--item", "test",
		"--template", base+"/api/v1/item/test/tiles/zxy/{z}/{x}/{y}"+q, "--users", "2", "--views", "5", "--json", jsonPath)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	rec, err := stats.LoadRecord(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Summary.Requests == 0 || rec.Summary.Errors != 0 {
		t.Fatalf("real server: %d requests, %d errors (first: %s)", rec.Summary.Requests, rec.Summary.Errors, rec.Summary.FirstError)
	}
	for _, r := range rec.Run.Results {
		if r.Bytes < 100 {
			t.Errorf("tile %d/%d/%d is %d bytes", r.Z, r.X, r.Y, r.Bytes)
		}
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}
