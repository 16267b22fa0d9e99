package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	stdlog "log"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/chromedp/cdproto/cdp"
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
	page      int // which page load asked (see recorder.newPage)
	item      string
	frame     int // -1 for zxy
	z, x, y   int
	withStyle bool
}

// recorder keeps what the page did: tile requests and console errors.
type recorder struct {
	mu         sync.Mutex
	page       int
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
		tr := tileReq{url: ev.Request.URL, page: r.page, item: m[1], frame: -1, withStyle: strings.Contains(ev.Request.URL, "style=")}
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

// logPageState logs what a timed-out wait may need to be understood: the
// viewer's state and the errors the browser reported so far.
func logPageState(t *testing.T, ctx context.Context, rec *recorder) {
	t.Helper()
	state, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
		const box = document.getElementById("viewer"), v = window.tileViewer && tileViewer.main();
		const items = [];
		for (let i = 0; v && i < v.world.getItemCount(); i++) {
			const it = v.world.getItemAt(i);
			items.push({ url: String(it.source && it.source.getTileUrl && it.source.getTileUrl(0, 0, 0)), fullyLoaded: it.getFullyLoaded() });
		}
		return JSON.stringify({ item: box.dataset.item, busy: box.getAttribute("aria-busy"), hash: location.hash,
			cards: [...document.querySelectorAll("#items a.card")].map(a => a.title + (a.hasAttribute("aria-current") ? " (current)" : "")),
			stage: document.getElementById("stage-message").textContent, tileStatus: document.getElementById("tile-status").textContent, items });
	})()`))
	t.Logf("page state: %s (%v)", state, err)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, e := range slices.Concat(rec.tileErr, rec.consoleErr, rec.logErr) {
		t.Logf("browser: %s", e)
	}
	if n := len(rec.tiles); n > 0 {
		t.Logf("%d tile requests; the last: %s", n, rec.tiles[n-1].url)
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

// newPage starts a new page load: its tiles may repeat the previous
// page's (the page's tile cache does not survive a reload).
func (r *recorder) newPage() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.page++
}

// duplicates lists the tile URLs one page load requested more than once,
// except those whose path is in an except set (failures the test injected,
// which are retried).
func (r *recorder) duplicates(except ...map[string]bool) []string {
	retried := map[string]bool{}
	for _, m := range except {
		for k := range m {
			retried[k] = true
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]int{}
	var dups []string
	for _, tr := range r.tiles {
		key := fmt.Sprint(tr.page, " ", tr.url)
		path := tr.url
		if u, err := url.Parse(tr.url); err == nil {
			path = u.Path
		}
		if seen[key]++; seen[key] == 2 && !retried[path] {
			dups = append(dups, tr.url)
		}
	}
	return dups
}

// frames counts an item's tile requests per frame (-1 for zxy), styled or not.
func (r *recorder) frames(item string) map[int]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[int]int{}
	for _, tr := range r.tiles {
		if tr.item == item {
			out[tr.frame]++
		}
	}
	return out
}

// styles returns the distinct styles of an item's tile requests, in order.
func (r *recorder) styles(item string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	seen := map[string]bool{}
	for _, tr := range r.tiles {
		if tr.item != item || !tr.withStyle {
			continue
		}
		u, err := url.Parse(tr.url)
		if err != nil {
			continue
		}
		st := u.Query().Get("style")
		if !seen[st] {
			seen[st] = true
			out = append(out, st)
		}
	}
	return out
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

// eval runs a JavaScript expression in the page and returns its value.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// viewState is what a viewer shows: centre in image pixels, image zoom
// (CSS pixels per image pixel), rotation; and the viewport's own centre and
// zoom (the slide's width is 1), which side-by-side sync shares.
type viewState struct {
	X, Y, Zoom, Rot, VX, VY, VZoom float64
}

const viewStateJS = `((v) => { const img = v.world.getItemAt(0), vp = v.viewport, c = vp.getCenter(true),
	ic = img.viewportToImageCoordinates(c);
	return {X: ic.x, Y: ic.y, Zoom: img.viewportToImageZoom(vp.getZoom(true)), Rot: vp.getRotation(true),
		VX: c.x, VY: c.y, VZoom: vp.getZoom(true)}; })`

// parseMeasure reads "Length 199 µm" or "Area 4.98e+03 µm²" into µm or µm².
func parseMeasure(t *testing.T, s string) float64 {
	t.Helper()
	m := regexp.MustCompile(`([0-9.e+]+) (µm|mm)(²?)`).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no measure in %q", s)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	if m[2] == "mm" {
		v *= 1000
		if m[3] != "" {
			v *= 1000
		}
	}
	return v
}

func near(got, want, rel float64) bool {
	return got >= want*(1-rel) && got <= want*(1+rel)
}

type tilesMeta struct {
	SizeX, SizeY  int
	Magnification float64
	MmX           float64 `json:"mm_x"`
	MmY           float64 `json:"mm_y"`
}

// TestViewerInBrowser drives headless Chromium through the page served by
// the real tileserver: browse and search, open a slide, magnification and
// scale bar, measuring, rotation, deep links, channels, side by side,
// frames, styles, failed tiles, help and the cache panel, with no console
// error and no tile URL requested twice by one page load.
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
	var cmuMeta tilesMeta
	if err := getJSON(base+"/api/v1/item/"+cmu+"/tiles", &cmuMeta); err != nil {
		t.Fatal(err)
	}
	if cmuMeta.MmX <= 0 || cmuMeta.Magnification != 20 {
		t.Fatalf("CMU metadata %+v", cmuMeta)
	}
	// The OME file's frames: 3 channels × 5 planes, in the order its
	// reader gives (IndexStride).
	var omeMeta struct{ IndexStride, IndexRange map[string]int }
	if err := getJSON(base+"/api/v1/item/"+ome+"/tiles", &omeMeta); err != nil {
		t.Fatal(err)
	}
	strideC, strideZ := omeMeta.IndexStride["IndexC"], omeMeta.IndexStride["IndexZ"]
	if omeMeta.IndexRange["IndexC"] != 3 || omeMeta.IndexRange["IndexZ"] != 5 || strideC*strideZ == 0 {
		t.Fatalf("OME metadata %+v", omeMeta)
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
	ctx, cancelTimeout := context.WithTimeout(ctx, 5*time.Minute)
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
			logPageState(t, ctx, rec)
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
	idle := func(what string) {
		t.Helper()
		waitFor(what+" to finish", `document.getElementById("viewer").getAttribute("aria-busy") === "false"`)
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
		idle(what)
	}
	view := func(which string) viewState {
		t.Helper()
		return eval[viewState](t, ctx, viewStateJS+`(tileViewer.`+which+`())`)
	}
	// settle waits until the main viewer's image zoom is want (animations
	// done) and its tiles are in.
	settle := func(what string, want float64) {
		t.Helper()
		waitFor(what, fmt.Sprintf(`(() => { const v = tileViewer.main(); const img = v && v.world.getItemAt(0);
			return img && Math.abs(img.viewportToImageZoom(v.viewport.getZoom(true)) / %g - 1) < 1e-6
				&& Math.abs(v.viewport.getZoom(true) - v.viewport.getZoom(false)) < 1e-9; })()`, want))
		idle(what)
	}
	center := func() (float64, float64) {
		t.Helper()
		b := eval[struct{ X, Y, W, H float64 }](t, ctx,
			`(() => { const r = document.getElementById("viewer").getBoundingClientRect(); return {X: r.x, Y: r.y, W: r.width, H: r.height}; })()`)
		return b.X + b.W/2, b.Y + b.H/2
	}
	shoot := func(name string) {
		t.Helper()
		shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(screenshotDir(t), name), shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// opened waits until the main viewer shows the item with all its tiles.
	opened := func(what, id string) {
		t.Helper()
		waitFor(what, `document.getElementById("viewer").dataset.item === "`+id+`" && document.getElementById("viewer").getAttribute("aria-busy") === "false"`)
	}
	// reload opens the URL as a fresh page (no state of the previous one).
	reload := func(what, u string) {
		t.Helper()
		do(what+": blank page", chromedp.Navigate("about:blank"))
		rec.newPage()
		do(what, chromedp.Navigate(u))
	}

	// Browse: the root folder opens by itself and lists both slides and
	// the synthetic test image, each with a thumbnail (the test image has
	// no file behind it).
	do("open the page", chromedp.Navigate(base+"/"))
	waitFor("item cards", `document.querySelectorAll("#items a.card").length === 3`)
	waitFor("thumbnails", `document.querySelectorAll("#items img").length === 3 && [...document.querySelectorAll("#items img")].every(i => i.complete && i.naturalWidth > 0)`)
	if n, _, _ := rec.stats(cmu); n != 0 {
		t.Fatalf("%d tiles requested before an item was opened", n)
	}

	// Search: item?text= finds the OME file; an empty search lists the
	// folder again.
	do("search", chromedp.SendKeys(chromedp.ID("search"), "multi-channel\n"))
	waitFor("search results", `document.querySelectorAll("#items a.card").length === 1`)
	if got := eval[string](t, ctx, `document.querySelector("#items a.card").title`); got != omeName {
		t.Errorf("search found %q", got)
	}
	if got := text("#browser-status"); got != "1 item matches “multi-channel”." {
		t.Errorf("search status %q", got)
	}
	do("clear the search", chromedp.Evaluate[chromedp.Void](`document.getElementById("search").value = ""`), chromedp.SendKeys(chromedp.ID("search"), "\n"))
	waitFor("the folder again", `document.querySelectorAll("#items a.card").length === 3`)

	// Open the slide: tiles come from zxy.
	do("open the slide", chromedp.Click(chromedp.CSS(`#items a.card[title="`+cmuName+`"]`)))
	waitTiles("the slide's tiles", func() bool { n, _, _ := rec.stats(cmu); return n > 0 })
	waitFor("the time to a sharp view", `document.getElementById("viewer").dataset.sharpMs !== undefined`)
	coldMs := eval[string](t, ctx, `document.getElementById("viewer").dataset.sharpMs + " ms " + document.getElementById("viewer").dataset.timing`)
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
	cx, cy := center()
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

	// Magnification and scale bar at two zooms: the header shows the
	// objective power (20× native times the image zoom) and the scale
	// bar's width times the pixel size (mm_x) over the zoom is its label.
	if got := eval[string](t, ctx, `[...document.querySelectorAll("#mag-buttons button")].map(b => b.textContent).join(" ")`); got != "Fit 1.25× 2.5× 5× 10× 20×" {
		t.Errorf("magnification buttons %q", got)
	}
	// The whole slide fits at about 3.3× (a 487-pixel-high view of 2967
	// pixels at 20×): lower powers cannot be reached and are off.
	if got := eval[string](t, ctx, `[...document.querySelectorAll("#mag-buttons button:enabled")].map(b => b.textContent).join(" ")`); got != "Fit 5× 10× 20×" {
		t.Errorf("enabled magnification buttons %q", got)
	}
	for _, m := range []struct {
		button string
		mag    float64
		text   string
	}{{"5", 5, "5.0×"}, {"20", 20, "20×"}} {
		do("magnification "+m.text, chromedp.Click(chromedp.CSS(`#mag-buttons button[data-mag="`+m.button+`"]`)))
		settle("magnification "+m.text, m.mag/cmuMeta.Magnification)
		zoom := view("main").Zoom
		info := text("#zoom-info")
		if !strings.HasPrefix(info, m.text+" · ") {
			t.Errorf("at %g×: zoom info %q", m.mag, info)
		}
		bar := eval[struct {
			W     float64
			Label string
		}](t, ctx, `({W: document.getElementById("scalebar-bar").getBoundingClientRect().width, Label: document.getElementById("scalebar-label").textContent})`)
		um := parseMeasure(t, bar.Label)
		if want := bar.W * cmuMeta.MmX * 1000 / zoom; !near(um, want, 0.01) || bar.W < 40 || bar.W > 250 {
			t.Errorf("at %g×: scale bar %q over %.1f px, which is %.2f µm", m.mag, bar.Label, bar.W, want)
		}
		t.Logf("at %s the scale bar reads %s over %.1f px", m.text, bar.Label, bar.W)
	}

	// Ruler at 10×: 200 screen pixels are 400 image pixels.
	do("10×", chromedp.Click(chromedp.CSS(`#mag-buttons button[data-mag="10"]`)))
	settle("10×", 0.5)
	zoom := view("main").Zoom
	do("draw a ruler", chromedp.Click(chromedp.ID("ruler")),
		chromedp.MouseEvent(chromedp.MousePressed, cx-100, cy, chromedp.ButtonLeft, chromedp.ClickCount(1)),
		chromedp.MouseEvent(chromedp.MouseMoved, cx, cy, chromedp.ButtonLeft),
		chromedp.MouseEvent(chromedp.MouseMoved, cx+100, cy, chromedp.ButtonLeft),
		chromedp.MouseEvent(chromedp.MouseReleased, cx+100, cy, chromedp.ButtonLeft, chromedp.ClickCount(1)))
	waitFor("the ruler's label", `document.getElementById("measure-label").textContent.startsWith("Length")`)
	if got, want := parseMeasure(t, text("#measure-label")), 200/zoom*cmuMeta.MmX*1000; !near(got, want, 0.01) {
		t.Errorf("ruler over 200 px at 10×: %q, want %.1f µm", text("#measure-label"), want)
	}
	shoot("viewer.png")
	// Area: a right triangle of 100-pixel legs.
	do("draw an area", chromedp.Click(chromedp.ID("area")),
		chromedp.MouseClickXY(cx, cy), chromedp.MouseClickXY(cx+100, cy), chromedp.MouseClickXY(cx, cy+100),
		chromedp.MouseClickXY(cx, cy+100, chromedp.ClickCount(2)))
	waitFor("the area's label", `document.getElementById("measure-label").textContent.startsWith("Area")`)
	if got, want := parseMeasure(t, text("#measure-label")), 0.5*(100/zoom)*(100/zoom)*cmuMeta.MmX*cmuMeta.MmY*1e6; !near(got, want, 0.02) {
		t.Errorf("area of the triangle: %q, want %.0f µm²", text("#measure-label"), want)
	}
	do("end measuring", chromedp.Click(chromedp.ID("area")))

	// Side by side: the second viewer follows the first while synced.
	do("side by side", chromedp.Click(chromedp.ID("compare")))
	waitFor("the second slide", `tileViewer.second() && tileViewer.second().world.getItemCount() === 1`)
	cx, cy = center()
	do("pan the first slide",
		chromedp.MouseEvent(chromedp.MousePressed, cx, cy, chromedp.ButtonLeft, chromedp.ClickCount(1)),
		chromedp.MouseEvent(chromedp.MouseMoved, cx-30, cy-20, chromedp.ButtonLeft),
		chromedp.MouseEvent(chromedp.MouseMoved, cx-60, cy-40, chromedp.ButtonLeft),
		chromedp.MouseEvent(chromedp.MouseReleased, cx-60, cy-40, chromedp.ButtonLeft, chromedp.ClickCount(1)))
	do("and zoom it", chromedp.Click(chromedp.CSS(`#mag-buttons button[data-mag="5"]`)))
	settle("5× side by side", 0.25)
	a, b := view("main"), view("second")
	if math.Abs(a.VX-b.VX) > 1e-6 || math.Abs(a.VY-b.VY) > 1e-6 || math.Abs(a.VZoom/b.VZoom-1) > 1e-6 {
		t.Errorf("synced viewers differ: %+v vs %+v", a, b)
	}
	waitFor("the pair in the address", `location.hash.includes("compare=")`)
	shoot("viewer-side-by-side.png")
	do("unsync", chromedp.Click(chromedp.ID("sync")), chromedp.Click(chromedp.CSS(`#mag-buttons button[data-mag="10"]`)))
	settle("10× unsynced", 0.5)
	if a, b := view("main"), view("second"); math.Abs(a.VZoom/b.VZoom-1) < 0.1 {
		t.Errorf("unsynced viewers still follow: %+v vs %+v", a, b)
	}
	do("side by side off", chromedp.Click(chromedp.ID("compare")))
	waitFor("one viewer", `document.getElementById("viewer2").hidden`)
	cx, cy = center()

	// Rotation and a deep link: rotate, then open the address as a fresh
	// page: the same centre (within a pixel), zoom and rotation.
	do("rotate right", chromedp.Click(chromedp.ID("rotate-right")))
	waitFor("the rotation", `tileViewer.main().viewport.getRotation(true) === 90`)
	idle("rotated")
	waitFor("the view in the address", `location.hash.includes("rot=90") && !location.hash.includes("compare=")`)
	checkLink := func(what string, want viewState) {
		t.Helper()
		link := eval[string](t, ctx, `location.href`)
		reload(what, link)
		opened(what+" open", eval[string](t, ctx, `new URLSearchParams(location.hash.slice(1)).get("item")`))
		got := view("main")
		if math.Abs(got.X-want.X)*want.Zoom > 1 || math.Abs(got.Y-want.Y)*want.Zoom > 1 ||
			math.Abs(got.Zoom/want.Zoom-1) > 1e-4 || math.Mod(got.Rot+360, 360) != math.Mod(want.Rot+360, 360) {
			t.Errorf("%s restored %+v, the view was %+v", what, got, want)
		}
	}
	checkLink("the slide's link", view("main"))

	// Another slide opens unrotated. The card is clicked while the page is
	// about to write the current view into the address (250 ms after the
	// view last moved) and busy: Chromium handles the click's input before
	// that timer, and the link's hashchange after it. The link wins.
	card := eval[struct{ X, Y float64 }](t, ctx, `(() => { const r = document.querySelector('#items a.card[title="`+omeName+`"]').getBoundingClientRect();
		return {X: r.x + r.width / 2, Y: r.y + r.height / 2}; })()`)
	do("open the OME item as the view is saved", chromedp.Evaluate[chromedp.Void](`(() => {
		const v = tileViewer.main();
		v.addOnceHandler("viewport-change", () => setTimeout(() => { const t = performance.now(); while (performance.now() - t < 800) {} }, 100));
		v.viewport.panBy(new OpenSeadragon.Point(0.01, 0), true);
	})()`), chromedp.Sleep(200*time.Millisecond), chromedp.MouseClickXY(card.X, card.Y))
	opened("the OME item", ome)
	if r := view("main").Rot; r != 0 {
		t.Errorf("the next slide opened rotated by %g°", r)
	}

	// Channels: three, all shown, composed into one style with a window
	// seeded from each channel's statistics (the bands route).
	if got := eval[string](t, ctx, `[...document.querySelectorAll("#channel-rows .channel-name")].map(l => l.textContent).join(",")`); got != "Channel 1,Channel 2,Channel 3" {
		t.Errorf("channel names %q", got)
	}
	type band struct {
		Frame      *int    `json:"frame"`
		FrameDelta int     `json:"framedelta"`
		Palette    string  `json:"palette"`
		Min        float64 `json:"min"`
		Max        float64 `json:"max"`
		Composite  string  `json:"composite"`
	}
	lastStyle := func() []band {
		t.Helper()
		st := rec.styles(ome)
		if len(st) == 0 {
			t.Fatalf("no styled tiles")
		}
		var s struct{ Bands []band }
		if err := json.Unmarshal([]byte(st[len(st)-1]), &s); err != nil {
			t.Fatalf("style %s: %v", st[len(st)-1], err)
		}
		return s.Bands
	}
	if st := rec.styles(ome); len(st) != 1 {
		t.Errorf("styles before any change: %q (want the seeded one only)", st)
	}
	bands := lastStyle()
	if len(bands) != 3 {
		t.Fatalf("composed style %+v", bands)
	}
	for c, bd := range bands {
		var stats map[string]struct { // Girder writes uint8 statistics as strings
			Min float64 `json:"min,string"`
			Max float64 `json:"max,string"`
		}
		if err := getJSON(fmt.Sprintf("%s/api/v1/item/%s/tiles/bands?frame=%d", base, ome, c*strideC), &stats); err != nil {
			t.Fatal(err)
		}
		if bd.FrameDelta != c*strideC || bd.Frame != nil || bd.Composite != "lighten" || bd.Min != stats["1"].Min || bd.Max != stats["1"].Max {
			t.Errorf("channel %d: %+v, statistics %+v", c, bd, stats["1"])
		}
	}
	if f := rec.frames(ome); len(f) != 1 || f[0] == 0 {
		t.Errorf("frames requested: %v (want only frame 0, channels by framedelta)", f)
	}
	do("hide channel 2", chromedp.Click(chromedp.ID("ch-1-on")))
	waitTiles("tiles without channel 2", func() bool { return len(lastStyle()) == 2 })
	if bands := lastStyle(); bands[0].FrameDelta != 0 || bands[1].FrameDelta != 2*strideC {
		t.Errorf("style without channel 2: %+v", bands)
	}

	// Frames: the Z slider steps by IndexStride.IndexZ frames; with
	// channels composed there is no channel slider.
	if got := eval[bool](t, ctx, `document.getElementById("axis-C") === null && document.getElementById("axis-Z") !== null`); !got {
		t.Errorf("axis sliders: want Z only")
	}
	do("move the Z slider", chromedp.Focus(chromedp.ID("axis-Z")), chromedp.KeyEvent(kb.ArrowRight))
	waitTiles("the next plane's tiles", func() bool { return rec.frames(ome)[strideZ] > 0 })
	if f := rec.frames(ome); len(f) != 2 {
		t.Errorf("frames requested: %v (want 0 and %d)", f, strideZ)
	}
	if got, want := text("#frame-label"), fmt.Sprintf("%d of 15 · C 1/3 · Z 2/5", strideZ+1); got != want {
		t.Errorf("frame label after the Z step %q, want %q", got, want)
	}
	shoot("viewer-channels.png")

	// A deep link keeps the frame and the channels too.
	do("zoom in", chromedp.MouseClickXY(cx+40, cy+10))
	idle("zoomed")
	do("rotate left", chromedp.Click(chromedp.ID("rotate-left")))
	waitFor("the rotation", `(tileViewer.main().viewport.getRotation(true) + 360) % 360 === 270`)
	idle("rotated")
	waitFor("the view in the address", fmt.Sprintf(`location.hash.includes("rot=270") && location.hash.includes("frame=%d")`, strideZ))
	checkLink("the OME item's link", view("main"))
	if got := eval[string](t, ctx, `document.getElementById("frame").value + " " + [0, 1, 2].map(i => document.getElementById("ch-" + i + "-on").checked).join(",")`); got != fmt.Sprint(strideZ, " true,false,true") {
		t.Errorf("restored frame and channels %q", got)
	}
	if f := rec.frames(ome); f[strideZ] == 0 {
		t.Errorf("the restored link did not ask for frame %d: %v", strideZ, f)
	}

	// Open the slide while the OME item's view is about to be written
	// into the address (250 ms after it last moved) and the slide's
	// metadata is slow (held for a second): the address keeps the slide's
	// link until its metadata is in, never the slide with the OME item's
	// frame and style.
	do("open the slide with slow metadata", chromedp.Evaluate[chromedp.Void](`(() => {
		window.addressWrites = [];
		const replace = history.replaceState.bind(history);
		history.replaceState = (state, title, u) => { addressWrites.push(String(u)); replace(state, title, u); };
		const fetch = window.fetch;
		window.fetch = (u, o) => String(u).endsWith("/item/`+cmu+`/tiles")
			? new Promise((resolve) => setTimeout(resolve, 1000)).then(() => fetch(u, o)) : fetch(u, o);
		tileViewer.main().viewport.panBy(new OpenSeadragon.Point(0.01, 0), true);
	})()`), chromedp.Click(chromedp.CSS(`#items a.card[title="`+cmuName+`"]`)))
	opened("the slide", cmu)
	for _, u := range eval[[]string](t, ctx, `addressWrites`) {
		if strings.Contains(u, "item="+cmu) && (strings.Contains(u, "frame=") || strings.Contains(u, "style=")) {
			t.Errorf("the address paired the slide with the OME item's frame or style: %s", u)
		}
	}
	if r := view("main").Rot; r != 0 {
		t.Errorf("the slide opened rotated by %g° after a rotated one", r)
	}
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
		shoot("viewer-style.png")
	}

	// Help: ? lists the keys.
	do("press ?", chromedp.Click(chromedp.ID("item-title")), chromedp.KeyEvent("?"))
	waitFor("the help", `document.getElementById("help").open`)
	if got := text("#help"); !strings.Contains(got, "rotate right, left by 90°") || !strings.Contains(got, "ruler") {
		t.Errorf("help %q", got)
	}
	do("close the help", chromedp.KeyEvent(kb.Escape))
	waitFor("the help closed", `!document.getElementById("help").open`)

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

	// Time to a sharp view with every tile a memory hit on the server (the
	// browser's cache off, the page fresh).
	do("browser cache off", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: true})
		return err
	}))
	// The first two opens refill the server's tile cache: a stored tile
	// is kept from its second request (the doorkeeper).
	for range 3 {
		reload("warm open", base+"/#item="+cmu)
		waitFor("the time to a sharp view", `document.getElementById("viewer").dataset.sharpMs !== undefined`)
	}
	warmMs := eval[string](t, ctx, `document.getElementById("viewer").dataset.sharpMs + " ms " + document.getElementById("viewer").dataset.timing`)
	t.Logf("time to a sharp view of %s (1400×900 window): cold %s, every tile a server memory hit %s", cmuName, coldMs, warmMs)

	// Honest states: an item the server cannot show says why.
	var notFound struct{ Message string }
	res, err := http.Get(base + "/api/v1/item/ffffffffffffffffffffffff/tiles")
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(res.Body).Decode(&notFound)
	res.Body.Close()
	reload("an unreadable item", base+"/#item=ffffffffffffffffffffffff")
	waitFor("the server's message", `document.getElementById("stage-message").textContent === "This item cannot be shown: " + `+strconv.Quote(notFound.Message))
	if eval[bool](t, ctx, `!document.getElementById("viewer-section").hidden`) {
		t.Errorf("the viewer is shown for an item that cannot be shown")
	}

	// A failing tile is retried and, while it fails, said so; one that
	// keeps failing is offered for another try, which loads it.
	injected := &failingTiles{remaining: map[string]int{}}
	front := proxyPage(t, base, web.Config{AdminDisabled: true}, injected)
	flaky := fmt.Sprintf("/api/v1/item/%s/tiles/zxy/%d/0/0", cmu, z0)
	broken := fmt.Sprintf("/api/v1/item/%s/tiles/zxy/%d/1/1", cmu, z0)
	injected.set(flaky, 2)   // the preload and OpenSeadragon's first try
	injected.set(broken, 99) // every try
	reload("a slide with failing tiles", front+"/#item="+cmu)
	waitFor("the failure shown", `document.getElementById("tile-status").textContent.includes("failed: Injected failure")`)
	waitFor("the final failure", `document.getElementById("tile-retry") !== null`)
	if got := text("#tile-status"); got != "1 tile failed: Injected failure. Not loaded.Retry" {
		t.Errorf("tile status %q", got)
	}
	if injected.count(flaky) < 3 {
		t.Errorf("the flaky tile was asked for %d times", injected.count(flaky))
	}
	injected.set(broken, 0)
	do("retry", chromedp.Click(chromedp.ID("tile-retry")))
	waitFor("the tile loaded", `document.getElementById("tile-status").hidden`)
	if injected.served(broken) != 1 {
		t.Errorf("the broken tile was served %d times after the retry", injected.served(broken))
	}
	// Without an admin token the cache panel says admin routes are off.
	if got := text("#cache-status"); !strings.HasPrefix(got, "Admin routes are disabled") {
		t.Errorf("cache panel without admin routes %q", got)
	}

	// A build without the viewer library still browses and says what is
	// missing instead of failing.
	reload("open a page built without the library", pageWithoutLib(t, base)+"/")
	waitFor("item cards", `document.querySelectorAll("#items a.card").length === 3`)
	do("open the slide", chromedp.Click(chromedp.CSS(`#items a.card[title="`+cmuName+`"]`)))
	waitFor("the missing-library message", `document.getElementById("stage-message").textContent.includes("missing from this build")`)
	if got := text("#meta-facts"); !strings.Contains(got, "2220 × 2967 px") {
		t.Errorf("metadata without the library %q", got)
	}

	retried := injected.urls()
	if dups := rec.duplicates(retried); len(dups) > 0 {
		t.Errorf("%d tile URLs requested more than once by one page, e.g. %s", len(dups), dups[0])
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, e := range rec.tileErr {
		if u := strings.Fields(e)[1]; !retried[strings.TrimPrefix(u, front)] {
			t.Errorf("tile request failed: %s", e)
		}
	}
	for _, e := range rec.consoleErr {
		// OpenSeadragon logs each failed tile; only the injected ones may.
		if strings.Contains(e, "failed to load") && strings.Contains(e, "Injected failure") {
			continue
		}
		t.Errorf("browser console: %s", e)
	}
	for _, e := range rec.logErr {
		t.Logf("browser log: %s", e)
	}
	t.Logf("%d tile requests in all", len(rec.tiles))
}

