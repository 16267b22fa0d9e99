package tilesource

import "strings"

// FrameMetadata returns the JSON object of GET tiles (TileSource.getMetadata): the base
// fields, the post-processed frame list with IndexRange, IndexStride,
// channels and channelmap when there is more than one frame, and Info.Extra
// merged at the top level. Info.Frames is not modified.
func FrameMetadata(in *Info) map[string]any {
	m := map[string]any{
		"levels":        in.Levels,
		"sizeX":         in.SizeX,
		"sizeY":         in.SizeY,
		"tileWidth":     in.TileWidth,
		"tileHeight":    in.TileHeight,
		"magnification": floatOrNil(in.Magnification),
		"mm_x":          floatOrNil(in.MMX),
		"mm_y":          floatOrNil(in.MMY),
		"dtype":         in.Format.DType(),
		"bandCount":     in.Bands,
	}
	if len(in.Frames) > 1 {
		addFrameInformation(m, in.Frames, in.Channels)
	}
	for k, v := range in.Extra {
		m[k] = v
	}
	return m
}

func floatOrNil(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}

// isAxisKey reports whether key names a frame axis ("IndexC", "IndexZ", …);
// the bare "Index" is the computed frame index, not an axis.
func isAxisKey(key string) bool {
	return strings.HasPrefix(key, "Index") && len(key) > len("Index")
}

// addFrameInformation follows large_image's _addMetadataFrameInformation:
// Frame is the position, Index counts distinct non-channel positions, and
// IndexRange/IndexStride describe the axes that vary.
func addFrameInformation(m map[string]any, raw []map[string]any, channels []string) {
	frames := make([]map[string]any, len(raw))
	refkeys := map[string]bool{"IndexC": true}
	maxref := map[string]int{}
	index := 0
	for i, src := range raw {
		f := make(map[string]any, len(src)+3)
		for k, v := range src {
			f[k] = v
			if isAxisKey(k) {
				refkeys[k] = true
			}
		}
		if i > 0 {
			prev := frames[i-1]
			changed, anySet := false, false
			for k := range refkeys {
				if k != "IndexC" && axisValue(f, k) != axisValue(prev, k) {
					changed = true
				}
				if axisValue(f, k) != 0 {
					anySet = true
				}
			}
			if changed || !anySet {
				index++
			}
		}
		f["Frame"] = i
		f["Index"] = index
		for k := range refkeys {
			maxref[k] = max(maxref[k], axisValue(f, k)+1)
		}
		frames[i] = f
	}

	rng := map[string]any{}
	stride := map[string]any{}
	for k, n := range maxref {
		if n <= 1 {
			continue
		}
		rng[k] = n
		for i, f := range frames {
			if axisValue(f, k) == 1 {
				stride[k] = i
				break
			}
		}
	}
	if len(rng) > 0 {
		m["IndexRange"] = rng
		m["IndexStride"] = stride
	}

	nc := max(maxref["IndexC"], 1)
	if len(channels) > 0 && len(channels) >= nc {
		names := append([]string(nil), channels[:nc]...)
		cmap := make(map[string]any, nc)
		for i, name := range names {
			if _, dup := cmap[name]; !dup {
				cmap[name] = i
			}
		}
		for _, f := range frames {
			c := axisValue(f, "IndexC")
			if c >= 0 && c < len(names) {
				f["Channel"] = names[c]
			}
		}
		m["channels"] = names
		m["channelmap"] = cmap
	}

	list := make([]any, len(frames))
	for i, f := range frames {
		list[i] = f
	}
	m["frames"] = list
}

// axisValue returns an integer axis value of a frame, 0 when absent or not
// a number.
func axisValue(f map[string]any, key string) int {
	switch v := f[key].(type) {
	case int:
		return v
	case int64:
		return int(v)
	case int32:
		return int(v)
	case float64:
		return int(v)
	}
	return 0
}
