package pipeline

import (
	"context"
	"math"
	"strconv"
	"strings"

	"github.com/tileserver/tileserver/tilesource"
)

// QuadInfo computes which tile_frames requests cover every frame in a few
// textures, and where each frame sits in them (large_image's
// getTileFramesQuadInfo). It does no image work.
func (p *Pipeline) QuadInfo(ctx context.Context, loc Locator, req QuadInfoRequest) (map[string]any, error) {
	md, err := p.Metadata(ctx, loc)
	if err != nil {
		return nil, err
	}
	return quadInfo(ctx, md, req)
}

// quadOpts are the resolved options.
type quadOpts struct {
	format, query                         map[string]any
	frameBase, frameStride, frameGroup    int
	frameGroupStride                      int
	frameGroupFactor                      float64
	maxTextureSize, maxTextures, maxTotal int
	alignment, maxFrameSize               int
}

func (o quadOpts) json() map[string]any {
	m := map[string]any{
		"format": o.format, "query": o.query, "frameBase": o.frameBase, "frameStride": o.frameStride,
		"frameGroup": o.frameGroup, "frameGroupFactor": o.frameGroupFactor,
		"frameGroupStride": o.frameGroupStride, "maxTextureSize": o.maxTextureSize,
		"maxTextures": o.maxTextures, "maxTotalTexturePixels": o.maxTotal, "alignment": o.alignment,
		"maxFrameSize": nil,
	}
	if o.maxFrameSize > 0 {
		m["maxFrameSize"] = o.maxFrameSize
	}
	return m
}

// axisRange returns IndexRange["Index"+AXIS] of the metadata, or 1.
func axisRange(md map[string]any, axis string) int {
	if r, ok := md["IndexRange"].(map[string]any); ok {
		if v, ok := r["Index"+strings.ToUpper(axis)].(int); ok {
			return v
		}
	}
	return 1
}

// intOrAxis reads a count that is either digits or an axis name.
func intOrAxis(md map[string]any, v string, def int) int {
	if v == "" {
		return def
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 && !strings.ContainsAny(v, "+-") {
		return n
	}
	return axisRange(md, v)
}

func quadInfo(ctx context.Context, md map[string]any, req QuadInfoRequest) (map[string]any, error) {
	o := quadOpts{
		format: req.Format, query: req.Query,
		frameStride:      max(1, intOrAxis(md, req.FrameStride, 1)),
		frameGroup:       max(1, intOrAxis(md, req.FrameGroup, 1)),
		frameGroupFactor: req.FrameGroupFactor,
		maxTextureSize:   req.MaxTextureSize, maxTextures: req.MaxTextures,
		maxTotal: req.MaxTotalTexturePixels, alignment: req.Alignment, maxFrameSize: req.MaxFrameSize,
	}
	if o.format == nil {
		o.format = map[string]any{"encoding": "JPEG", "jpegQuality": 85, "jpegSubsampling": 1}
	}
	if o.query == nil {
		o.query = map[string]any{}
	}
	if o.frameGroupFactor == 0 {
		o.frameGroupFactor = 4
	}
	if o.maxTextureSize == 0 {
		o.maxTextureSize = 8192
	}
	if o.maxTextures == 0 {
		o.maxTextures = 1
	}
	if o.maxTotal == 0 {
		o.maxTotal = 1 << 30
	}
	if o.alignment == 0 {
		o.alignment = 16
	}
	if o.maxTextureSize < 1 || o.maxTextures < 1 || o.maxTotal < 1 || o.alignment < 1 || o.maxFrameSize < 0 ||
		o.frameGroupFactor < 0 || math.IsNaN(o.frameGroupFactor) || o.maxTextureSize > 1<<20 ||
		o.maxTextures > 1024 || o.alignment > 1<<20 {
		return nil, tilesource.BadRequest("Value Error: invalid texture options.")
	}
	switch gs := req.FrameGroupStride; gs {
	case "auto":
		o.frameGroupStride = max(1, o.frameGroup/o.frameStride)
	case "":
		o.frameGroupStride = 1
	default:
		n, err := strconv.Atoi(gs)
		if err != nil || n < 1 {
			return nil, tilesource.BadRequest("%q parameter is an incorrect type.", "frameGroupStride")
		}
		o.frameGroupStride = n
	}
	// The strides and groups drive the layout loops: bound them (which
	// also keeps their products within int).
	for _, c := range []struct {
		name string
		n    int
	}{{"frameStride", o.frameStride}, {"frameGroup", o.frameGroup}, {"frameGroupStride", o.frameGroupStride}} {
		if err := checkLoop(c.name, c.n); err != nil {
			return nil, err
		}
	}
	base := req.FrameBase
	if base == "" {
		base = "0"
	}
	if n, err := strconv.Atoi(base); err == nil && n >= 0 && !strings.ContainsAny(base, "+-") {
		o.frameBase = n
		return quadLayout(md, o)
	}
	// An axis name: one layout per position along that axis, their
	// requests listed together.
	all := map[string]any{"metadata": md, "src": []any{}}
	var srcs []any
	n := axisRange(md, base)
	if err := checkLoop("frameBase", n); err != nil {
		return nil, err
	}
	for v := range n {
		if err := ctx.Err(); err != nil {
			return nil, publicError(err)
		}
		o.frameBase = v
		r, err := quadLayout(md, o)
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, r["src"].([]any)...)
	}
	all["options"] = o.json()
	if srcs != nil {
		all["src"] = srcs
	}
	return all, nil
}

