// Package style implements large_image's style language (large_image's style handling, TileSource._applyStyle):
// it parses and validates a style, gives it a canonical form for cache keys,
// and applies it to pixel buffers. It also holds the pixel statistics the
// histogram and bands routes need (TileSource.histogram and TileSource.getBandInformation).
//
// The package works on its own buffer type, Raster, and imports no other
// package of the project; the tile pipeline adapts decoded tiles to it.
package style

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Error is a style error whose message is safe to show to clients. The
// pipeline maps it to a 400 (404 on zxy/fzxy tiles, as large_image does).
type Error struct{ Message string }

func (e *Error) Error() string { return e.Message }

// ErrNotJSONObject is large_image's message for a style that is not a JSON
// object.
const ErrNotJSONObject = "Style is not a valid json object."

// Output data types a style may ask for (the dtype and axis keys of TileSource._applyStyle).
const (
	DTypeUint8  = "uint8"
	DTypeUint16 = "uint16"
	DTypeFloat  = "float"
	DTypeSource = "source"
)

// Style is a parsed, validated style. A nil *Style means "no style"; every
// method accepts a nil receiver.
type Style struct {
	// iccOnly is set for a style that is exactly {"icc": v}.
	iccOnly bool
	iccSet  bool
	icc     any
	bands   []*Band
	dtype   string // resolved: "", uint8, uint16, float or source
	axis    *int
	funcs   []Function // top-level style functions
}

// Band is one band entry of a style, with defaults resolved.
type Band struct {
	// BandIndex is the 1-based band number when the entry's band is an
	// integer ≥ 1, else 0.
	BandIndex int
	// BandName is the band given as a string ("red", "blue", "alpha", or a
	// source band name), else "".
	BandName string
	// Frame is the explicit frame, or nil.
	Frame *int
	// FrameDelta applies when Frame is nil.
	FrameDelta int
	Min, Max   Bound
	Palette    Palette
	Discrete   bool
	// NoData masks pixels whose raw value equals it; nil when not set.
	NoData   *float64
	Multiply bool // composite multiply (else lighten)
	Clamp    bool
	Funcs    []Function
}

// Bound is a band's min or max setting (TileSource._getMinMax).
type Bound struct {
	// Kind is "value", "auto", "min", "max" or "full".
	Kind      string
	Value     float64 // for Kind "value"
	Threshold float64 // for auto/min/max; 0 means none
}

// Parse parses a style given as a JSON string. "" and "{}" give a nil style
// (default rendering).
func Parse(raw string) (*Style, error) {
	if raw == "" {
		return nil, nil
	}
	obj, err := DecodeObject(raw)
	if err != nil {
		return nil, err
	}
	return FromMap(obj)
}

// DecodeObject decodes raw as one JSON object (numbers as json.Number),
// the only check large_image makes when a source is opened with a style
// (TileSource._setStyle); an *Error with ErrNotJSONObject otherwise.
func DecodeObject(raw string) (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, &Error{Message: ErrNotJSONObject}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &Error{Message: ErrNotJSONObject}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, &Error{Message: ErrNotJSONObject}
	}
	return obj, nil
}

// FromMap builds a style from an already decoded JSON object (numbers as
// json.Number or float64).
func FromMap(obj map[string]any) (*Style, error) {
	if len(obj) == 0 {
		return nil, nil
	}
	s := &Style{}
	s.icc, s.iccSet = obj["icc"]
	if s.iccSet && len(obj) == 1 {
		s.iccOnly = true
		return s, nil
	}
	entries := []any{obj}
	if b, has := obj["bands"]; has {
		list, ok := b.([]any)
		if !ok {
			return nil, &Error{Message: `Style "bands" must be a list of band objects.`}
		}
		entries = list
	}
	var err error
	if _, has := obj["bands"]; has {
		if s.funcs, err = parseFunctions(obj["function"]); err != nil {
			return nil, err
		}
	}
	// dtype and axis: the first non-null value among the top level and the
	// band entries wins (the dtype and axis keys of TileSource._applyStyle).
	dtypeRaw, axisRaw := obj["dtype"], obj["axis"]
	for i, e := range entries {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, &Error{Message: "Style band entries must be JSON objects."}
		}
		if dtypeRaw == nil {
			dtypeRaw = m["dtype"]
		}
		if axisRaw == nil {
			axisRaw = m["axis"]
		}
		b, err := parseBand(m, i)
		if err != nil {
			return nil, err
		}
		s.bands = append(s.bands, b)
	}
	if _, has := obj["bands"]; !has && len(s.bands) == 1 {
		// The single-entry form's functions also act at the top level.
		s.funcs = s.bands[0].Funcs
	}
	if d, ok := dtypeRaw.(string); ok {
		switch d {
		case DTypeUint8, DTypeUint16, DTypeFloat, DTypeSource:
			s.dtype = d
		}
	}
	if axisRaw != nil {
		n, ok := integer(axisRaw)
		if !ok {
			return nil, &Error{Message: `Style "axis" must be an integer.`}
		}
		s.axis = &n
	}
	return s, nil
}

