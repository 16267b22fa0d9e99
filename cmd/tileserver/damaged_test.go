package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tileserver/tileserver/tilesource/damaged"
)

// corpusSources are the real files the damaged corpus is made from: TIFF
// strips and tiles, small pyramids, old-style JPEG, subsampled YCbCr, SVS
// and DICOM.
var corpusSources = []string{
	"large_image/grey10kx5k.tif",
	"large_image/yb10kx5k.zstd.tiff",
	"openslide-python/openslide_small.svs",
	"large_image/small_la.tiff",
	"large_image/test_orient1.tif",
	"openslide-python/boxes.tiff",
	"openslide-python/boxes_0.dcm",
	"libvips/ojpeg-strip.tif",
	"libvips/ojpeg-tile.tif",
	"libvips/subsampled.tif",
	"libvips/1bit.tif",
	"libvips/CMU-1-Small-Region.svs",
	"highdicom/sm_image.dcm",
	"highdicom/sm_image_jpegls.dcm",
	"libvips/dicom_test_image.dcm",
}

// corpusFull are the sources that keep every mutation: small stripped and
// tiled images, old-style JPEG, a small SVS and DICOM. The others keep
// the mutations in corpusTargeted, so that warm-up and requests over the
// whole corpus stay within a couple of minutes.
var corpusFull = map[string]bool{
	"large_image/small_la.tiff": true, "libvips/1bit.tif": true, "libvips/ojpeg-strip.tif": true, "libvips/ojpeg-tile.tif": true,
	"openslide-python/openslide_small.svs": true, "openslide-python/boxes_0.dcm": true,
	"highdicom/sm_image.dcm": true, "highdicom/sm_image_jpegls.dcm": true, "libvips/dicom_test_image.dcm": true,
}

// corpusTargeted are the mutations the other sources keep.
var corpusTargeted = []string{".ifd0-square-", "-tiles-65536", "-width-1048577", "-height-1048577", "-ojpeg-",
	"-next-self", "-subifd-self", "-rowsperstrip-", "-entries-huge", "-tileoffsets-all-4294967280", ".trunc50", ".random0"}

// corpusKeep are the mutations kept for the costliest sources: the exact
// cases of the report for the 10000×5000 stripped image (whose intact
// variants take long to warm up).
var corpusKeep = map[string][]string{
	"large_image/grey10kx5k.tif": {"-rowsperstrip-0", "-rowsperstrip-1.", "-bigstrips", "-width-1048577", "-ojpeg-",
		"-stripoffsets-all-4294967280", ".trunc50"},
}

// corpusMemCap is the address-space limit the server runs under.
const corpusMemCap = 3 << 30

