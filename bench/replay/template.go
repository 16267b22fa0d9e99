package replay

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/tileserver/tileserver/bench/trace"
)

// Presets are URL templates for the servers the harness knows, relative to
// a base URL. {id} is the trace's item id unless the template names the
// image itself.
var Presets = map[string]string{
	// This server.
	"ours": "/api/v1/item/{id}/tiles/zxy/{z}/{x}/{y}",
	// Plain large_image (Girder without the /api/v1 root, as large_image's
	// own tile server exposes it).
	"large_image": "/item/{id}/tiles/zxy/{z}/{x}/{y}",
	// IIPImage's DeepZoom protocol ({id} is the file name under its
	// FILESYSTEM_PREFIX, e.g. slide.tif).
	"iip-deepzoom": "/fcgi-bin/iipsrv.fcgi?DeepZoom={id}_files/{level}/{x}_{y}.jpg",
	// IIPImage's IIIF image API: the region of the tile in full-resolution
	// pixels scaled to the tile's output width.
	"iip-iiif": "/fcgi-bin/iipsrv.fcgi?IIIF={id}/{left},{top},{width},{height}/{outw},/0/default.jpg",
	// OpenSlide's deepzoom_server.py ({id} is "slide").
	"openslide-deepzoom": "/{id}_files/{level}/{x}_{y}.jpeg",
}

var placeholder = regexp.MustCompile(`\{[a-z]+\}`)

var known = map[string]bool{
	"{id}": true, "{z}": true, "{x}": true, "{y}": true, "{level}": true,
	"{left}": true, "{top}": true, "{width}": true, "{height}": true,
	"{outw}": true, "{outh}": true,
}

// Template turns a trace tile into a URL. Placeholders:
//
//	{id}              the trace's item id
//	{z} {x} {y}       large_image zxy numbering (z = 0 is the lowest resolution)
//	{level}           DeepZoom level: z + ceil(log2(max(sizeX,sizeY))) - (levels-1)
//	{left} {top} {width} {height}  the tile's region in full-resolution pixels
//	{outw} {outh}     the tile's size in pixels at its level (edge tiles are smaller)
type Template struct {
	raw string
	// DeepZoomTileSize is the tile size the DeepZoom server was started
	// with; {level} only lines up with zxy when it equals the slide's.
	DeepZoomTileSize int
}

// ParseTemplate parses a full URL template, or base plus a preset name or
// a path template.
func ParseTemplate(base, tmpl string) (Template, error) {
	if p, ok := Presets[tmpl]; ok {
		tmpl = p
	}
	if !strings.Contains(tmpl, "://") {
		if base == "" {
			return Template{}, fmt.Errorf("template %q needs a base URL", tmpl)
		}
		tmpl = strings.TrimRight(base, "/") + "/" + strings.TrimLeft(tmpl, "/")
	}
	for _, p := range placeholder.FindAllString(tmpl, -1) {
		if !known[p] {
			return Template{}, fmt.Errorf("template %q: unknown placeholder %s", tmpl, p)
		}
	}
	return Template{raw: tmpl, DeepZoomTileSize: 256}, nil
}

// String returns the full template.
func (t Template) String() string { return t.raw }

// URL returns the URL of tile tl of slide s.
func (t Template) URL(s trace.Slide, tl trace.Tile) (string, error) {
	if strings.Contains(t.raw, "{level}") && (s.TileWidth != t.DeepZoomTileSize || s.TileHeight != t.DeepZoomTileSize) {
		return "", fmt.Errorf("slide %q has %dx%d tiles but the DeepZoom server uses %d: levels and tiles would not line up",
			s.ID, s.TileWidth, s.TileHeight, t.DeepZoomTileSize)
	}
	step := s.Scale(tl.Z)
	left, top := tl.X*s.TileWidth*step, tl.Y*s.TileHeight*step
	width := min(s.TileWidth*step, s.SizeX-left)
	height := min(s.TileHeight*step, s.SizeY-top)
	r := strings.NewReplacer(
		"{id}", s.ID,
		"{z}", strconv.Itoa(tl.Z),
		"{x}", strconv.Itoa(tl.X),
		"{y}", strconv.Itoa(tl.Y),
		"{level}", strconv.Itoa(tl.Z+s.DeepZoomMaxLevel()-(s.Levels-1)),
		"{left}", strconv.Itoa(left),
		"{top}", strconv.Itoa(top),
		"{width}", strconv.Itoa(width),
		"{height}", strconv.Itoa(height),
		"{outw}", strconv.Itoa((width+step-1)/step),
		"{outh}", strconv.Itoa((height+step-1)/step),
	)
	return r.Replace(t.raw), nil
}
