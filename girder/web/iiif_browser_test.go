package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// iiifPage is a page of another origin than the tile server that opens an
// IIIF image service in OpenSeadragon's IIIF tile source, so info.json and
// every tile cross origins (crossOriginPolicy makes the tiles CORS
// requests too). It records loaded and failed tiles.
const iiifPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>IIIF</title>
<style>#v{width:500px;height:400px}</style></head>
<body><div id="v"></div>
<script src="/osd.js"></script>
<script>
window.loaded = 0; window.failed = [];
const v = OpenSeadragon({id: "v", tileSources: new URLSearchParams(location.search).get("src"),
  showNavigationControl: false, crossOriginPolicy: "Anonymous", immediateRender: true});
v.addHandler("tile-loaded", () => { window.loaded++; });
v.addHandler("tile-load-failed", e => { window.failed.push(e.message); console.error("tile failed", e.message); });
v.addHandler("open-failed", e => { console.error("open failed", e.message); });
window.viewer = v;
window.fully = () => v.world.getItemCount() === 1 && v.world.getItemAt(0).getFullyLoaded();
</script></body></html>`

// iiifTileRe matches IIIF image requests.
var iiifTileRe = regexp.MustCompile(`/iiif/[23]/[0-9a-f]{24}(~\d+)?/[^/]+/[^/]+/[^/]+/[a-z]+\.[a-z]+$`)

// TestIIIFInOpenSeadragon opens a slide through OpenSeadragon's IIIF tile
// source (Image API 3.0 and 2.1) from another origin, zooms to full
// resolution, and checks that every tile loads with no console error.
func TestIIIFInOpenSeadragon(t *testing.T) {
	chrome := chromiumPath(t)
	lib, err := os.ReadFile(filepath.Join("dist", "openseadragon", "openseadragon.min.js"))
	if err != nil {
		unavailable(t, "the viewer library is not built: run `make web`")
	}
	base := startTileserver(t)
	cmu := itemIDs(t, base)[cmuName]
	if cmu == "" {
		t.Fatal("the slide was not imported")
	}
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/osd.js" {
			w.Header().Set("Content-Type", "text/javascript")
			_, _ = w.Write(lib)
			return
		}
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(iiifPage))
	}))
	defer page.Close()

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chrome), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(700, 600))
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 4*time.Minute)
	defer cancelTimeout()

	var mu sync.Mutex
	var tiles, badTiles, consoleErr []string
	if err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventResponseReceived:
			if !iiifTileRe.MatchString(ev.Response.URL) {
				return
			}
			tiles = append(tiles, ev.Response.URL)
			if ev.Response.Status != http.StatusOK || ev.Response.Headers["Access-Control-Allow-Origin"] != "*" {
				badTiles = append(badTiles, fmt.Sprintf("%d %s", ev.Response.Status, ev.Response.URL))
			}
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				consoleErr = append(consoleErr, strings.Join(parts, " "))
			}
		case *runtime.EventExceptionThrown:
			consoleErr = append(consoleErr, ev.ExceptionDetails.Text)
		}
	}); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	start := time.Now()
	waitFor := func(what, expr string) {
		t.Helper()
		defer func() { t.Logf("%s after %v", what, time.Since(start)) }()
		if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
			chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(90*time.Second))); err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}

	for _, version := range []string{"3", "2"} {
		mu.Lock()
		tiles, badTiles = nil, nil
		mu.Unlock()
		src := base + "/iiif/" + version + "/" + cmu + "/info.json"
		if err := chromedp.Do(ctx, chromedp.Navigate(page.URL+"/?src="+src)); err != nil {
			t.Fatalf("open the page: %v", err)
		}
		waitFor("the whole slide", `window.loaded > 0 && window.fully()`)
		// Zoom to full resolution at the centre: the full-resolution
		// tiles are stored tiles, served by the passthrough path.
		if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](
			`void viewer.viewport.zoomTo(viewer.viewport.getMaxZoom(), null, true)`)); err != nil {
			t.Fatal(err)
		}
		waitFor("full resolution", `window.fully()`)
		var failed int
		if failed, err = chromedp.Run(ctx, chromedp.Evaluate[int](`window.failed.length`)); err != nil || failed != 0 {
			t.Errorf("v%s: %d tiles failed (%v)", version, failed, err)
		}
		mu.Lock()
		full := 0
		for _, u := range tiles {
			// A full-resolution tile: a 240×240 region at size 240,240 (3)
			// or 240, (2).
			if strings.Contains(u, ",240,240/240,") {
				full++
			}
		}
		if len(tiles) == 0 || full == 0 || len(badTiles) > 0 {
			t.Errorf("v%s: %d IIIF tiles, %d at full resolution, failures %v", version, len(tiles), full, badTiles)
		}
		mu.Unlock()
	}
	mu.Lock()
	defer mu.Unlock()
	if len(consoleErr) > 0 {
		t.Errorf("console errors: %v", consoleErr)
	}
}