// TestDamagedCorpus imports a generated corpus of damaged and crafted
// files into the real server binary, run under a memory cap, lets import
// and warm-up run, then requests metadata, tiles of every level,
// thumbnail, a region and the associated images of every item. The server
// must stay up and healthy and answer every request with 2xx, 4xx or 503,
// and afterwards still make an intact slide's tiles exactly as a server
// that never saw the corpus.
//
// With TILESERVER_CORPUS_EACH=1 every file runs in its own server and the
// test counts the files that crash it, answer 5xx or take over 30 s (how
// the corpus was measured against older code; slow, not part of make test).
func TestDamagedCorpus(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server")
	}
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Fatalf("prlimit (util-linux) is needed: %v", err)
	}
	shared := filepath.Join("..", "..", "..", "shared", "testdata")
	var srcs []damaged.Source
	for _, p := range corpusSources {
		b, err := os.ReadFile(filepath.Join(shared, p))
		if err != nil {
			t.Fatal(err)
		}
		src := damaged.Source{Name: filepath.Base(p), Data: b}
		if !corpusFull[p] {
			keep := corpusTargeted
			if k, ok := corpusKeep[p]; ok {
				keep = k
			}
			src.Keep = func(name string) bool {
				for _, m := range keep {
					if strings.Contains(name, m) {
						return true
					}
				}
				return false
			}
		}
		srcs = append(srcs, src)
	}
	files := damaged.Generate(srcs, 11, 3)
	if len(files) < 300 {
		t.Fatalf("only %d files generated", len(files))
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "tileserver")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	if os.Getenv("TILESERVER_CORPUS_EACH") == "1" {
		measureEach(t, bin, dir, files)
		return
	}
	slides := filepath.Join(dir, "slides")
	for _, f := range files {
		writeSlide(t, slides, f)
	}
	// One intact slide among them, checked after the corpus (below), and
	// openslide-python's unreadable.svs, whose stored JPEG tile has a
	// damaged header.
	intact := filepath.Join(dir, "intact")
	for _, c := range []struct{ src, dir, name string }{
		{"libvips/CMU-1-Small-Region.svs", filepath.Join(slides, "intact"), "intact.svs"},
		{"libvips/CMU-1-Small-Region.svs", intact, "intact.svs"},
		{"openslide-python/unreadable.svs", filepath.Join(slides, "unreadable"), "unreadable.svs"},
	} {
		b, err := os.ReadFile(filepath.Join(shared, c.src))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(c.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(c.dir, c.name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d damaged files", len(files))
	cs := startCapped(t, bin, dir, slides)
	defer cs.stop()
	res := cs.exercise(t)
	t.Logf("items %d, requests %d, refused at import %d, peak RSS %d MB, slowest %s (%s)",
		res.items, res.requests, len(files)+2-res.items, cs.peakRSS()>>20, res.slowest.Round(time.Millisecond), res.slowURL)
	for _, f := range res.failures {
		t.Error(f)
	}
	if err := cs.healthy(); err != nil {
		t.Fatal(err)
	}
	if rss := cs.peakRSS(); rss <= 0 || rss >= corpusMemCap {
		t.Errorf("peak RSS %d bytes, cap %d", rss, corpusMemCap)
	}

	// The damaged files must leave nothing behind that changes the tiles
	// of a good slide: after them, the intact slide's tiles of a level
	// the file lacks (made now: an encoding no warm-up uses) are the
	// bytes a server that never saw the corpus makes. A decoder handle
	// left broken by a damaged tile once failed every later synthesis.
	ref := startCapped(t, bin, dir, intact)
	defer ref.stop()
	const q = "?encoding=JPEG&jpegQuality=90"
	idOf := func(s *cappedServer, name string) string {
		t.Helper()
		code, b, _, err := s.get("/api/v1/item?text=" + name)
		var items []struct {
			ID   string `json:"_id"`
			Name string `json:"name"`
		}
		if err != nil || code != http.StatusOK || json.Unmarshal(b, &items) != nil {
			t.Fatalf("item %s: %d %v", name, code, err)
		}
		for _, it := range items {
			if it.Name == name {
				return it.ID
			}
		}
		t.Fatalf("item %s not listed: %s", name, b)
		return ""
	}
	// The damaged stored tile is an error as its PNG is, never its bytes.
	bad := "/api/v1/item/" + idOf(cs, "unreadable.svs") + "/tiles/zxy/0/0/0"
	for _, enc := range []string{"", "?encoding=PNG", "", ""} {
		code, b, _, err := cs.get(bad + enc)
		if err != nil || code != http.StatusNotFound || string(b) != `{"message":"Internal I/O failure: cannot decode tile 0, 0","type":"rest"}`+"\n" {
			t.Errorf("unreadable.svs tile%s: %d %v %.200q", enc, code, err, b)
		}
	}
	got, want := idOf(cs, "intact.svs"), idOf(ref, "intact.svs")
	for y := range 7 {
		for x := range 5 {
			path := fmt.Sprintf("/tiles/zxy/3/%d/%d%s", x, y, q)
			gc, gb, _, gerr := cs.get("/api/v1/item/" + got + path)
			wc, wb, _, werr := ref.get("/api/v1/item/" + want + path)
			if gerr != nil || werr != nil || gc != http.StatusOK || wc != http.StatusOK || !bytes.Equal(gb, wb) {
				t.Errorf("intact tile 3/%d/%d after the corpus: %d %v (%d bytes), fresh server %d %v (%d bytes)",
					x, y, gc, gerr, len(gb), wc, werr, len(wb))
			}
		}
	}
}

func writeSlide(t *testing.T, slides string, f damaged.File) {
	t.Helper()
	// One folder per source file keeps the tree readable; DICOM files get
	// one each, as the files of one folder that share a series are one
	// slide.
	sub := filepath.Join(slides, strings.SplitN(f.Name, ".", 2)[0])
	if strings.HasSuffix(f.Name, ".dcm") {
		sub = filepath.Join(sub, strings.TrimSuffix(f.Name, ".dcm"))
	}
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, f.Name), f.Data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// cappedServer is the server binary running under prlimit.
type cappedServer struct {
	cmd    *exec.Cmd
	base   string
	token  string
	exited chan struct{}
	stderr *tailBuffer
	client *http.Client
}

func startCapped(t *testing.T, bin, dir, slides string) *cappedServer {
	t.Helper()
	data, err := os.MkdirTemp(dir, "data")
	if err != nil {
		t.Fatal(err)
	}
	cs := &cappedServer{token: "corpus-token", exited: make(chan struct{}), stderr: &tailBuffer{max: 64 << 10},
		client: &http.Client{Timeout: 60 * time.Second}}
	cs.cmd = exec.Command("prlimit", "--as="+strconv.Itoa(corpusMemCap), "--",
		bin, "--addr", "127.0.0.1:0", "--data", data, "--slides", slides, "--log-level", "info",
		"--admin-token", cs.token, "--warm-workers", "2", "--cache-memory-bytes", "128M", "--source-cache-bytes", "64M")
	cs.cmd.Stderr = cs.stderr
	if p := os.Getenv("TILESERVER_CORPUS_LOG"); p != "" {
		// The whole server log, for looking into a run.
		f, err := os.OpenFile(p, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		cs.cmd.Stderr = io.MultiWriter(cs.stderr, f)
	}
	// As a deployment would: the runtime collects before the heap nears
	// the cap.
	cs.cmd.Env = append(os.Environ(), "GOMEMLIMIT=1GiB", "MALLOC_ARENA_MAX=2")
	out, err := cs.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		cs.cmd.Wait()
		close(cs.exited)
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cs.stop()
		t.Fatalf("no listening line: %v\n%s", err, cs.stderr)
	}
	go io.Copy(io.Discard, out)
	cs.base = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(line), "tileserver listening on "), "/")
	return cs
}

