package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
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
const osdPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>IIIF</title>
<style>#v{width:500px;height:400px}</style></head>
<body><div id="v"></div>
<script src="/lib.js"></script>
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

// iiifBrowser is headless Chromium recording IIIF image responses (all
// must be 200 with Access-Control-Allow-Origin: *) and console errors.
type iiifBrowser struct {
	t          *testing.T
	ctx        context.Context
	start      time.Time
	mu         sync.Mutex
	tiles      []string
	badTiles   []string
	consoleErr []string
}

func newIIIFBrowser(t *testing.T, chrome string) *iiifBrowser {
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chrome), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(900, 700))
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	ctx, cancelTimeout := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(cancelTimeout)
	br := &iiifBrowser{t: t, ctx: ctx, start: time.Now()}
	if err := chromedp.Listen(ctx, br.listen); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return br
}

func (br *iiifBrowser) listen(ev any) {
	br.mu.Lock()
	defer br.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventResponseReceived:
		if !iiifTileRe.MatchString(ev.Response.URL) {
			return
		}
		br.tiles = append(br.tiles, ev.Response.URL)
		if ev.Response.Status != http.StatusOK || ev.Response.Headers["Access-Control-Allow-Origin"] != "*" {
			br.badTiles = append(br.badTiles, fmt.Sprintf("%d %s", ev.Response.Status, ev.Response.URL))
		}
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError {
			var parts []string
			for _, a := range ev.Args {
				parts = append(parts, string(a.Value)+a.Description)
			}
			msg := strings.Join(parts, " ")
			if !strings.Contains(msg, miradorReactNotice) {
				br.consoleErr = append(br.consoleErr, msg)
			}
		}
	case *runtime.EventExceptionThrown:
		br.consoleErr = append(br.consoleErr, ev.ExceptionDetails.Text)
	}
}

func (br *iiifBrowser) navigate(url string) {
	br.t.Helper()
	br.mu.Lock()
	br.tiles, br.badTiles = nil, nil
	br.mu.Unlock()
	if err := chromedp.Do(br.ctx, chromedp.Navigate(url)); err != nil {
		br.t.Fatalf("open %s: %v", url, err)
	}
}

// waitFor polls a page predicate; the deadline only bounds a hang.
func (br *iiifBrowser) waitFor(what, expr string) {
	br.t.Helper()
	defer func() { br.t.Logf("%s after %v", what, time.Since(br.start)) }()
	if _, err := chromedp.Run(br.ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(90*time.Second))); err != nil {
		br.t.Fatalf("waiting for %s: %v", what, err)
	}
}