func parseBand(m map[string]any, idx int) (*Band, error) {
	b := &Band{Clamp: true}
	switch v := m["band"].(type) {
	case json.Number:
		if n, err := strconv.Atoi(v.String()); err == nil && n >= 1 {
			b.BandIndex = n
		}
	case string:
		b.BandName = v
	}
	if v, has := m["frame"]; has && v != nil {
		n, ok := integer(v)
		if !ok {
			return nil, &Error{Message: bandMsg(idx, `"frame" must be an integer.`)}
		}
		b.Frame = &n
	}
	if v := m["framedelta"]; b.Frame == nil && truthy(v) {
		n, ok := integer(v)
		if !ok {
			return nil, &Error{Message: bandMsg(idx, `"framedelta" must be an integer.`)}
		}
		b.FrameDelta = n
	}
	b.Min = parseBound(m, "min")
	b.Max = parseBound(m, "max")
	var err error
	if pv, has := m["palette"]; has {
		b.Palette, err = ResolvePalette(pv)
		if err != nil {
			return nil, err
		}
	} else if b.BandName == "alpha" {
		b.Palette = alphaPalette
	} else {
		b.Palette = defaultPalette
	}
	b.Discrete = m["scheme"] == "discrete"
	if v := m["nodata"]; v != nil {
		f, ok := pyFloat(v)
		if !ok {
			return nil, &Error{Message: bandMsg(idx, `"nodata" must be a number.`)}
		}
		b.NoData = &f
	}
	if c, has := m["composite"]; has {
		b.Multiply = c == "multiply"
	} else {
		b.Multiply = b.BandName == "alpha"
	}
	if c, has := m["clamp"]; has {
		b.Clamp = truthy(c)
	}
	if b.Funcs, err = parseFunctions(m["function"]); err != nil {
		return nil, err
	}
	return b, nil
}

func bandMsg(idx int, msg string) string {
	return "Style band " + strconv.Itoa(idx) + ": " + msg
}

// parseBound reads min or max; unparsable values mean "auto", as in
// large_image (which only logs a warning).
func parseBound(m map[string]any, key string) Bound {
	v, has := m[key]
	if !has || v == nil {
		return Bound{Kind: "auto"}
	}
	if s, ok := v.(string); ok {
		switch s {
		case "auto", "min", "max", "full":
			return Bound{Kind: s}
		}
		if pre, post, ok := strings.Cut(s, ":"); ok && (pre == "min" || pre == "max" || pre == "auto") {
			t, ok := parsePyFloat(post)
			if !ok {
				return Bound{Kind: "auto"}
			}
			return Bound{Kind: pre, Threshold: t}
		}
	}
	if f, ok := pyFloat(v); ok {
		return Bound{Kind: "value", Value: f}
	}
	return Bound{Kind: "auto"}
}

// pyFloat converts a JSON value as Python's float() would (numbers, numeric
// strings, booleans).
func pyFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	case string:
		return parsePyFloat(x)
	}
	return number(v)
}

func parsePyFloat(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(strings.TrimLeft(s, "+-")) {
	case "inf", "infinity", "nan":
	default:
		// Go accepts hex floats and underscores that Python's float() does
		// not read the same way; keep to plain decimal syntax.
		if strings.ContainsAny(s, "xXpP_") || s == "" {
			return 0, false
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); !ok || ne.Err != strconv.ErrRange {
			return 0, false
		}
	}
	return f, true
}

// integer accepts integral JSON numbers.
func integer(v any) (int, bool) {
	f, ok := number(v)
	if !ok || f != math.Trunc(f) || math.Abs(f) > 1<<31 {
		return 0, false
	}
	return int(f), true
}

// truthy is Python truthiness of a decoded JSON value.
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case json.Number:
		f, err := x.Float64()
		return err != nil || f != 0
	case float64:
		return x != 0
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return true
}

// Bands returns the band entries (nil when the style does no band
// processing).
func (s *Style) Bands() []*Band {
	if s == nil {
		return nil
	}
	return s.bands
}

// DType returns the resolved output dtype: "", "uint8", "uint16", "float"
// or "source".
func (s *Style) DType() string {
	if s == nil {
		return ""
	}
	return s.dtype
}

// ICC reports the style's icc value as a boolean and whether it was given.
// When it was not given the caller uses its configured default (true in
// large_image).
func (s *Style) ICC() (value bool, set bool) {
	if s == nil || !s.iccSet {
		return false, false
	}
	return truthy(s.icc), true
}

// ICCIntent returns the rendering intent for ICC correction:
// "perceptual" (also for true), "relative_colorimetric", "saturation" or
// "absolute_colorimetric".
func (s *Style) ICCIntent() string {
	if s != nil {
		if str, ok := s.icc.(string); ok {
			switch l := strings.ToLower(str); l {
			case "relative_colorimetric", "saturation", "absolute_colorimetric":
				return l
			}
		}
	}
	return "perceptual"
}

