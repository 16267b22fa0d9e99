package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	stdlog "log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/labstack/echo/v4"

	"github.com/tileserver/tileserver/girder/web"
)

var (
	repoRoot = filepath.Join("..", "..")
	testdata = filepath.Join(repoRoot, "..", "shared", "testdata")
)

const (
	adminToken = "viewer-test-token"
	cmuName    = "CMU-1-Small-Region.svs"
	omeName    = "multi-channel-z-series.ome.tif"
)

// unavailable fails in CI, where the Makefile installs everything, and
// skips elsewhere so a developer without a browser can run the other tests.
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	unavailable(t, "no Chromium found (apt-get install -y chromium)")
	return ""
}

// startTileserver builds ./cmd/tileserver, runs it over a temporary slide
// root holding the two test slides, and returns its base URL once both
// items are imported.
func startTileserver(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "tileserver")
	build := exec.Command("go", "build", "-o", bin, "./cmd/tileserver")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/tileserver: %v\n%s", err, out)
	}
	slides := filepath.Join(dir, "slides")
	if err := os.MkdirAll(slides, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"libvips/" + cmuName, "libvips/" + omeName} {
		b, err := os.ReadFile(filepath.Join(testdata, f))
		if err != nil {
			t.Fatalf("test image: %v", err)
		}
		if err := os.WriteFile(filepath.Join(slides, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "data"),
		"--slides", slides, "--admin-token", adminToken, "--log-level", "warn")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logFile.Name()); err == nil && len(b) > 0 {
				t.Logf("server log:\n%s", b)
			}
		}
	})
	// The command prints its address once it listens.
	lines := bufio.NewScanner(stdout)
	base := ""
	for lines.Scan() {
		if _, rest, ok := strings.Cut(lines.Text(), "listening on "); ok {
			base = strings.TrimSuffix(strings.TrimSpace(rest), "/")
			break
		}
	}
	if base == "" {
		t.Fatalf("tileserver did not report its address")
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()

	// The import runs beside the server: wait for both slides (beside the
	// synthetic test image's item, which is there from the start).
	deadline := time.Now().Add(60 * time.Second)
	for {
		if n, err := countItems(base); err == nil && n == 3 {
			return base
		}
		if time.Now().After(deadline) {
			t.Fatalf("the two test slides were not imported")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func getJSON(u string, v any) error {
	res, err := http.Get(u)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", u, res.Status)
	}
	return json.NewDecoder(res.Body).Decode(v)
}

func countItems(base string) (int, error) {
	var colls, folders, items []struct {
		ID string `json:"_id"`
	}
	if err := getJSON(base+"/api/v1/collection", &colls); err != nil || len(colls) == 0 {
		return 0, fmt.Errorf("no collection: %v", err)
	}
	if err := getJSON(base+"/api/v1/folder?parentType=collection&parentId="+colls[0].ID, &folders); err != nil || len(folders) == 0 {
		return 0, fmt.Errorf("no folder: %v", err)
	}
	if err := getJSON(base+"/api/v1/item?folderId="+folders[0].ID, &items); err != nil {
		return 0, err
	}
	return len(items), nil
}

// tileRe matches the tile routes the viewer uses.
var tileRe = regexp.MustCompile(`/api/v1/item/([0-9a-f]{24})/tiles/(?:zxy|fzxy/(\d+))/(\d+)/(\d+)/(\d+)`)

type tileReq struct {
	url       string
	item      string
	frame     int // -1 for zxy
	z, x, y   int
	withStyle bool
}

// recorder keeps what the page did: tile requests and console errors.
type recorder struct {
	mu         sync.Mutex
	tiles      []tileReq
	tileErr    []string
	consoleErr []string
	logErr     []string
}

func (r *recorder) listen(ev any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		m := tileRe.FindStringSubmatch(ev.Request.URL)
		if m == nil {
			return
		}
		tr := tileReq{url: ev.Request.URL, item: m[1], frame: -1, withStyle: strings.Contains(ev.Request.URL, "style=")}
		if m[2] != "" {
			tr.frame, _ = strconv.Atoi(m[2])
		}
		tr.z, _ = strconv.Atoi(m[3])
		tr.x, _ = strconv.Atoi(m[4])
		tr.y, _ = strconv.Atoi(m[5])
		r.tiles = append(r.tiles, tr)
	case *network.EventResponseReceived:
		// Every tile the viewer asks for exists: the level mapping and the
		// tile grid agree with the server's. (The style probe may be refused.)
		if tileRe.MatchString(ev.Response.URL) && ev.Response.Status != http.StatusOK && !strings.Contains(ev.Response.URL, "style=") {
			r.tileErr = append(r.tileErr, fmt.Sprintf("%d %s", ev.Response.Status, ev.Response.URL))
		}
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var parts []string
			for _, a := range ev.Args {
				if len(a.Value) > 0 {
					parts = append(parts, string(a.Value))
				} else {
					parts = append(parts, a.Description)
				}
			}
			r.consoleErr = append(r.consoleErr, "console."+string(ev.Type)+": "+strings.Join(parts, " "))
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg := d.Text
		if d.Exception != nil {
			msg += " " + d.Exception.Description
		}
		r.consoleErr = append(r.consoleErr, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber, msg))
	case *log.EventEntryAdded:
		if ev.Entry.Level == log.EntryLevelError {
			r.logErr = append(r.logErr, fmt.Sprintf("%s: %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
		}
	}
}

// stats summarises the tile requests for one item.
func (r *recorder) stats(item string) (n, maxZ int, frames map[int]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	maxZ = -1
	frames = map[int]int{}
	for _, tr := range r.tiles {
		if tr.item != item || tr.withStyle {
			continue
		}
		n++
		maxZ = max(maxZ, tr.z)
		frames[tr.frame]++
	}
	return n, maxZ, frames
}

// level returns the distinct unstyled tiles of one level of an item.
func (r *recorder) level(item string, z int) map[[2]int]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[[2]int]bool{}
	for _, tr := range r.tiles {
		if tr.item == item && !tr.withStyle && tr.z == z {
			out[[2]int{tr.x, tr.y}] = true
		}
	}
	return out
}

// styled counts the item's tile requests that carry a style.
func (r *recorder) styled(item string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, tr := range r.tiles {
		if tr.item == item && tr.withStyle {
			n++
		}
	}
	return n
}

func (r *recorder) duplicates() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]int{}
	var dups []string
	for _, tr := range r.tiles {
		if seen[tr.url]++; seen[tr.url] == 2 {
			dups = append(dups, tr.url)
		}
	}
	return dups
}