func (cs *cappedServer) stop() {
	if cs.cmd.Process != nil {
		cs.cmd.Process.Kill()
		<-cs.exited
	}
}

func (cs *cappedServer) alive() bool {
	select {
	case <-cs.exited:
		return false
	default:
		return true
	}
}

// peakRSS returns the process's peak resident set (VmHWM) in bytes; prlimit
// execs the server, so its pid is the server's.
func (cs *cappedServer) peakRSS() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cs.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return -1
}

func (cs *cappedServer) healthy() error {
	if !cs.alive() {
		return fmt.Errorf("server exited: %v\n%s", cs.cmd.ProcessState, cs.stderr)
	}
	res, err := cs.client.Get(cs.base + "/healthz")
	if err != nil {
		return fmt.Errorf("healthz: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz: %s", res.Status)
	}
	return nil
}

// getJSON fetches a JSON document; the status is returned whatever it is.
func (cs *cappedServer) get(path string) (int, []byte, time.Duration, error) {
	start := time.Now()
	req, _ := http.NewRequest(http.MethodGet, cs.base+path, nil)
	req.Header.Set("Girder-Token", cs.token)
	res, err := cs.client.Do(req)
	if err != nil {
		return 0, nil, time.Since(start), err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, time.Since(start), err
}

// waitWarm waits until the import is done and the warm-up of all n items
// has finished (twice in a row).
func (cs *cappedServer) waitWarm(ctx context.Context) error {
	for !cs.stderr.seen() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-cs.exited:
			return fmt.Errorf("server exited during import: %v\n%s", cs.cmd.ProcessState, cs.stderr)
		case <-time.After(100 * time.Millisecond):
		}
	}
	code, b, _, err := cs.get("/api/v1/item?text=.&limit=0")
	var items []any
	if err != nil || code != http.StatusOK || json.Unmarshal(b, &items) != nil {
		return fmt.Errorf("item list: %d %v", code, err)
	}
	if len(items) == 0 {
		return nil
	}
	calm := 0
	var last []struct{ Name, State string }
	for calm < 2 {
		select {
		case <-ctx.Done():
			var running []string
			for _, it := range last {
				if it.State == "running" {
					running = append(running, it.Name)
				}
			}
			return fmt.Errorf("warm-up not finished (%v), running: %s", ctx.Err(), strings.Join(running, " "))
		case <-cs.exited:
			return fmt.Errorf("server exited during import/warm-up: %v\n%s", cs.cmd.ProcessState, cs.stderr)
		case <-time.After(500 * time.Millisecond):
		}
		code, b, _, err := cs.get("/api/v1/large_image/cache/warm")
		if err != nil || code != http.StatusOK {
			calm = 0
			continue
		}
		var st struct {
			Queued, Running, Done, Failed, Skipped int
			Items                                  []struct{ Name, State string }
		}
		if json.Unmarshal(b, &st) != nil {
			return fmt.Errorf("warm status: %s", b)
		}
		last = st.Items
		if st.Queued == 0 && st.Running == 0 && st.Done+st.Failed+st.Skipped >= len(items) {
			calm++
		} else {
			calm = 0
		}
	}
	return nil
}