// waitTiles waits until IIIF tiles matching want have loaded.
func (br *iiifBrowser) waitTiles(what string, want func(tiles []string) bool) {
	br.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		br.mu.Lock()
		ok := want(br.tiles)
		br.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			br.t.Fatalf("waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// check reports failed tiles and console errors.
func (br *iiifBrowser) check(what string) {
	br.t.Helper()
	br.mu.Lock()
	defer br.mu.Unlock()
	if len(br.badTiles) > 0 {
		br.t.Errorf("%s: failed IIIF requests %v", what, br.badTiles)
	}
	if len(br.consoleErr) > 0 {
		br.t.Errorf("%s: console errors %v", what, br.consoleErr)
	}
}

// pageServer serves a page and one script from an origin of its own.
func pageServer(t *testing.T, page string, script []byte) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/lib.js":
			w.Header().Set("Content-Type", "text/javascript")
			_, _ = w.Write(script)
		case "/":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write([]byte(page))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// fullResTile reports whether an IIIF URL is a full-resolution tile of the
// Aperio slide: a 240×240 region at size 240,240 (3.0) or 240, (2.1).
func fullResTile(u string) bool { return strings.Contains(u, ",240,240/240,") }

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
	page := pageServer(t, osdPage, lib)
	br := newIIIFBrowser(t, chrome)
	for _, version := range []string{"3", "2"} {
		br.navigate(page + "/?src=" + base + "/iiif/" + version + "/" + cmu + "/info.json")
		br.waitFor("the whole slide", `window.loaded > 0 && window.fully()`)
		// Zoom to full resolution at the centre: the full-resolution
		// tiles are stored tiles, served by the passthrough path.
		if err := chromedp.Do(br.ctx, chromedp.Evaluate[chromedp.Void](
			`void viewer.viewport.zoomTo(viewer.viewport.getMaxZoom(), null, true)`)); err != nil {
			t.Fatal(err)
		}
		br.waitFor("full resolution", `window.fully()`)
		if failed, err := chromedp.Run(br.ctx, chromedp.Evaluate[int](`window.failed.length`)); err != nil || failed != 0 {
			t.Errorf("v%s: %d tiles failed (%v)", version, failed, err)
		}
		br.waitTiles("full-resolution tiles", func(tiles []string) bool {
			return slices.ContainsFunc(tiles, fullResTile)
		})
		br.check("OpenSeadragon, Image API " + version)
	}
}

// miradorReactNotice is a deprecation notice React 19 logs as an error
// while Mirador 4.0.0 renders its own components, whatever it displays;
// it says nothing about the server's documents.
const miradorReactNotice = "Accessing element.ref was removed in React 19"

// miradorPage opens Mirador on the manifest or collection given as ?src=.
const miradorPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>Mirador</title></head>
<body><div id="m" style="position:absolute;inset:0"></div>
<script src="/lib.js"></script>
<script>
Mirador.viewer({id: "m", windows: [{manifestId: new URLSearchParams(location.search).get("src")}]});
</script></body></html>`

// TestIIIFInMirador opens a slide's manifest in Mirador (from npm) and
// checks that its tiles load through the image service with no console
// error, then opens the folder's collection and checks that it lists the
// slides.
func TestIIIFInMirador(t *testing.T) {
	chrome := chromiumPath(t)
	lib, err := os.ReadFile(filepath.Join("dist", "mirador", "mirador.min.js"))
	if err != nil {
		unavailable(t, "Mirador is not built: run `make web`")
	}
	base := startTileserver(t)
	cmu := itemIDs(t, base)[cmuName]
	if cmu == "" {
		t.Fatal("the slide was not imported")
	}
	page := pageServer(t, miradorPage, lib)
	br := newIIIFBrowser(t, chrome)

	br.navigate(page + "/?src=" + base + "/iiif/3/" + cmu + "/manifest")
	br.waitFor("Mirador's viewer", `document.querySelector(".openseadragon-canvas") !== null`)
	br.waitTiles("the slide's tiles", func(tiles []string) bool {
		n := 0
		for _, u := range tiles {
			if strings.Contains(u, "/iiif/3/"+cmu+"/") && !strings.Contains(u, "/full/") {
				n++
			}
		}
		return n >= 4
	})
	br.waitFor("the canvas label", `document.body.innerText.includes("`+cmuName+`")`)
	br.check("Mirador manifest")

	var colls, folders []struct {
		ID string `json:"_id"`
	}
	if err := getJSON(base+"/api/v1/collection", &colls); err != nil {
		t.Fatal(err)
	}
	if err := getJSON(base+"/api/v1/folder?parentType=collection&parentId="+colls[0].ID, &folders); err != nil {
		t.Fatal(err)
	}
	br.navigate(page + "/?src=" + base + "/iiif/3/collection/" + folders[0].ID)
	// Mirador opens a collection in a window with a "Show collection"
	// button, which lists its manifests.
	showCollection := `[...document.querySelectorAll("button")].find(b => /show collection/i.test(b.innerText))`
	br.waitFor("the collection", showCollection+` !== undefined`)
	if err := chromedp.Do(br.ctx, chromedp.Evaluate[chromedp.Void](`void `+showCollection+`.click()`)); err != nil {
		t.Fatal(err)
	}
	br.waitFor("the collection's slides", `document.body.innerText.includes("`+cmuName+`") && document.body.innerText.includes("`+omeName+`")`)
	// Pick the multi-frame slide: its first frame's tiles load.
	ome := itemIDs(t, base)[omeName]
	pick := `[...document.querySelectorAll("li, button, [role=menuitem]")].filter(e => e.innerText.trim() === "` + omeName + `").pop()`
	if err := chromedp.Do(br.ctx, chromedp.Evaluate[chromedp.Void](`void `+pick+`.click()`)); err != nil {
		t.Fatal(err)
	}
	br.waitTiles("the picked slide's tiles", func(tiles []string) bool {
		return slices.ContainsFunc(tiles, func(u string) bool { return strings.Contains(u, "/iiif/3/"+ome+"~0/") })
	})
	br.check("Mirador collection")
}
