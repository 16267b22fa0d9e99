package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tileserver/tileserver/tilecache/memcachedtest"
	"github.com/tileserver/tileserver/tilesource/dicom/dicomweb/orthanctest"
)

// testdata is the shared folder of real test images.
var testdata = filepath.Join("..", "..", "..", "shared", "testdata")

// replicaArgsEnv carries a replica's arguments (JSON) to the test binary
// started again as that replica.
const replicaArgsEnv = "TILESERVER_TEST_REPLICA_ARGS"

// TestReplicaProcess is not a test: it is the body of a replica process
// that TestReplicas starts by running the test binary again with
// replicaArgsEnv set. SIGTERM stops it gracefully, as in production.
func TestReplicaProcess(t *testing.T) {
	raw := os.Getenv(replicaArgsEnv)
	if raw == "" {
		t.Skip("the replica process of TestReplicas")
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, args, os.LookupEnv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "replica:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// replica is one tileserver process.
type replica struct {
	base string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan error
}

// startReplica runs the test binary as a replica with args and extra
// environment variables, and waits for its listening line.
func startReplica(t *testing.T, args []string, env []string) *replica {
	t.Helper()
	raw, _ := json.Marshal(append([]string{"--addr", "127.0.0.1:0", "--log-level", "warn"}, args...))
	cmd := exec.Command(os.Args[0], "-test.run=^TestReplicaProcess$", "-test.count=1")
	cmd.Env = append(append(os.Environ(), replicaArgsEnv+"="+string(raw)), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{cmd: cmd, log: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = &syncWriter{w: r.log}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if addr, ok := strings.CutPrefix(lines.Text(), "tileserver listening on "); ok {
			r.base = strings.TrimSuffix(addr, "/")
			break
		}
	}
	go func() {
		io.Copy(io.Discard, stdout)
		r.done <- cmd.Wait()
	}()
	if r.base == "" {
		t.Fatalf("replica did not start: %v\n%s", <-r.done, r.log)
	}
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop sends SIGTERM and waits for the process to exit (once).
func (r *replica) stop(t *testing.T) {
	if r.cmd.ProcessState != nil || r.done == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-r.done; err != nil {
		t.Errorf("replica %s exited with %v\n%s", r.base, err, r.log)
	}
	r.done = nil
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// startNginx runs Debian's nginx with docker/nginx.conf, its upstream
// pointed at the replicas and its listen address at a free loopback port.
// Under CI=true a missing nginx fails the test.
func startNginx(t *testing.T, upstreams []string) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		for _, p := range []string{"/usr/sbin/nginx", "/sbin/nginx"} {
			if _, e := os.Stat(p); e == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("nginx is missing (scripts/install-deps.sh installs it)")
		}
		t.Skip("nginx is missing (scripts/install-deps.sh installs it)")
	}
	conf, err := os.ReadFile(filepath.Join("..", "..", "docker", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	port := orthanctest.FreePort(t)
	var servers strings.Builder
	for _, u := range upstreams {
		fmt.Fprintf(&servers, "    server %s max_fails=1 fail_timeout=30s;\n", strings.TrimPrefix(u, "http://"))
	}
	// The shipped file with only addresses and private paths changed: the
	// retry and keep-alive settings under test are the ones operators get.
	text := string(conf)
	for _, r := range []struct{ old, new string }{
		{"    server tileserver:8080;\n", servers.String()},
		{"listen 8080;", fmt.Sprintf("listen 127.0.0.1:%d;", port)},
		{"http {\n", fmt.Sprintf("http {\n  access_log off;\n  client_body_temp_path %[1]s/body;\n  proxy_temp_path %[1]s/proxy;\n"+
			"  fastcgi_temp_path %[1]s/fastcgi;\n  uwsgi_temp_path %[1]s/uwsgi;\n  scgi_temp_path %[1]s/scgi;\n", dir)},
		{"proxy_set_header Host $host;", "proxy_set_header Host $host;\n      add_header X-Upstream $upstream_addr always;"},
	} {
		if !strings.Contains(text, r.old) {
			t.Fatalf("docker/nginx.conf no longer contains %q", r.old)
		}
		text = strings.Replace(text, r.old, r.new, 1)
	}
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "error.log")
	cmd := exec.Command(bin, "-p", dir, "-c", confPath, "-e", logPath,
		"-g", fmt.Sprintf("daemon off; pid %s/nginx.pid; worker_processes 1;", dir))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGQUIT)
		cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if i == 100 {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("nginx did not start: %s\n%s", out.String(), log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "http://" + addr
}

// get fetches url and returns status, body and the X-Tile-Cache header.
func get(t *testing.T, url string) (int, []byte, http.Header) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, b, res.Header
}

// tree walks a replica's collections, folders and items and returns every
// resource's JSON by id, exactly as served.
func tree(t *testing.T, base string) map[string]string {
	t.Helper()
	out := map[string]string{}
	var cols []map[string]any
	_, b, _ := get(t, base+"/api/v1/collection")
	if err := json.Unmarshal(b, &cols); err != nil {
		t.Fatalf("collections: %v: %s", err, b)
	}
	var walk func(parentType, id string)
	walk = func(parentType, id string) {
		var folders, items []json.RawMessage
		_, fb, _ := get(t, fmt.Sprintf("%s/api/v1/folder?parentType=%s&parentId=%s&limit=0", base, parentType, id))
		if err := json.Unmarshal(fb, &folders); err != nil {
			t.Fatalf("folders of %s: %v: %s", id, err, fb)
		}
		for _, f := range folders {
			var v struct {
				ID string `json:"_id"`
			}
			json.Unmarshal(f, &v)
			out[v.ID] = string(f)
			walk("folder", v.ID)
		}
		if parentType != "folder" {
			return
		}
		_, ib, _ := get(t, fmt.Sprintf("%s/api/v1/item?folderId=%s&limit=0", base, id))
		if err := json.Unmarshal(ib, &items); err != nil {
			t.Fatalf("items of %s: %v: %s", id, err, ib)
		}
		for _, it := range items {
			var v struct {
				ID string `json:"_id"`
			}
			json.Unmarshal(it, &v)
			out[v.ID] = string(it)
		}
	}
	for _, c := range cols {
		id := c["_id"].(string)
		b, _ := json.Marshal(c)
		out[id] = string(b)
		walk("collection", id)
	}
	return out
}

// itemsOf returns the item ids and names of a tree, sorted by name.
func itemsOf(tr map[string]string) [][2]string {
	var out [][2]string
	for id, js := range tr {
		var v struct {
			Type string `json:"_modelType"`
			Name string `json:"name"`
		}
		json.Unmarshal([]byte(js), &v)
		if v.Type == "item" {
			out = append(out, [2]string{v.Name, id})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// metric sums the samples of a Prometheus metric whose line starts with
// prefix (name and labels) on a replica's /metrics.
func metric(t *testing.T, base, prefix string) float64 {
	t.Helper()
	_, b, _ := get(t, base+"/metrics")
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				v, _ := strconv.ParseFloat(f[len(f)-1], 64)
				sum += v
			}
		}
	}
	return sum
}

// memcachedSets returns memcached's cmd_set counter.
func memcachedSets(t *testing.T, addr string) float64 {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "stats\r\n")
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[1] == "cmd_set" {
			n, _ := strconv.ParseFloat(f[2], 64)
			return n
		}
		if sc.Text() == "END" {
			break
		}
	}
	t.Fatal("memcached stats without cmd_set")
	return 0
}

// waitWrites waits (bounded) until every value the replicas produced has
// gone through its asynchronous memcached write: memcached counted the
// set, or the replica counted it as dropped or skipped.
func waitWrites(t *testing.T, mc string, replicas ...*replica) {
	t.Helper()
	for i := 0; ; i++ {
		var want float64
		for _, r := range replicas {
			want += metric(t, r.base, `tileserver_cache_produced_total{cache="tiles"}`) -
				metric(t, r.base, `tileserver_cache_dropped_writes_total{cache="tiles",tier="memcached"}`) -
				metric(t, r.base, `tileserver_cache_skipped_writes_total{cache="tiles",tier="memcached"}`)
		}
		got := memcachedSets(t, mc)
		if got >= want {
			return
		}
		if i == 1500 {
			t.Fatalf("memcached writes did not settle: %v sets for %v values", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReplicas runs two replica processes over one slide directory, one
// memcached and one Orthanc archive (with Basic authentication), behind
// Debian's nginx configured as docker/nginx.conf: both replicas list the
// same collections, folders and items under the same ids with the same
// JSON; a tile produced by one is a memcached hit on the other with the
// same bytes; a series added to the archive appears on both after PUT
// large_image/import; and stopping one replica in the middle of a load
// through nginx loses no request.
func TestReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts memcached, Orthanc, nginx and two servers")
	}
	mc := memcachedtest.Start(t)
	orthanc := orthanctest.StartWith(t, orthanctest.Options{User: "wsi", Password: "s3cret pass"})
	for _, f := range []string{"wsi-to-dicom-converter/jpeg.dicom", "highdicom/sm_image.dcm",
		"highdicom/sm_image_jpegls.dcm", "libvips/dicom_test_image.dcm"} {
		orthanc.Upload(t, filepath.Join(testdata, f))
	}
	slides := t.TempDir()
	for _, f := range []string{"libvips/CMU-1-Small-Region.svs", "openslide-python/boxes.tiff"} {
		b, err := os.ReadFile(filepath.Join(testdata, f))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(slides, "lab", filepath.Base(f))
		os.MkdirAll(filepath.Dir(dst), 0o755)
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The replicas reach Orthanc through a proxy that counts what crosses
	// the network.
	origin, _ := url.Parse(orthanc.URL)
	var frameGets, otherGets atomic.Int64
	proxy := httputil.NewSingleHostReverseProxy(origin)
	archive := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/frames/") {
			frameGets.Add(1)
		} else {
			otherGets.Add(1)
		}
		proxy.ServeHTTP(w, r)
	}))
	defer archive.Close()
	const token = "replica-admin"
	credFile := filepath.Join(t.TempDir(), "basic")
	if err := os.WriteFile(credFile, []byte("wsi:s3cret pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := func() []string {
		return []string{"--data", t.TempDir(), "--slides", slides, "--memcached", mc.Addr, "--memcached-max-item", "2M",
			// Generous: under -race on a busy machine a set must not time out.
			"--memcached-timeout", "5s",
			"--admin-token", token, "--warm-on-import=false", "--prefetch=false",
			"--dicomweb", "pacs=" + archive.URL + "/dicom-web", "--dicomweb-refresh", "0"}
	}
	env := []string{"TILESERVER_DICOMWEB_PACS_BASIC_FILE=" + credFile}
	a := startReplica(t, args(), env)
	b := startReplica(t, args(), env)

	// Listing runs beside the server: wait (bounded) for both imports.
	wantItems := 5 // two slides, three archive series (the NM series is not a slide)
	var ta, tb map[string]string
	for i := 0; ; i++ {
		ta, tb = tree(t, a.base), tree(t, b.base)
		if len(itemsOf(ta)) >= wantItems+1 && len(itemsOf(tb)) >= wantItems+1 {
			break
		}
		if i == 200 {
			t.Fatalf("imports did not finish: %v / %v\n%s\n%s", itemsOf(ta), itemsOf(tb), a.log, b.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	compareTrees(t, ta, tb)
	items := itemsOf(ta)
	names := make([]string, len(items))
	for i, it := range items {
		names[i] = it[0]
	}
	// Names from SeriesDescription (test13), else the UID (highdicom's
	// series have no descriptions), the slide files, the test image.
	want := []string{"1.2.826.0.1.3680043.10.511.3.6959833688441853022324859303187132",
		"1.2.826.0.1.3680043.9.7433.3.57084118109582350083572639456817453",
		"CMU-1-Small-Region.svs", "boxes.tiff", "test (synthetic image)", "test13"}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Errorf("items %q, want %q", names, want)
	}
	// The archive is a collection; its items name the archive, not its
	// URL or credentials.
	var pacsID string
	for id, js := range ta {
		if strings.Contains(js, `"_modelType":"collection"`) && strings.Contains(js, `"name":"pacs"`) {
			pacsID = id
		}
	}
	archiveItem := ta[items[5][1]]
	if pacsID == "" || !strings.Contains(archiveItem, `"baseParentId":"`+pacsID+`"`) ||
		!strings.Contains(archiveItem, `"archive":"pacs"`) || strings.Contains(fmt.Sprint(ta), "s3cret") ||
		strings.Contains(fmt.Sprint(ta), archive.URL) {
		t.Errorf("archive collection %q, item %s", pacsID, archiveItem)
	}

	// A tile made by one replica is a memcached hit on the other; an
	// archive's frames and series metadata cross the network once.
	for _, it := range items {
		if strings.HasPrefix(it[0], "test") && it[0] != "test13" {
			continue
		}
		tile := "/api/v1/item/" + it[1] + "/tiles/zxy/0/0/0"
		frames0, other0 := frameGets.Load(), otherGets.Load()
		st, tileA, ha := get(t, a.base+tile)
		if st != 200 || ha.Get("X-Tile-Cache") != "miss" {
			t.Fatalf("%s on a: %d %s %s", it[0], st, ha.Get("X-Tile-Cache"), tileA)
		}
		// memcached writes are asynchronous.
		waitWrites(t, mc.Addr, a, b)
		st, tileB, hb := get(t, b.base+tile)
		if st != 200 || hb.Get("X-Tile-Cache") != "hit-memcached" || !bytes.Equal(tileA, tileB) ||
			ha.Get("ETag") == "" || ha.Get("ETag") != hb.Get("ETag") {
			t.Errorf("%s on b: %d %s, same bytes %v, ETags %q %q", it[0], st, hb.Get("X-Tile-Cache"),
				bytes.Equal(tileA, tileB), ha.Get("ETag"), hb.Get("ETag"))
		}
		if !strings.Contains(ta[it[1]], `"archive":"pacs"`) {
			continue
		}
		// b opens the series from the metadata a cached in memcached.
		frames1, other1 := frameGets.Load(), otherGets.Load()
		if st, _, _ := get(t, b.base+"/api/v1/item/"+it[1]+"/tiles"); st != 200 {
			t.Errorf("%s metadata on b: %d", it[0], st)
		}
		if frames1 == frames0 || other1 == other0 || frameGets.Load() != frames1 || otherGets.Load() != other1 {
			t.Errorf("%s: archive requests frames %d→%d→%d, metadata %d→%d→%d", it[0],
				frames0, frames1, frameGets.Load(), other0, other1, otherGets.Load())
		}
	}

	// A series added to the archive appears on both after an import.
	orthanc.Upload(t, filepath.Join(testdata, "openslide-python/boxes_0.dcm"))
	orthanc.Upload(t, filepath.Join(testdata, "openslide-python/boxes_1.dcm"))
	for _, r := range []*replica{a, b} {
		req, _ := http.NewRequest(http.MethodPut, r.base+"/api/v1/large_image/import", nil)
		req.Header.Set("Girder-Token", token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(body), `"archives":{"pacs":{"folders":3,"items":4,"skipped":0,"removed":0}}`) {
			t.Errorf("import: %d %s", res.StatusCode, body)
		}
	}
	ta, tb = tree(t, a.base), tree(t, b.base)
	compareTrees(t, ta, tb)
	if n := len(itemsOf(ta)); n != len(items)+1 {
		t.Errorf("%d items after the import, want %d", n, len(items)+1)
	}

	// Load through nginx; one replica stops in the middle.
	lb := startNginx(t, []string{a.base, b.base})
	var urls []string
	svs := items[2][1]
	for z := 0; z <= 2; z++ {
		for x := 0; x < 4; x++ {
			for y := 0; y < 4; y++ {
				urls = append(urls, fmt.Sprintf("%s/api/v1/item/%s/tiles/zxy/%d/%d/%d?edge=crop", lb, svs, z, x, y))
			}
		}
	}
	for _, it := range items {
		urls = append(urls, lb+"/api/v1/item/"+it[1], lb+"/api/v1/item/"+it[1]+"/tiles")
	}
	const total, stopAfter, workers = 1200, 300, 8
	var next, done atomic.Int64
	var failures []string
	var mu sync.Mutex
	upstreams := map[string]int{}
	stopped := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > total {
					return
				}
				u := urls[int(i)%len(urls)]
				res, err := client.Get(u)
				var status int
				if err == nil {
					_, err = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					status = res.StatusCode
				}
				mu.Lock()
				// Out-of-range tiles of small levels are large_image's 404s.
				if err != nil || (status != 200 && status != 404) {
					failures = append(failures, fmt.Sprintf("%s: %d %v", u, status, err))
				} else {
					upstreams[res.Header.Get("X-Upstream")]++
				}
				mu.Unlock()
				if done.Add(1) == stopAfter {
					go func() { b.stop(t); close(stopped) }()
				}
			}
		}()
	}
	wg.Wait()
	<-stopped
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed while a replica stopped, e.g. %v", len(failures), total, failures[0])
	}
	hostA, hostB := strings.TrimPrefix(a.base, "http://"), strings.TrimPrefix(b.base, "http://")
	if upstreams[hostA] == 0 || upstreams[hostB] == 0 {
		t.Errorf("requests per upstream: %v", upstreams)
	}
	t.Logf("requests per upstream: %v", upstreams)
}

// compareTrees fails when the replicas' resources differ in ids or JSON.
func compareTrees(t *testing.T, a, b map[string]string) {
	t.Helper()
	if len(a) != len(b) {
		t.Errorf("replicas list %d and %d resources", len(a), len(b))
	}
	for id, ja := range a {
		if jb, ok := b[id]; !ok {
			t.Errorf("%s only on the first replica: %s", id, ja)
		} else if ja != jb {
			t.Errorf("%s differs:\n%s\n%s", id, ja, jb)
		}
	}
}