// failingTiles makes chosen tile requests fail with a Girder error, a given
// number of times each, and counts the requests.
type failingTiles struct {
	mu        sync.Mutex
	remaining map[string]int // path → failures still to give
	asked     map[string]int
	ok        map[string]int
}

func (f *failingTiles) set(path string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.remaining[path] = n
}

func (f *failingTiles) count(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asked[path]
}

func (f *failingTiles) served(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ok[path]
}

func (f *failingTiles) urls() map[string]bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]bool{}
	for p := range f.remaining {
		out[p] = true
	}
	return out
}

// fail reports whether to fail this request, counting it.
func (f *failingTiles) fail(path string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.asked == nil {
		f.asked, f.ok = map[string]int{}, map[string]int{}
	}
	if _, watched := f.remaining[path]; !watched {
		return false
	}
	f.asked[path]++
	if f.remaining[path] > 0 {
		f.remaining[path]--
		return true
	}
	f.ok[path]++
	return false
}

// proxyPage serves the page with cfg in front of the real server's API,
// failing the tiles fail chooses (nil: none).
func proxyPage(t *testing.T, api string, cfg web.Config, fail *failingTiles) string {
	u, err := url.Parse(api)
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	proxy := httputil.NewSingleHostReverseProxy(u)
	// Requests the browser abandons when the test ends are not news.
	proxy.ErrorLog = stdlog.New(io.Discard, "", 0)
	e.Any("/api/*", func(c echo.Context) error {
		if fail != nil && fail.fail(c.Request().URL.Path) {
			return c.JSON(http.StatusInternalServerError, map[string]string{"message": "Injected failure", "type": "internal"})
		}
		proxy.ServeHTTP(c.Response(), c.Request())
		return nil
	})
	web.Register(e, cfg)
	s := httptest.NewServer(e)
	t.Cleanup(s.Close)
	return s.URL
}

// pageWithoutLib serves the page as a build without `make web` would, in
// front of the real server's API.
func pageWithoutLib(t *testing.T, api string) string {
	return proxyPage(t, api, web.Config{Lib: fstest.MapFS{}}, nil)
}
