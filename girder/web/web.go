// Package web serves the viewer page at / : a folder and item browser with
// search and thumbnails, an OpenSeadragon pan/zoom viewer over the
// large_image tile routes (magnification, scale bar, rotation, measuring,
// deep links, two slides side by side), frame, channel and style controls,
// associated images, metadata and a cache panel. The page itself (static/) is committed; the viewer library is
// copied from npm into dist/ by `make web` and embedded at build time, so a
// binary built without that step still serves the page, which then says
// the viewer library is missing.
package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/labstack/echo/v4"
)

//go:embed static
var staticFiles embed.FS

// all: keeps the committed placeholder (a dotfile) so the pattern matches
// even before `make web` has filled the directory.
//
//go:embed all:dist
var distFiles embed.FS

// LibScript is the viewer library's path inside the library tree.
const LibScript = "openseadragon/openseadragon.min.js"

// AssetPrefix is the URL prefix of the page's files; the library tree is
// served below AssetPrefix + "lib/".
const AssetPrefix = "/web/"

// Config configures the page.
type Config struct {
	// Title is the page title; empty means "Tile server".
	Title string
	// Lib is the viewer library tree (holding LibScript and its images);
	// nil means the tree embedded from dist/.
	Lib fs.FS
	// AdminDisabled tells the page that admin routes cannot work (the
	// server runs without --admin-token), so the cache panel says so
	// instead of asking for a token.
	AdminDisabled bool
}

// asset is one file ready to send.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

// Register mounts the page at / and its files below /web/ on e.
func Register(e *echo.Echo, cfg Config) {
	h := newHandler(cfg)
	e.GET("/", h.serve)
	e.HEAD("/", h.serve)
	e.GET(AssetPrefix+"*", h.serve)
	e.HEAD(AssetPrefix+"*", h.serve)
}

type handler struct {
	files map[string]asset // URL path → file
}

func newHandler(cfg Config) *handler {
	lib := cfg.Lib
	if lib == nil {
		sub, err := fs.Sub(distFiles, "dist")
		if err != nil {
			panic(err) // the embed pattern guarantees the directory
		}
		lib = sub
	}
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic(err)
	}
	h := &handler{files: map[string]asset{}}
	h.addTree(static, AssetPrefix)
	h.addTree(lib, AssetPrefix+"lib/")

	_, err = fs.Stat(lib, LibScript)
	index, err2 := fs.ReadFile(static, "index.html")
	if err2 != nil {
		panic(err2)
	}
	h.add("/", renderIndex(index, cfg.Title, err == nil, !cfg.AdminDisabled))
	delete(h.files, AssetPrefix+"index.html")
	return h
}

// renderIndex fills the page's placeholders: the title, whether the viewer
// library is present (so the script never requests a missing file) and
// whether admin routes are enabled.
func renderIndex(page []byte, title string, haveLib, admin bool) []byte {
	if title == "" {
		title = "Tile server"
	}
	lib := ""
	if haveLib {
		lib = AssetPrefix + "lib/" + LibScript
	}
	adminState := "off"
	if admin {
		adminState = "on"
	}
	r := strings.NewReplacer("{{TITLE}}", html.EscapeString(title), "{{VIEWER_LIB}}", html.EscapeString(lib), "{{ADMIN}}", adminState)
	return []byte(r.Replace(string(page)))
}

// addTree loads every regular file of fsys except dotfiles (the dist
// placeholder and its .gitignore are not assets).
func (h *handler) addTree(fsys fs.FS, prefix string) {
	_ = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && p != "." {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		h.add(prefix+p, b)
		return nil
	})
}

func (h *handler) add(urlPath string, body []byte) {
	ctype := mime.TypeByExtension(path.Ext(urlPath))
	if urlPath == "/" {
		ctype = "text/html; charset=utf-8"
	}
	if ctype == "" {
		ctype = http.DetectContentType(body)
	}
	sum := sha256.Sum256(body)
	h.files[urlPath] = asset{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
}

// serve answers from memory with a content ETag; no-cache makes browsers
// revalidate, so a new build is picked up at once while unchanged files
// cost only a 304.
func (h *handler) serve(c echo.Context) error {
	a, ok := h.files[c.Request().URL.Path]
	if !ok {
		return echo.ErrNotFound
	}
	hd := c.Response().Header()
	hd.Set("ETag", a.etag)
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Content-Type-Options", "nosniff")
	if match := c.Request().Header.Get("If-None-Match"); match != "" && etagMatches(match, a.etag) {
		return c.NoContent(http.StatusNotModified)
	}
	if c.Request().Method == http.MethodHead {
		hd.Set(echo.HeaderContentType, a.ctype)
		return c.NoContent(http.StatusOK)
	}
	return c.Blob(http.StatusOK, a.ctype, a.body)
}

func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}