func itemIDs(t *testing.T, base string) map[string]string {
	t.Helper()
	var colls, folders []struct {
		ID string `json:"_id"`
	}
	var items []struct {
		ID   string `json:"_id"`
		Name string `json:"name"`
	}
	if err := getJSON(base+"/api/v1/collection", &colls); err != nil {
		t.Fatal(err)
	}
	if err := getJSON(base+"/api/v1/folder?parentType=collection&parentId="+colls[0].ID, &folders); err != nil {
		t.Fatal(err)
	}
	if err := getJSON(base+"/api/v1/item?folderId="+folders[0].ID, &items); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, it := range items {
		ids[it.Name] = it.ID
	}
	return ids
}

func screenshotDir(t *testing.T) string {
	dir := filepath.Join(repoRoot, "out", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestViewerInBrowser drives headless Chromium through the page served by
// the real tileserver: browse, open a slide, zoom, change frames, try a
// style and use the cache panel, with no console error and no tile URL
// requested twice.
func TestViewerInBrowser(t *testing.T) {
	chrome := chromiumPath(t)
	if _, err := os.Stat(filepath.Join("dist", "openseadragon", "openseadragon.min.js")); err != nil {
		unavailable(t, "the viewer library is not built: run `make web`")
	}
	base := startTileserver(t)
	ids := itemIDs(t, base)
	cmu, ome := ids[cmuName], ids[omeName]
	if cmu == "" || ome == "" {
		t.Fatalf("items %v", ids)
	}

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chrome),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 900),
	)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 4*time.Minute)
	defer cancelTimeout()

	rec := &recorder{}
	if err := chromedp.Listen(ctx, rec.listen); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// waitFor polls a page predicate; the deadline only bounds a hang.
	waitFor := func(what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
			chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(90*time.Second))); err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	// waitTiles waits until the recorder satisfies cond and the viewer has
	// all tiles of its view.
	waitTiles := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
		waitFor(what+" to finish", `document.getElementById("viewer").getAttribute("aria-busy") === "false"`)
	}

	// Browse: the root folder opens by itself and lists both slides and
	// the synthetic test image with thumbnails.
	do("open the page", chromedp.Navigate(base+"/"))
	waitFor("item cards", `document.querySelectorAll("#items a.card").length === 3`)
	waitFor("thumbnails", `[...document.querySelectorAll("#items img")].every(i => i.complete && i.naturalWidth > 0)`)
	if n, _, _ := rec.stats(cmu); n != 0 {
		t.Fatalf("%d tiles requested before an item was opened", n)
	}

	// Open the slide: tiles come from zxy.
	do("open the slide", chromedp.Click(chromedp.CSS(`#items a.card[title="`+cmuName+`"]`)))
	waitTiles("the slide's tiles", func() bool { n, _, _ := rec.stats(cmu); return n > 0 })
	n0, z0, frames := rec.stats(cmu)
	if frames[-1] != n0 {
		t.Errorf("single-frame item requested fzxy tiles: %v", frames)
	}
	// The whole slide is in view, so the deepest level loaded is loaded
	// whole: exactly large_image's tile grid of that level (2220 × 2967,
	// 240-pixel tiles, 5 levels). A wrong level offset would ask for a
	// grid of another size.
	scale := 1 << (4 - z0)
	nx, ny := (2220/scale+239)/240, (2967/scale+239)/240
	got := rec.level(cmu, z0)
	for x := range nx {
		for y := range ny {
			if !got[[2]int{x, y}] {
				t.Errorf("tile %d/%d/%d of the view was not requested", z0, x, y)
			}
		}
	}
	if len(got) != nx*ny {
		t.Errorf("level %d: %d tiles requested, the grid has %d×%d", z0, len(got), nx, ny)
	}
	if got := text("#item-title"); got != cmuName {
		t.Errorf("title %q", got)
	}
	if got := text("#meta-facts"); !strings.Contains(got, "2220 × 2967 px") || !strings.Contains(got, "240 × 240 px, 5 levels") {
		t.Errorf("metadata panel %q", got)
	}
	waitFor("associated images", `[...document.querySelectorAll("#assoc figcaption")].map(f => f.textContent).join(",") === "label,macro,thumbnail"`)

	// Zoom in with two clicks on the image: deeper levels are requested.
	box, err := chromedp.Run(ctx, chromedp.Evaluate[struct{ X, Y, W, H float64 }](
		`(() => { const r = document.getElementById("viewer").getBoundingClientRect(); return {X: r.x, Y: r.y, W: r.width, H: r.height}; })()`))
	if err != nil {
		t.Fatal(err)
	}
	cx, cy := box.X+box.W/2, box.Y+box.H/2
	for i := 1; i <= 2; i++ {
		_, before, _ := rec.stats(cmu)
		do("zoom in", chromedp.MouseClickXY(cx, cy))
		waitTiles(fmt.Sprintf("deeper tiles after click %d", i), func() bool { _, z, _ := rec.stats(cmu); return z > before })
	}
	n1, z1, _ := rec.stats(cmu)
	if z1 <= z0 || n1 <= n0 {
		t.Errorf("zooming in: max z %d → %d, tiles %d → %d", z0, z1, n0, n1)
	}
	t.Logf("slide: %d tiles at z ≤ %d, then %d tiles at z ≤ %d after zooming", n0, z0, n1, z1)
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(screenshotDir(t), "viewer.png"), shot, 0o644); err != nil {
		t.Fatal(err)
	}

	// Styles: the page applies one the server accepts and shows the
	// server's message for one it refuses, keeping the image. What the
	// server does is learnt first from the same tile request.
	probeStyle := func(style string) (ok bool, message string) {
		t.Helper()
		res, err := http.Get(base + "/api/v1/item/" + cmu + "/tiles/zxy/0/0/0?style=" + url.QueryEscape(style))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode == http.StatusOK {
			return true, ""
		}
		var body struct{ Message string }
		if err := json.NewDecoder(res.Body).Decode(&body); err != nil || body.Message == "" {
			t.Fatalf("style %s refused without a message: %d %v", style, res.StatusCode, err)
		}
		return false, body.Message
	}
	waitStyleStatus := func(want string) {
		t.Helper()
		js, _ := json.Marshal(want)
		if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](`document.getElementById("style-status").textContent === `+string(js),
			chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(60*time.Second))); err != nil {
			t.Fatalf("style status %q never became %q: %v", text("#style-status"), want, err)
		}
	}

	if ok, msg := probeStyle("[1]"); ok {
		t.Errorf("the server accepts the style [1]")
	} else {
		do("apply a style the server refuses",
			chromedp.Click(chromedp.CSS(".custom-style summary")),
			chromedp.SetValue(chromedp.ID("style-json"), "[1]"),
			chromedp.Click(chromedp.CSS(`#style-form button[type=submit]`)))
		waitStyleStatus("The server refused this style: " + msg)
	}

	style := `{"bands":[{"band":1,"palette":"#ff0000"}]}`
	ok, msg := probeStyle(style)
	do("reset the style", chromedp.Click(chromedp.ID("style-reset")))
	waitStyleStatus("Default style.")
	do("apply a palette style",
		chromedp.SetValue(chromedp.ID("style-band"), "1"),
		chromedp.SetValue(chromedp.ID("style-color"), "#ff0000"),
		chromedp.Click(chromedp.CSS(`#style-form button[type=submit]`)))
	if !ok {
		waitStyleStatus("The server refused this style: " + msg)
	} else {
		waitStyleStatus("Style applied.")
		waitTiles("styled tiles", func() bool { return rec.styled(cmu) > 2 })
		shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(screenshotDir(t), "viewer-style.png"), shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The multi-frame item uses fzxy; the slider moves to frame 1.
	do("open the OME item", chromedp.Click(chromedp.CSS(`#items a.card[title="`+omeName+`"]`)))
	waitTiles("frame 0 tiles", func() bool { _, _, f := rec.stats(ome); return f[0] > 0 })
	if _, _, f := rec.stats(ome); len(f) != 1 {
		t.Fatalf("frames requested before moving the slider: %v", f)
	}
	if got := text("#frame-label"); !strings.HasPrefix(got, "1 of 15") {
		t.Errorf("frame label %q", got)
	}
	do("move the frame slider", chromedp.Focus(chromedp.ID("frame")), chromedp.KeyEvent(kb.ArrowRight))
	waitTiles("frame 1 tiles", func() bool { _, _, f := rec.stats(ome); return f[1] > 0 })
	if _, _, f := rec.stats(ome); len(f) != 2 || f[-1] != 0 {
		t.Errorf("frames requested: %v (want only fzxy frames 0 and 1)", f)
	}
	if got, want := text("#frame-label"), "2 of 15 · C 2/3 · Z 1/5"; got != want {
		t.Errorf("frame label after one step %q, want %q", got, want)
	}
	// The Z-plane slider steps by IndexStride.IndexZ = 3 frames: frame 4 is
	// channel 1 of plane 1.
	do("move the Z slider", chromedp.Focus(chromedp.ID("axis-Z")), chromedp.KeyEvent(kb.ArrowRight))
	waitTiles("frame 4 tiles", func() bool { _, _, f := rec.stats(ome); return f[4] > 0 })
	if _, _, f := rec.stats(ome); len(f) != 3 {
		t.Errorf("frames requested: %v (want 0, 1 and 4)", f)
	}
	if got, want := text("#frame-label"), "5 of 15 · C 2/3 · Z 2/5"; got != want {
		t.Errorf("frame label after the Z step %q, want %q", got, want)
	}
	shot, err = chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(screenshotDir(t), "viewer-frames.png"), shot, 0o644); err != nil {
		t.Fatal(err)
	}

	// Cache panel: a wrong token shows the server's refusal; the right one
	// shows the tiers, and clearing works.
	cacheStatus := `document.getElementById("cache-status").textContent`
	do("wrong token", chromedp.SendKeys(chromedp.ID("cache-token"), "nope"),
		chromedp.Click(chromedp.CSS(`#cache-form button[type=submit]`)))
	waitFor("the refusal", cacheStatus+` === "Administrator access required. Enter the admin token."`)
	do("right token", chromedp.SetValue(chromedp.ID("cache-token"), adminToken),
		chromedp.Click(chromedp.CSS(`#cache-form button[type=submit]`)))
	waitFor("cache stats", cacheStatus+`.startsWith("Updated")`)
	rows := text("#cache-stats tbody")
	if !strings.Contains(rows, "Tiles · memory") || !strings.Contains(rows, "Tile sources") || !strings.Contains(rows, "%") {
		t.Errorf("cache table %q", rows)
	}
	do("clear caches", chromedp.Click(chromedp.ID("cache-clear")))
	waitFor("the clear", cacheStatus+`.startsWith("Caches cleared")`)
	shot, err = chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(screenshotDir(t), "viewer-cache.png"), shot, 0o644); err != nil {
		t.Fatal(err)
	}

	// A build without the viewer library still browses and says what is
	// missing instead of failing.
	do("open a page built without the library", chromedp.Navigate(pageWithoutLib(t, base)+"/"))
	waitFor("item cards", `document.querySelectorAll("#items a.card").length === 3`)
	do("open the slide", chromedp.Click(chromedp.CSS(`#items a.card[title="`+cmuName+`"]`)))
	waitFor("the missing-library message", `document.getElementById("stage-message").textContent.includes("missing from this build")`)
	if got := text("#meta-facts"); !strings.Contains(got, "2220 × 2967 px") {
		t.Errorf("metadata without the library %q", got)
	}

	if dups := rec.duplicates(); len(dups) > 0 {
		t.Errorf("%d tile URLs requested more than once, e.g. %s", len(dups), dups[0])
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, e := range rec.tileErr {
		t.Errorf("tile request failed: %s", e)
	}
	for _, e := range rec.consoleErr {
		t.Errorf("browser console: %s", e)
	}
	for _, e := range rec.logErr {
		t.Logf("browser log: %s", e)
	}
	t.Logf("%d tile requests in all", len(rec.tiles))
}

// pageWithoutLib serves the page as a build without `make web` would, in
// front of the real server's API.
func pageWithoutLib(t *testing.T, api string) string {
	u, err := url.Parse(api)
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	proxy := httputil.NewSingleHostReverseProxy(u)
	// Requests the browser abandons when the test ends are not news.
	proxy.ErrorLog = stdlog.New(io.Discard, "", 0)
	e.Any("/api/*", echo.WrapHandler(proxy))
	web.Register(e, web.Config{Lib: fstest.MapFS{}})
	s := httptest.NewServer(e)
	t.Cleanup(s.Close)
	return s.URL
}
