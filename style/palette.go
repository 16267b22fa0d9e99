package style

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

//go:generate sh -c "/usr/bin/python3 internal/genpalettes/gen.py && gofmt -w palettes_gen.go"

// Palette is a list of RGBA colours (0–255) spread evenly over [0, 1].
type Palette []Colour

var (
	defaultPalette = Palette{{0, 0, 0, 255}, {255, 255, 255, 255}}
	alphaPalette   = Palette{{255, 255, 255, 0}, {255, 255, 255, 255}}
)

// namedPalettes merges the generated tables and expands the reversed
// references once.
var namedPalettes = func() map[string]string {
	m := make(map[string]string, len(mplPalettes)+len(palettablePalettes)+len(mplPalettesReversed)+len(palettablePalettesReversed))
	add := func(table map[string]string, reversed []string, prefix string) {
		for k, v := range table {
			m[prefix+k] = v
		}
		for _, k := range reversed {
			m[prefix+k] = reverseHex(table[strings.TrimSuffix(k, "_r")])
		}
	}
	add(mplPalettes, mplPalettesReversed, "mpl:")
	add(palettablePalettes, palettablePalettesReversed, "pal:")
	return m
}()

// reverseHex reverses a concatenated hex palette (RRGGBB entries, or
// RRGGBBAA entries after an "a").
func reverseHex(s string) string {
	w := 6
	var b strings.Builder
	if strings.HasPrefix(s, "a") {
		w = 8
		s = s[1:]
		b.WriteByte('a')
	}
	for i := len(s) - w; i >= 0; i -= w {
		b.WriteString(s[i : i+w])
	}
	return b.String()
}

func splitHexPalette(s string) Palette {
	w := 6
	if strings.HasPrefix(s, "a") {
		w = 8
		s = s[1:]
	}
	p := make(Palette, 0, len(s)/w)
	for i := 0; i+w <= len(s); i += w {
		p = append(p, hexColour(s[i:i+w]))
	}
	return p
}

// PaletteNames lists the palette names accepted as a style's palette
// (matplotlib colormaps and palettable dotted paths), sorted.
func PaletteNames() []string {
	names := make([]string, 0, len(namedPalettes))
	for k := range namedPalettes {
		names = append(names, k[4:])
	}
	sort.Strings(names)
	return slices.Compact(names)
}

// ResolvePalette turns a style's palette value into colours, as large_image
// does: a list of colours (strings or 0–1 [r,g,b(,a)] lists), a single
// colour c (meaning ["#000", c]), a palettable dotted path
// ("colorbrewer.sequential.Blues_9"), a matplotlib named colour
// (["#0000", c]) or a matplotlib colormap name ("viridis", "Blues_r").
func ResolvePalette(v any) (Palette, error) {
	if list, ok := v.([]any); ok {
		return paletteFromList(list)
	}
	s, ok := v.(string)
	if !ok {
		return nil, &Error{Message: "cannot be used as a color palette.: " + pyRepr(v) + "."}
	}
	if c, ok := ParseColour(s); ok {
		return Palette{{0, 0, 0, 255}, c}, nil
	}
	if hex, ok := namedPalettes["pal:"+s]; ok {
		return splitHexPalette(hex), nil
	}
	if hex, ok := mplColors[s]; ok {
		return Palette{{0, 0, 0, 0}, hexColour(hex)}, nil
	}
	if hex, ok := namedPalettes["mpl:"+s]; ok {
		return splitHexPalette(hex), nil
	}
	return nil, &Error{Message: "cannot be used as a color palette.: " + pyRepr(v) + "."}
}

func paletteFromList(list []any) (Palette, error) {
	fail := func() (Palette, error) {
		return nil, &Error{Message: "cannot be used as a color palette: " + pyRepr(list) + "."}
	}
	if len(list) == 0 {
		return fail()
	}
	p := make(Palette, 0, len(list))
	for _, entry := range list {
		switch e := entry.(type) {
		case []any:
			// Missing components default to 1 (opaque, and white for a
			// short list) and extra ones are ignored, as large_image does.
			c := Colour{255, 255, 255, 255}
			for i := 0; i < len(e) && i < 4; i++ {
				f, ok := number(e[i])
				if !ok {
					return fail()
				}
				c[i] = f * 255
			}
			p = append(p, c)
		case string:
			c, ok := ParseColour(e)
			if !ok {
				c, ok = parseMplColour(e)
			}
			if !ok {
				return fail()
			}
			p = append(p, c)
		default:
			return fail()
		}
	}
	return p, nil
}

// number converts a decoded JSON number to float64.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case float64:
		return n, true
	}
	return 0, false
}

// pyRepr renders a decoded JSON value roughly as Python's repr, for the
// messages large_image builds with %r.
func pyRepr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case json.Number:
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case string:
		q := "'"
		if strings.Contains(x, "'") && !strings.Contains(x, `"`) {
			q = `"`
		}
		r := strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`, "\t", `\t`, q, `\`+q)
		return q + r.Replace(x) + q
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = pyRepr(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = pyRepr(k) + ": " + pyRepr(x[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprint(v)
}
