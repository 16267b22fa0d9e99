package style

import (
	"math"
	"slices"
	"strings"
)

// Names of the style functions this server runs (the function key of TileSource._applyStyle). Any other
// function name is ignored, as large_image does when it cannot import one.
const (
	FuncMaskPixelValues = "large_image.tilesource.stylefuncs.maskPixelValues"
	FuncMedianFilter    = "large_image.tilesource.stylefuncs.medianFilter"
)

// Function is one style function call.
type Function struct {
	Name       string
	Parameters map[string]any
	Stages     []string
	// Context is true when the style context is passed as "context".
	Context bool
}

func parseFunctions(v any) ([]Function, error) {
	var out []Function
	var walk func(v any) error
	walk = func(v any) error {
		switch x := v.(type) {
		case nil:
			return nil
		case []any:
			for _, e := range x {
				if err := walk(e); err != nil {
					return err
				}
			}
			return nil
		case string:
			x = strings.TrimSpace(x)
			if x == FuncMaskPixelValues || x == FuncMedianFilter {
				out = append(out, Function{Name: x, Stages: []string{"main", "band"}})
			}
			return nil
		case map[string]any:
			name, _ := x["name"].(string)
			f := Function{Name: name, Stages: []string{"main", "band"}}
			switch st := x["stage"].(type) {
			case string:
				f.Stages = []string{st}
			case []any:
				f.Stages = nil
				for _, s := range st {
					if s, ok := s.(string); ok {
						f.Stages = append(f.Stages, s)
					}
				}
			}
			if p, ok := x["parameters"].(map[string]any); ok {
				f.Parameters = p
			} else if x["parameters"] != nil {
				return &Error{Message: `Style function "parameters" must be an object.`}
			}
			f.Context = x["context"] == true || x["context"] == "context"
			if name == FuncMaskPixelValues || name == FuncMedianFilter {
				out = append(out, f)
			}
			return nil
		}
		return &Error{Message: `Style "function" must be a function name, an object or a list of them.`}
	}
	if err := walk(v); err != nil {
		return nil, err
	}
	return out, nil
}

func canonicalFunctions(fs []Function) []any {
	if len(fs) == 0 {
		return nil
	}
	out := make([]any, len(fs))
	for i, f := range fs {
		m := map[string]any{"name": f.Name, "stage": f.Stages, "context": f.Context}
		if len(f.Parameters) > 0 {
			m["parameters"] = f.Parameters
		}
		out[i] = m
	}
	return out
}

// applyFunctions runs the functions registered for stage on img. src is
// the style context's source image. Functions that cannot run on this
// image shape leave it unchanged, as a failing function does in large_image.
func applyFunctions(fs []Function, stage string, img, src *Raster) *Raster {
	for _, f := range fs {
		if !slices.Contains(f.Stages, stage) || img == nil {
			continue
		}
		switch f.Name {
		case FuncMaskPixelValues:
			if r := maskPixelValues(img, src, f); r != nil {
				img = r
			}
		case FuncMedianFilter:
			if r := medianFilter(img, f.Parameters); r != nil {
				img = r
			}
		}
	}
	return img
}

// maskPixelValues makes pixels of src whose value is in values positive
// (default transparent white) and others negative (default opaque black)
// in a 4-channel image; it needs the style context.
func maskPixelValues(img, src *Raster, f Function) *Raster {
	if !f.Context || img.Bands != 4 || src == nil || src.Width != img.Width || src.Height != img.Height {
		return nil
	}
	values, ok := f.Parameters["values"].([]any)
	if !ok {
		return nil
	}
	rgba := func(key string, def [4]float64) ([4]float64, bool) {
		v, has := f.Parameters[key]
		if !has || !truthy(v) {
			return def, true
		}
		l, ok := v.([]any)
		if !ok || len(l) != 4 {
			return def, false
		}
		var c [4]float64
		for i := range c {
			if c[i], ok = number(l[i]); !ok {
				return def, false
			}
		}
		return c, true
	}
	neg, ok1 := rgba("negative", [4]float64{0, 0, 0, 255})
	pos, ok2 := rgba("positive", [4]float64{255, 255, 255, 0})
	if !ok1 || !ok2 {
		return nil
	}
	var matches [][]float64
	for _, v := range values {
		var vals []float64
		if l, ok := v.([]any); ok {
			for _, e := range l {
				n, ok := number(e)
				if !ok {
					return nil
				}
				vals = append(vals, n)
			}
		} else {
			n, ok := number(v)
			if !ok {
				return nil
			}
			if src.Bands == 1 {
				vals = []float64{n}
			} else {
				// A single number is 0xBBGGRR.
				iv := int64(n)
				vals = []float64{float64(pyMod(iv, 256)), float64(pyMod(iv/256, 256)), float64(pyMod(iv/65536, 256))}
			}
		}
		for len(vals) < src.Bands {
			vals = append(vals, 255)
		}
		matches = append(matches, vals[:src.Bands])
	}
	out := &Raster{Width: img.Width, Height: img.Height, Bands: 4, DType: "uint8", Pix: make([]float64, len(img.Pix))}
	for p := 0; p < img.Width*img.Height; p++ {
		px := src.Pix[p*src.Bands : (p+1)*src.Bands]
		hit := false
		for _, m := range matches {
			if slices.Equal(px, m) {
				hit = true
				break
			}
		}
		c := neg
		if hit {
			c = pos
		}
		for ch := 0; ch < 4; ch++ {
			out.Pix[p*4+ch] = float64(castUint8(c[ch]))
		}
	}
	return out
}