type corpusResult struct {
	items, requests int
	failures        []string
	slowest         time.Duration
	slowURL         string
	// failed and slow name the items with a failed answer and with an
	// answer over 30 s.
	failed, slow map[string]bool
}

// exercise waits for import and warm-up, then requests every item's routes
// with a few workers.
func (cs *cappedServer) exercise(t *testing.T) corpusResult {
	r := corpusResult{failed: map[string]bool{}, slow: map[string]bool{}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := cs.waitWarm(ctx); err != nil {
		r.failures = append(r.failures, err.Error())
		return r
	}
	code, b, _, err := cs.get("/api/v1/item?text=.&limit=0")
	if err != nil || code != http.StatusOK {
		r.failures = append(r.failures, fmt.Sprintf("item list: %d %v", code, err))
		return r
	}
	var items []struct {
		ID   string `json:"_id"`
		Name string `json:"name"`
	}
	if err := json.Unmarshal(b, &items); err != nil {
		r.failures = append(r.failures, "item list: "+err.Error())
		return r
	}
	r.items = len(items)
	var mu sync.Mutex
	check := func(name, path string) (int, []byte) {
		code, body, d, err := cs.get(path)
		mu.Lock()
		defer mu.Unlock()
		r.requests++
		if d > r.slowest {
			r.slowest, r.slowURL = d, name+" "+path
		}
		if d > 30*time.Second {
			r.slow[name] = true
		}
		switch {
		case err != nil:
			r.failures = append(r.failures, fmt.Sprintf("%s %s: %v", name, path, err))
			r.failed[name] = true
		case code >= 500 && code != http.StatusServiceUnavailable:
			r.failures = append(r.failures, fmt.Sprintf("%s %s: %d %.200s", name, path, code, body))
			r.failed[name] = true
		}
		return code, body
	}
	work := make(chan int)
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if !cs.alive() {
					continue
				}
				cs.exerciseItem(items[i].ID, items[i].Name, check)
			}
		}()
	}
	for i := range items {
		work <- i
	}
	close(work)
	wg.Wait()
	if !cs.alive() {
		r.failures = append(r.failures, fmt.Sprintf("server exited: %v\n%s", cs.cmd.ProcessState, cs.stderr))
	}
	return r
}