// quadLayout lays out the frames from frameBase for one set of options.
func quadLayout(md map[string]any, o quadOpts) (map[string]any, error) {
	sizeX, _ := md["sizeX"].(int)
	sizeY, _ := md["sizeY"].(int)
	tw, _ := md["tileWidth"].(int)
	th, _ := md["tileHeight"].(int)
	mdFrames, _ := md["frames"].([]any)
	numFrames := max(len(mdFrames), 1)
	frames := []int{}
	for g := range o.frameGroupStride {
		for f := o.frameBase + g*o.frameStride; f < numFrames; f += o.frameStride * o.frameGroupStride {
			frames = append(frames, f)
		}
	}
	if len(frames) == 0 || sizeX <= 0 || sizeY <= 0 {
		return nil, tilesource.BadRequest("Value Error: no frames to lay out.")
	}
	fw, fh, fhorz, perTexture, textures, err := framesPerTexture(o, len(frames), sizeX, sizeY)
	if err != nil {
		return nil, err
	}
	ratio := math.Max(float64(sizeX)/float64(fw), float64(sizeY)/float64(fh))
	usedW := int(math.Floor(float64(sizeX) / ratio))
	usedH := int(math.Floor(float64(sizeY) / ratio))
	toIdx := map[string]any{}
	frameList := make([]any, len(frames))
	for i, f := range frames {
		toIdx[strconv.Itoa(f)] = i
		frameList[i] = f
	}
	out := map[string]any{
		"metadata": md, "options": o.json(), "frames": frameList, "framesToIdx": toIdx,
	}
	if tw > 0 && th > 0 && usedW > 0 && usedH > 0 {
		out["minLevel"] = int(math.Ceil(math.Log2(math.Min(float64(usedW)/float64(tw), float64(usedH)/float64(th)))))
	}
	var srcs, quads, quadsToIdx []any
	for idx := range textures {
		lo, hi := min(idx*perTexture, len(frames)), min((idx+1)*perTexture, len(frames))
		list := frames[lo:hi]
		params := map[string]any{"framesAcross": fhorz, "width": fw, "height": fh,
			"fill": "corner:black", "exact": false}
		if len(list) != len(mdFrames) {
			params["frameList"] = append([]int{}, list...)
		}
		for k, v := range o.format {
			params[k] = v
		}
		for k, v := range o.query {
			params[k] = v
		}
		srcs = append(srcs, params)
		n := len(list)
		if n == 0 {
			continue
		}
		ivert := (n + fhorz - 1) / fhorz
		ihorz := min(n, fhorz)
		for i := range n {
			col, row := i%ihorz, i/ihorz
			quads = append(quads, map[string]any{
				"ul": map[string]any{"x": 0, "y": 0, "z": -1},
				"lr": map[string]any{"x": sizeX, "y": -sizeY, "z": -1},
				"crop": map[string]any{
					"x": sizeX, "y": sizeY,
					"left": col * fw, "top": (ivert-row)*fh - usedH,
					"right": col*fw + usedW, "bottom": (ivert - row) * fh,
				},
			})
			quadsToIdx = append(quadsToIdx, idx)
		}
	}
	out["src"], out["quads"], out["quadsToIdx"] = srcs, quads, quadsToIdx
	return out, nil
}