func pyMod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// medianFilter sharpens by adding weight·(image − median(image)), the
// median taken over kernel×kernel on the 8-bit view with edge replication.
func medianFilter(img *Raster, params map[string]any) *Raster {
	kernel, weight := 5, 1.0
	if v, ok := params["kernel"]; ok {
		k, ok := integer(v)
		if !ok || k < 1 || k%2 == 0 || k > 31 {
			return nil
		}
		kernel = k
	}
	if v, ok := params["weight"]; ok {
		w, ok := number(v)
		if !ok {
			return nil
		}
		weight = w
	}
	nc := 1
	if img.Bands >= 3 {
		nc = 3
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range img.Pix {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	mul, clip := 0.0, 0.0
	isFloat := strings.HasPrefix(img.DType, "float")
	switch {
	case img.DType == "uint8" || (isFloat && hi > 1 && hi < 256 && lo >= 0):
		mul, clip = 1, 255
	case img.DType == "uint16" || (isFloat && hi > 1 && hi < 65536 && lo >= 0):
		mul, clip = 257, 65535
	case img.DType == "uint32":
		mul, clip = (math.Pow(2, 32)-1)/255, math.Pow(2, 32)-1
	case isFloat:
		mul = 1
	}
	if mul == 0 {
		return img
	}
	w, h, r := img.Width, img.Height, kernel/2
	eight := make([]float64, w*h*nc)
	for p := 0; p < w*h; p++ {
		for ch := 0; ch < nc; ch++ {
			eight[p*nc+ch] = float64(to8(img.Pix[p*img.Bands+ch], img.DType))
		}
	}
	out := &Raster{Width: w, Height: h, Bands: img.Bands, DType: img.DType, Pix: slices.Clone(img.Pix)}
	win := make([]float64, 0, kernel*kernel)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			for ch := 0; ch < nc; ch++ {
				win = win[:0]
				for dy := -r; dy <= r; dy++ {
					yy := min(max(y+dy, 0), h-1)
					for dx := -r; dx <= r; dx++ {
						xx := min(max(x+dx, 0), w-1)
						win = append(win, eight[(yy*w+xx)*nc+ch])
					}
				}
				slices.Sort(win)
				med := win[len(win)/2]
				i := (y*w+x)*img.Bands + ch
				v := img.Pix[i] + (img.Pix[i]-med*mul)*weight
				if clip != 0 {
					v = math.Min(math.Max(v, 0), clip)
				}
				out.Pix[i] = castTo(v, img.DType)
			}
		}
	}
	return out
}

// castTo stores v in dtype the way numpy's astype does (truncation and
// wrap-around for integers, float32 rounding).
func castTo(v float64, dtype string) float64 {
	switch dtype {
	case "uint8":
		return float64(castUint8(v))
	case "uint16":
		return float64(castUint16(v))
	case "float32":
		return float64(float32(v))
	}
	return v
}

func castInt(v float64) int64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	if v > math.MaxInt64 || v < math.MinInt64 {
		return 0
	}
	return int64(v)
}

func castUint8(v float64) uint8   { return uint8(castInt(v)) }
func castUint16(v float64) uint16 { return uint16(castInt(v)) }
