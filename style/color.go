package style

import (
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Colour is an RGBA colour on the 0–255 scale. Components may be fractional
// (palette entries given as 0–1 floats) or above 255 (rgb(300,0,0) is
// accepted the way Pillow accepts it).
type Colour [4]float64

// exactCaseColours override the CSS meaning of a few upper-case names, since
// users writing "GREEN" for a channel mean #00ff00, not CSS green (#008000).
var exactCaseColours = map[string]Colour{
	"R": {255, 0, 0, 255}, "RED": {255, 0, 0, 255},
	"G": {0, 255, 0, 255}, "GREEN": {0, 255, 0, 255},
	"B": {0, 0, 255, 255}, "BLUE": {0, 0, 255, 255},
}

var (
	reRGB     = regexp.MustCompile(`^rgb\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)$`)
	reRGBPct  = regexp.MustCompile(`^rgb\(\s*(\d+)%\s*,\s*(\d+)%\s*,\s*(\d+)%\s*\)$`)
	reHSL     = regexp.MustCompile(`^hsl\(\s*(\d+\.?\d*)\s*,\s*(\d+\.?\d*)%\s*,\s*(\d+\.?\d*)%\s*\)$`)
	reHSV     = regexp.MustCompile(`^hs[bv]\(\s*(\d+\.?\d*)\s*,\s*(\d+\.?\d*)%\s*,\s*(\d+\.?\d*)%\s*\)$`)
	reRGBA    = regexp.MustCompile(`^rgba\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)$`)
	reHex     = regexp.MustCompile(`^#([0-9a-f]{3,4}|[0-9a-f]{6}|[0-9a-f]{8})$`)
	reMplGrey = regexp.MustCompile(`^\s*[0-9.eE+-]+\s*$`)
)

// ParseColour parses a colour string the way Pillow's ImageColor does (hex,
// rgb(), rgba(), hsl(), hsv()/hsb() and CSS names, case-insensitive), with
// large_image's exact-case overrides R/RED, G/GREEN and B/BLUE (its
// utilities.colormap). It is the syntax of palettes and of the fill
// parameter.
func ParseColour(s string) (Colour, bool) {
	if c, ok := exactCaseColours[s]; ok {
		return c, true
	}
	return ParsePILColour(s)
}

// ParsePILColour parses a colour string exactly as Pillow's
// ImageColor.getrgb does, without large_image's overrides: the syntax of
// the edge parameter, which large_image's _outputTile hands to
// PIL.ImageColor.getcolor as given.
func ParsePILColour(s string) (Colour, bool) {
	if len(s) > 100 {
		return Colour{}, false
	}
	s = strings.ToLower(s)
	if hex, ok := pilColors[s]; ok {
		return hexColour(hex), true
	}
	if reHex.MatchString(s) {
		h := s[1:]
		if len(h) <= 4 {
			var b strings.Builder
			for _, r := range h {
				b.WriteRune(r)
				b.WriteRune(r)
			}
			h = b.String()
		}
		return hexColour(h), true
	}
	if m := reRGB.FindStringSubmatch(s); m != nil {
		return Colour{atof(m[1]), atof(m[2]), atof(m[3]), 255}, true
	}
	if m := reRGBPct.FindStringSubmatch(s); m != nil {
		var c Colour
		for i := 0; i < 3; i++ {
			c[i] = math.Trunc(atof(m[i+1])*255/100 + 0.5)
		}
		c[3] = 255
		return c, true
	}
	if m := reHSL.FindStringSubmatch(s); m != nil {
		r, g, b := hlsToRGB(atof(m[1])/360, atof(m[3])/100, atof(m[2])/100)
		return Colour{round255(r), round255(g), round255(b), 255}, true
	}
	if m := reHSV.FindStringSubmatch(s); m != nil {
		r, g, b := HSVToRGB(atof(m[1])/360, atof(m[2])/100, atof(m[3])/100)
		return Colour{round255(r), round255(g), round255(b), 255}, true
	}
	if m := reRGBA.FindStringSubmatch(s); m != nil {
		return Colour{atof(m[1]), atof(m[2]), atof(m[3]), atof(m[4])}, true
	}
	return Colour{}, false
}

// ColourError is Pillow's ImageColor.getrgb message for a string neither
// parser accepts (Pillow reports the lower-cased string).
func ColourError(s string) string {
	if len(s) > 100 {
		return "color specifier is too long"
	}
	return "unknown color specifier: " + pyRepr(strings.ToLower(s))
}

// parseMplColour is the matplotlib fallback large_image uses for palette
// entries Pillow rejects: named colours (xkcd:, tab:, single letters), the
// default cycle C0–C9 and grey levels written as a number in [0, 1]. The
// alpha is dropped, as matplotlib's to_hex does.
func parseMplColour(s string) (Colour, bool) {
	if hex, ok := mplNamedColour(s); ok {
		return hexColour(hex), true
	}
	if len(s) == 2 && s[0] == 'C' && s[1] >= '0' && s[1] <= '9' {
		return hexColour(tab10[s[1]-'0']), true
	}
	if reMplGrey.MatchString(s) {
		if v, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil && v >= 0 && v <= 1 {
			g := pyRound(v * 255)
			return Colour{g, g, g, 255}, true
		}
	}
	if c, ok := ParsePILColour(s); ok {
		return Colour{c[0], c[1], c[2], 255}, true
	}
	return Colour{}, false
}

func mplNamedColour(s string) (string, bool) {
	if hex, ok := mplColors[s]; ok {
		return hex, true
	}
	hex, ok := mplColors[strings.ToLower(s)]
	return hex, ok
}

var tab10 = [10]string{"1F77B4", "FF7F0E", "2CA02C", "D62728", "9467BD", "8C564B", "E377C2", "7F7F7F", "BCBD22", "17BECF"}

// hexColour converts RRGGBB or RRGGBBAA (validated by the caller or the
// generator) to a colour.
func hexColour(h string) Colour {
	c := Colour{0, 0, 0, 255}
	for i := 0; i*2+1 < len(h) && i < 4; i++ {
		v, _ := strconv.ParseUint(h[i*2:i*2+2], 16, 8)
		c[i] = float64(v)
	}
	return c
}

func atof(s string) float64 {
	v, _ := strconv.ParseFloat(s, 64)
	return v
}

func round255(v float64) float64 { return math.Trunc(v*255 + 0.5) }

// pyRound rounds half to even, like Python's round().
func pyRound(v float64) float64 { return math.RoundToEven(v) }

func hlsToRGB(h, l, s float64) (float64, float64, float64) {
	if s == 0 {
		return l, l, l
	}
	var m2 float64
	if l <= 0.5 {
		m2 = l * (1 + s)
	} else {
		m2 = l + s - l*s
	}
	m1 := 2*l - m2
	return hueValue(m1, m2, h+1.0/3), hueValue(m1, m2, h), hueValue(m1, m2, h-1.0/3)
}

func hueValue(m1, m2, hue float64) float64 {
	hue = math.Mod(hue, 1)
	if hue < 0 {
		hue++
	}
	switch {
	case hue < 1.0/6:
		return m1 + (m2-m1)*hue*6
	case hue < 0.5:
		return m2
	case hue < 2.0/3:
		return m1 + (m2-m1)*(2.0/3-hue)*6
	}
	return m1
}

// HSVToRGB converts a colour with components in [0, 1] as Python's
// colorsys.hsv_to_rgb does; the hue wraps at 1, negative hues included.
func HSVToRGB(h, s, v float64) (float64, float64, float64) {
	if s == 0 {
		return v, v, v
	}
	i := math.Floor(h * 6)
	f := h*6 - i
	p, q, t := v*(1-s), v*(1-s*f), v*(1-s*(1-f))
	switch int(math.Mod(i, 6)+6) % 6 {
	case 0:
		return v, t, p
	case 1:
		return q, v, p
	case 2:
		return p, v, t
	case 3:
		return p, q, v
	case 4:
		return t, p, v
	}
	return v, p, q
}