// NeedsPixels reports whether the style does band processing (false for
// no style and for a style that only sets icc).
func (s *Style) NeedsPixels() bool {
	return s != nil && !s.iccOnly
}

// NeedsDecode reports large_image's hasStyle (TileSource._outputTile): whether a stored
// tile must be decoded rather than passed through, given the configured
// icc_correction default.
func (s *Style) NeedsDecode(iccDefault bool) bool {
	if s.NeedsPixels() {
		return true
	}
	if v, set := s.ICC(); set {
		return v
	}
	return iccDefault
}

// bandFrame resolves the frame a band entry reads, given the main frame.
func (b *Band) bandFrame(main int) int {
	if b.Frame != nil {
		return *b.Frame
	}
	return main + b.FrameDelta
}

// Frames returns the frames the style reads for a tile of frame current,
// each once, in band order; current is always first.
func (s *Style) Frames(current int) []int {
	out := []int{current}
	for _, b := range s.Bands() {
		f := b.bandFrame(current)
		seen := false
		for _, g := range out {
			seen = seen || g == f
		}
		if !seen {
			out = append(out, f)
		}
	}
	return out
}

// EffectiveFrame returns the main frame for a request of frame (TileSource.getTile):
// when every band names an explicit frame, the first band's frame is used.
// large_image applies this only to the explicit "bands" form; it is applied
// to both forms here since the styled output is the same either way.
func (s *Style) EffectiveFrame(frame int) int {
	bands := s.Bands()
	if len(bands) == 0 {
		return frame
	}
	for _, b := range bands {
		if b.Frame == nil {
			return frame
		}
	}
	return *bands[0].Frame
}

// Canonical returns a canonical JSON form of the style (sorted keys,
// normalised numbers, defaults resolved, the single-entry form written as
// {"bands":[...]}) so that equivalent styles share cache keys. A nil style
// gives "".
func (s *Style) Canonical() string {
	if s == nil {
		return ""
	}
	m := map[string]any{}
	if s.iccSet {
		if truthy(s.icc) {
			m["icc"] = s.ICCIntent()
		} else {
			m["icc"] = false
		}
	}
	if !s.iccOnly {
		bands := make([]any, len(s.bands))
		for i, b := range s.bands {
			bands[i] = b.canonical()
		}
		m["bands"] = bands
		if s.dtype != "" {
			m["dtype"] = s.dtype
		}
		if s.axis != nil {
			m["axis"] = *s.axis
		}
		if fs := canonicalFunctions(s.funcs); fs != nil {
			m["function"] = fs
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(m)
	return strings.TrimSuffix(buf.String(), "\n")
}

func (b *Band) canonical() map[string]any {
	m := map[string]any{
		"min":     b.Min.canonical(),
		"max":     b.Max.canonical(),
		"clamp":   b.Clamp,
		"palette": canonicalPalette(b.Palette),
	}
	switch {
	case b.BandIndex > 0:
		m["band"] = b.BandIndex
	case b.BandName != "":
		m["band"] = b.BandName
	}
	if b.Frame != nil {
		m["frame"] = *b.Frame
	} else if b.FrameDelta != 0 {
		m["framedelta"] = b.FrameDelta
	}
	if b.Discrete {
		m["scheme"] = "discrete"
	}
	if b.NoData != nil {
		m["nodata"] = canonicalNumber(*b.NoData)
	}
	if b.Multiply {
		m["composite"] = "multiply"
	} else {
		m["composite"] = "lighten"
	}
	if fs := canonicalFunctions(b.Funcs); fs != nil {
		m["function"] = fs
	}
	return m
}

func (bd Bound) canonical() any {
	switch {
	case bd.Kind == "value":
		return canonicalNumber(bd.Value)
	case bd.Threshold != 0:
		return bd.Kind + ":" + strconv.FormatFloat(bd.Threshold, 'g', -1, 64)
	}
	return bd.Kind
}

// canonicalNumber keeps non-finite values representable in JSON.
func canonicalNumber(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return f
}

// canonicalPalette writes colours as #RRGGBBAA when they are whole 0–255
// values and as 0–1 lists otherwise, so the canonical form is itself a
// valid style.
func canonicalPalette(p Palette) []any {
	out := make([]any, len(p))
	for i, c := range p {
		whole := true
		for _, v := range c {
			whole = whole && v >= 0 && v <= 255 && v == math.Trunc(v)
		}
		if whole {
			out[i] = fmt.Sprintf("#%02X%02X%02X%02X", int(c[0]), int(c[1]), int(c[2]), int(c[3]))
			continue
		}
		out[i] = []any{canonicalNumber(c[0] / 255), canonicalNumber(c[1] / 255), canonicalNumber(c[2] / 255), canonicalNumber(c[3] / 255)}
	}
	return out
}