func (cs *cappedServer) exerciseItem(id, name string, check func(name, path string) (int, []byte)) {
	p := "/api/v1/item/" + id + "/tiles"
	code, b := check(name, p)
	check(name, p+"/internal_metadata")
	check(name, p+"/thumbnail")
	check(name, p+"/region?left=0&top=0&right=1000&bottom=700&width=256&height=256")
	if code == http.StatusOK {
		var md struct {
			Levels, SizeX, SizeY, TileWidth, TileHeight int
		}
		if json.Unmarshal(b, &md) == nil && md.Levels > 0 && md.Levels < 40 && md.TileWidth > 0 && md.TileHeight > 0 {
			for z := range md.Levels {
				check(name, fmt.Sprintf("%s/zxy/%d/0/0", p, z))
				s := md.Levels - 1 - z
				cols := (md.SizeX>>s + md.TileWidth - 1) / md.TileWidth
				rows := (md.SizeY>>s + md.TileHeight - 1) / md.TileHeight
				if cols > 1 || rows > 1 {
					check(name, fmt.Sprintf("%s/zxy/%d/%d/%d", p, z, max(cols-1, 0), max(rows-1, 0)))
				}
			}
		}
	}
	code, b = check(name, p+"/images")
	var names []string
	if code == http.StatusOK && json.Unmarshal(b, &names) == nil {
		for _, n := range names {
			check(name, p+"/images/"+n)
			check(name, p+"/images/"+n+"/metadata")
		}
	}
}

// measureEach runs the files in servers of twenty files each, and each file
// of a batch that crashed its server in a server of its own, and counts
// the files that crash the server, get a 5xx answer (or none) or take over
// 30 s to answer.
func measureEach(t *testing.T, bin, dir string, files []damaged.File) {
	crashed, failed, slow := map[string]bool{}, map[string]bool{}, map[string]bool{}
	n := 0
	run := func(batch []damaged.File) bool {
		n++
		slides := filepath.Join(dir, fmt.Sprintf("each%d", n))
		for _, f := range batch {
			writeSlide(t, slides, f)
		}
		defer os.RemoveAll(slides)
		cs := startCapped(t, bin, dir, slides)
		defer cs.stop()
		res := cs.exercise(t)
		for k := range res.failed {
			failed[k] = true
		}
		for k := range res.slow {
			slow[k] = true
		}
		return cs.alive()
	}
	for i := 0; i < len(files); i += 20 {
		batch := files[i:min(i+20, len(files))]
		if run(batch) {
			continue
		}
		for _, f := range batch {
			if !run([]damaged.File{f}) {
				crashed[f.Name] = true
			}
		}
	}
	for k := range crashed {
		delete(failed, k)
	}
	t.Logf("%d files: %d crashed the server, %d got a 5xx answer or none, %d took over 30 s",
		len(files), len(crashed), len(failed), len(slow))
	for _, m := range []map[string]bool{crashed, failed, slow} {
		var names []string
		for k := range m {
			names = append(names, k)
		}
		sort.Strings(names)
		t.Logf("%s", strings.Join(names, " "))
	}
}

// tailBuffer keeps the last max bytes written (the server's log) and
// notes when the import has finished.
type tailBuffer struct {
	mu    sync.Mutex
	max   int
	b     []byte
	done  bool
	crash []byte // from the first "panic:" or "fatal error:", 16 KB at most
}

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if w.crash == nil {
		for _, m := range []string{"panic: ", "fatal error: "} {
			if i := strings.Index(string(p), m); i >= 0 {
				// Keep the log lines before the crash: they name the
				// items being worked on.
				pre := w.b[:len(w.b)-len(p)+i]
				w.crash = append(append([]byte{}, pre[max(0, len(pre)-3000):]...), p[i:]...)
				break
			}
		}
	} else if len(w.crash) < 16<<10 {
		w.crash = append(w.crash, p...)
	}
	w.done = w.done || strings.Contains(string(w.b[max(0, len(w.b)-len(p)-64):]), "import: done")
	if len(w.b) > w.max {
		w.b = w.b[len(w.b)-w.max:]
	}
	return len(p), nil
}

func (w *tailBuffer) seen() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.done
}

func (w *tailBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.crash != nil {
		return string(w.crash[:min(len(w.crash), 16<<10)])
	}
	return string(w.b)
}
