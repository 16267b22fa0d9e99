package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// sharedTestdata returns ../shared/testdata (beside the repository): the
// test fails when CI=true and it is missing, else it is skipped.
func sharedTestdata(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "shared", "testdata"))
	if err == nil {
		if _, err = os.Stat(dir); err == nil {
			return dir
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("shared test images missing: %v", err)
	}
	t.Skipf("shared test images missing: %v", err)
	return ""
}

// copySlides copies every file under src into a flat new directory (names
// prefixed by their folder), so that both servers see the same slide tree.
func copySlides(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".md") || filepath.Base(p) == "SHA256SUMS" {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, strings.ReplaceAll(rel, string(filepath.Separator), "__")), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// items waits until the server's import has settled and returns the ids
// of the file items by name.
func items(t *testing.T, base string) map[string]string {
	t.Helper()
	var last map[string]string
	stable := 0
	for i := 0; i < 600 && stable < 5; i++ {
		var list []struct {
			ID   string `json:"_id"`
			Name string `json:"name"`
		}
		getJSON(t, base+"/api/v1/item?text=.&limit=1000", &list)
		got := map[string]string{}
		for _, it := range list {
			got[it.Name] = it.ID
		}
		if len(got) > 0 && len(got) == len(last) {
			stable++
		} else {
			stable = 0
		}
		last = got
		time.Sleep(100 * time.Millisecond)
	}
	return last
}

type stressReq struct {
	name, path string
}

// stressRequests builds the requests of one item from its metadata: tiles
// at every level (corners and centre of the larger ones), a tile of another
// frame, thumbnails, regions, a styled tile and DeepZoom.
func stressRequests(t *testing.T, base, name, id string, short bool) []stressReq {
	res, err := http.Get(base + "/api/v1/item/" + id + "/tiles")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil
	}
	var m struct {
		SizeX, SizeY, TileWidth, TileHeight, Levels int
		Frames                                      []any `json:"frames"`
	}
	if err := jsonDecode(res.Body, &m); err != nil || m.TileWidth == 0 {
		return nil
	}
	if short && m.SizeX*m.SizeY > 4<<20 {
		// -short (the race run) keeps to the smaller images.
		return nil
	}
	api := "/api/v1/item/" + id + "/tiles"
	var reqs []stressReq
	add := func(format string, args ...any) {
		reqs = append(reqs, stressReq{name, api + fmt.Sprintf(format, args...)})
	}
	for z := range m.Levels {
		scale := 1 << (m.Levels - 1 - z)
		cols := (m.SizeX/scale + m.TileWidth - 1) / m.TileWidth
		rows := (m.SizeY/scale + m.TileHeight - 1) / m.TileHeight
		seen := map[[2]int]bool{}
		for _, xy := range [][2]int{{0, 0}, {cols - 1, 0}, {0, rows - 1}, {cols - 1, rows - 1}, {cols / 2, rows / 2}, {1, 0}, {0, 1}, {1, 1}} {
			if xy[0] < 0 || xy[1] < 0 || xy[0] >= cols || xy[1] >= rows || seen[xy] {
				continue
			}
			seen[xy] = true
			add("/zxy/%d/%d/%d", z, xy[0], xy[1])
			if !short && z == m.Levels-1 {
				add("/zxy/%d/%d/%d?encoding=PNG", z, xy[0], xy[1])
			}
		}
		if z <= 1 {
			add("/zxy/%d/0/0?encoding=PNG", z)
			add("/zxy/%d/0/0?edge=crop", z)
		}
	}
	if len(m.Frames) > 1 {
		add("/fzxy/%d/0/0/0", len(m.Frames)-1)
		add("/fzxy/1/%d/0/0", m.Levels-1)
	}
	style := url.QueryEscape(`{"bands":[{"band":1,"palette":["#000","#0f0"]}]}`)
	add("/zxy/0/0/0?style=%s", style)
	add("/thumbnail")
	add("/thumbnail?width=100&height=80&encoding=PNG")
	add("/region?left=0&top=0&right=%d&bottom=%d&width=200&encoding=PNG", min(m.SizeX, 700), min(m.SizeY, 500))
	add("/region?left=%d&top=%d&regionWidth=300&regionHeight=200&units=base_pixels", m.SizeX/3, m.SizeY/3)
	if !short {
		add("/dzi_files/%d/0_0.jpeg", dziLevel(m.SizeX, m.SizeY)-1)
	}
	return reqs
}

