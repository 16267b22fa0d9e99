package iiif

import "github.com/tileserver/tileserver/tilesource"

// size is one entry of info.json's sizes.
type size struct {
	Width  int `json:"width"`
	Height int `json:"height"`
}

// tiles is info.json's tiles entry: the tile size and the pyramid's scale
// factors.
type tiles struct {
	Width        int   `json:"width"`
	Height       int   `json:"height"`
	ScaleFactors []int `json:"scaleFactors"`
}

// Beyond level 2: qualities besides default (level 2 needs color and gray,
// bitonal is extra), formats besides jpg and png, and optional features.
var (
	extraQualities3 = []string{"color", "gray", "bitonal"}
	extraFormats3   = []string{"webp", "tif"}
	extraFeatures3  = []string{"canonicalLinkHeader", "mirroring", "profileLinkHeader", "sizeUpscaling"}
	qualities2      = []string{"default", "color", "gray", "bitonal"}
	formats2        = []string{"jpg", "png", "webp", "tif"}
	// Version 2.1 level 2 leaves square regions, mirroring, upscaling and
	// the Link headers optional.
	supports2 = []string{"canonicalLinkHeader", "mirroring", "profileLinkHeader", "regionSquare", "sizeAboveFull"}
)

// pyramid returns the tiles entry and the preferred sizes of an image: one
// size per pyramid level (large_image's level sizes), smallest first,
// within the server's limits.
func pyramid(in *tilesource.Info, lim limits) ([]tiles, []size) {
	factors := make([]int, in.Levels)
	var sizes []size
	for k := range in.Levels {
		factors[k] = 1 << k
	}
	for z := range in.Levels {
		w, h := in.LevelSize(z)
		if w <= lim.maxWidth && h <= lim.maxHeight && int64(w)*int64(h) <= lim.maxArea {
			sizes = append(sizes, size{w, h})
		}
	}
	return []tiles{{Width: in.TileWidth, Height: in.TileHeight, ScaleFactors: factors}}, sizes
}

// info3 is the Image API 3.0 image information document.
func info3(id string, in *tilesource.Info, lim limits) map[string]any {
	t, sizes := pyramid(in, lim)
	return map[string]any{
		"@context":       context3,
		"id":             id,
		"type":           "ImageService3",
		"protocol":       protocol,
		"profile":        "level2",
		"width":          in.SizeX,
		"height":         in.SizeY,
		"maxWidth":       lim.maxWidth,
		"maxHeight":      lim.maxHeight,
		"maxArea":        lim.maxArea,
		"tiles":          t,
		"sizes":          sizes,
		"extraQualities": extraQualities3,
		"extraFormats":   extraFormats3,
		"extraFeatures":  extraFeatures3,
	}
}

// info2 is the Image API 2.1 image information document; its limits and
// extras live in the profile's description object.
func info2(id string, in *tilesource.Info, lim limits) map[string]any {
	t, sizes := pyramid(in, lim)
	return map[string]any{
		"@context": context2,
		"@id":      id,
		"protocol": protocol,
		"width":    in.SizeX,
		"height":   in.SizeY,
		"tiles":    t,
		"sizes":    sizes,
		"profile": []any{level2Profile2, map[string]any{
			"formats":   formats2,
			"qualities": qualities2,
			"supports":  supports2,
			"maxWidth":  lim.maxWidth,
			"maxHeight": lim.maxHeight,
			"maxArea":   lim.maxArea,
		}},
	}
}