// framesPerTexture picks the frame cell size, frames across, frames per
// texture and number of textures: the largest aligned cells that fit the
// frames in the allowed textures, shrinking the texture or the number of
// textures while they would be mostly empty.
func framesPerTexture(o quadOpts, numFrames, sizeX, sizeY int) (fw, fh, fhorz, perTexture, textures int, err error) {
	al := float64(o.alignment)
	tex := o.maxTextureSize
	textures = o.maxTextures
	for tex > 0 && tex*tex > o.maxTotal {
		tex /= 2
	}
	for textures > 1 && tex*tex*textures > o.maxTotal {
		textures--
	}
	sx, sy := float64(sizeX), float64(sizeY)
	alignUp := func(v float64) int { return int(math.Ceil(v/al) * al) }
	for range 1000 {
		if tex < 1 {
			break
		}
		t := float64(tex)
		f := int(math.Ceil(float64(numFrames) / float64(textures)))
		if o.frameGroup > 1 {
			fg := (f + o.frameGroup - 1) / o.frameGroup * o.frameGroup
			if float64(fg)/float64(f) <= o.frameGroupFactor {
				f = fg
			}
		}
		scale := math.Sqrt(t * t / float64(f) / sx / sy)
		fhorz = int(math.Ceil(t / float64(alignUp(sx*scale))))
		fvert := int(math.Ceil(t / float64(alignUp(sy*scale))))
		fw = int(math.Floor(t/float64(fhorz)/al) * al)
		if fw <= 0 {
			break
		}
		fvert = max(int(math.Ceil(float64(f)/float64(tex/fw))), fvert)
		fh = int(math.Floor(t/float64(fvert)/al) * al)
		if o.maxFrameSize > 0 {
			m := o.maxFrameSize / o.alignment * o.alignment
			fw, fh = min(fw, m), min(fh, m)
		}
		if fw > sizeX {
			fw = alignUp(sx)
		}
		if fh > sizeY {
			fh = alignUp(sy)
		}
		fw = min(alignUp(float64(fh)*sx/sy), fw)
		fh = min(alignUp(float64(fw)*sy/sx), fh)
		if fw <= 0 || fh <= 0 {
			break
		}
		fhorz = tex / fw
		if fhorz <= 0 {
			break
		}
		fvert = min(tex/fh, (numFrames+fhorz-1)/fhorz)
		perTexture = fhorz * fvert
		if textures > 1 && o.frameGroup > 1 {
			perTexture = perTexture / o.frameGroup * o.frameGroup
			if textures*perTexture < numFrames && fhorz*fvert*textures >= numFrames {
				perTexture = fhorz * fvert
			}
		}
		if textures > 1 && numFrames <= perTexture*(textures-1) {
			textures--
			continue
		}
		if fhorz >= 2 && int(math.Ceil(float64(f)/float64(fhorz/2)))*fh <= tex/2 {
			tex /= 2
			continue
		}
		if perTexture <= 0 {
			break
		}
		return fw, fh, fhorz, perTexture, textures, nil
	}
	return 0, 0, 0, 0, 0, tilesource.BadRequest("Value Error: the frames do not fit the texture options.")
}