// dziLevel is DeepZoom's top level: ceil(log2(max(w, h))).
func dziLevel(w, h int) int {
	n := 0
	for 1<<n < max(w, h) {
		n++
	}
	return n
}

func jsonDecode(r io.Reader, v any) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

type answer struct {
	status int
	body   []byte
}

func fetch(ctx context.Context, client *http.Client, u string) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return answer{}, err
	}
	res, err := client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return answer{res.StatusCode, b}, err
}

// TestConcurrentRequestsMatchAlone starts two fresh servers over every
// file of ../shared/testdata. The reference server answers each request
// alone, one after the other; the other gets them all at once, repeated,
// shuffled, mixed with requests cancelled mid-way. Every answer must be
// 2xx and byte-identical to the reference: no tile may fail or change
// because of other requests in flight, cancellations or cache state.
func TestConcurrentRequestsMatchAlone(t *testing.T) {
	slides := copySlides(t, sharedTestdata(t))
	args := func() []string {
		return []string{"--slides", slides, "--data", t.TempDir(), "--warm-on-import=false", "--prefetch=false",
			"--work-queue", "100000", "--log-level", "error"}
	}
	ref := startServer(t, args(), nil)
	defer ref.stop(t)
	srv := startServer(t, args(), nil)
	defer srv.stop(t)

	refItems, srvItems := items(t, ref.base), items(t, srv.base)
	short := testing.Short()
	var reqs []stressReq
	for name, id := range refItems {
		if srvItems[name] != id {
			t.Fatalf("%s: ids differ between servers (%q, %q)", name, id, srvItems[name])
		}
		reqs = append(reqs, stressRequests(t, ref.base, name, id, short)...)
	}
	if len(reqs) < 100 {
		t.Fatalf("only %d requests from %d items", len(reqs), len(refItems))
	}

	start := time.Now()
	// Reference answers, one request at a time.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	want := map[string]answer{}
	var kept []stressReq
	for _, r := range reqs {
		a, err := fetch(context.Background(), client, ref.base+r.path)
		if err != nil {
			t.Fatal(err)
		}
		if a.status/100 != 2 {
			// Not a valid request for this file (a damaged file, a
			// route it has no answer for): not part of the comparison.
			t.Logf("reference %d for %s %s: %s", a.status, r.name, r.path, a.body)
			continue
		}
		want[r.path] = a
		kept = append(kept, r)
	}

	t.Logf("reference pass: %d requests in %v", len(reqs), time.Since(start))
	start = time.Now()
	// Everything at once: each request twice, shuffled, plus cancelled
	// copies.
	rng := rand.New(rand.NewPCG(1, 2))
	type job struct {
		r      stressReq
		cancel time.Duration // > 0: cancel after this long, ignore the answer
	}
	var jobs []job
	for _, r := range kept {
		jobs = append(jobs, job{r: r}, job{r: r}, job{r: r, cancel: time.Duration(1+rng.IntN(20)) * time.Millisecond})
	}
	rng.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
	workers := 32
	ch := make(chan job)
	var mu sync.Mutex
	failures := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range ch {
				ctx, cancel := context.WithCancel(context.Background())
				if j.cancel > 0 {
					time.AfterFunc(j.cancel, cancel)
				}
				a, err := fetch(ctx, client, srv.base+j.r.path)
				cancel()
				if j.cancel > 0 {
					continue
				}
				w := want[j.r.path]
				if err != nil || a.status != w.status || !bytes.Equal(a.body, w.body) {
					mu.Lock()
					failures++
					if failures <= 20 {
						t.Errorf("%s %s: status %d (want %d), %d bytes (want %d), err %v: %.200s",
							j.r.name, j.r.path, a.status, w.status, len(a.body), len(w.body), err, a.body)
					}
					mu.Unlock()
				}
			}
		})
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()
	t.Logf("%d items, %d requests compared, %d concurrent jobs in %v, %d failures", len(refItems), len(kept), len(jobs),
		time.Since(start), failures)
}
