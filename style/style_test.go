package style

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func mustParse(t *testing.T, raw string) *Style {
	t.Helper()
	s, err := Parse(raw)
	if err != nil {
		t.Fatalf("Parse(%s): %v", raw, err)
	}
	return s
}

func TestParseInvalidJSONObject(t *testing.T) {
	for _, raw := range []string{"{", "[]", `["style"]`, "null", `"x"`, "5", `{"a":1} x`, "   ", `{"a":NaN}`} {
		_, err := Parse(raw)
		var se *Error
		if !errors.As(err, &se) || se.Message != "Style is not a valid json object." {
			t.Errorf("Parse(%q) = %v, want the json object error", raw, err)
		}
	}
}

func TestParseEmpty(t *testing.T) {
	for _, raw := range []string{"", "{}", " {} "} {
		s, err := Parse(raw)
		if err != nil || s != nil {
			t.Errorf("Parse(%q) = %v, %v; want nil, nil", raw, s, err)
		}
		if s.NeedsPixels() || s.Canonical() != "" || s.EffectiveFrame(3) != 3 {
			t.Errorf("nil style methods misbehave")
		}
	}
}

func TestParseValidationErrors(t *testing.T) {
	cases := map[string]string{
		`{"band":1,"palette":"nonexistent.palette"}`: "cannot be used as a color palette.: 'nonexistent.palette'.",
		`{"palette":["#000","notacolour"]}`:          "cannot be used as a color palette: ['#000', 'notacolour'].",
		`{"palette":[]}`:                             "cannot be used as a color palette: [].",
		`{"palette":null}`:                           "cannot be used as a color palette.: None.",
		`{"palette":[["a"]]}`:                        "cannot be used as a color palette: [['a']].",
		`{"bands":{"band":1}}`:                       `Style "bands" must be a list of band objects.`,
		`{"bands":[5]}`:                              "Style band entries must be JSON objects.",
		`{"axis":"x"}`:                               `Style "axis" must be an integer.`,
		`{"bands":[{"frame":1.5}]}`:                  `Style band 0: "frame" must be an integer.`,
		`{"bands":[{},{"framedelta":"a"}]}`:          `Style band 1: "framedelta" must be an integer.`,
		`{"nodata":"abc"}`:                           `Style band 0: "nodata" must be a number.`,
		`{"function":5}`:                             `Style "function" must be a function name, an object or a list of them.`,
	}
	for raw, want := range cases {
		_, err := Parse(raw)
		var se *Error
		if !errors.As(err, &se) || se.Message != want {
			t.Errorf("Parse(%s) = %v, want %q", raw, err, want)
		}
	}
}

func TestICCOnly(t *testing.T) {
	s := mustParse(t, `{"icc": false}`)
	if s.NeedsPixels() {
		t.Error("icc-only style needs pixels")
	}
	if v, set := s.ICC(); v || !set {
		t.Errorf("ICC() = %v, %v", v, set)
	}
	if s.NeedsDecode(true) {
		t.Error(`{"icc":false} must allow passthrough`)
	}
	s = mustParse(t, `{"icc": "saturation"}`)
	if v, set := s.ICC(); !v || !set || s.ICCIntent() != "saturation" {
		t.Errorf("ICC() = %v, %v, %s", v, set, s.ICCIntent())
	}
	var none *Style
	if !none.NeedsDecode(true) || none.NeedsDecode(false) {
		t.Error("nil style decode decision must follow the icc default")
	}
	s = mustParse(t, `{"icc": false, "max": 100}`)
	if !s.NeedsPixels() || !s.NeedsDecode(false) {
		t.Error("a style with other keys does band processing")
	}
	if v, set := s.ICC(); v || !set {
		t.Errorf("ICC() = %v, %v", v, set)
	}
}

func TestCanonicalEquality(t *testing.T) {
	same := [][]string{
		{`{"max":128}`, `{ "max" : 128.0 }`, `{"max":"128","min":"auto"}`, `{"bands":[{"max":1.28e2}]}`,
			`{"max":128,"palette":["#000","#fff"],"clamp":true,"composite":"lighten","scheme":"linear"}`,
			`{"max":128,"palette":"white"}`, `{"max":128,"palette":[[0,0,0],[1,1,1,1]]}`},
		{`{"palette":"viridis","min":"min:0"}`, `{"palette":"viridis","min":"min"}`},
		{`{"min":"banana"}`, `{"min":"auto"}`, `{"min":null}`},
		{`{"icc":true}`, `{"icc":"perceptual"}`, `{"icc":"bogus"}`},
		{`{"bands":[{"frame":2,"framedelta":5}]}`, `{"bands":[{"frame":2}]}`},
		{`{"palette":"colorbrewer.sequential.Blues_9"}`, `{"palette":["#F7FBFF","#DEEBF7","#C6DBEF","#9ECAE1","#6BAED6","#4292C6","#2171B5","#08519C","#08306B"]}`},
		{`{"dtype":"uint8","bands":[{"band":2}]}`, `{"bands":[{"band":2,"dtype":"uint8"}]}`},
		{`{"band":"alpha"}`, `{"band":"alpha","composite":"multiply","palette":["#FFF0","#FFFF"]}`},
	}
	for _, group := range same {
		want := mustParse(t, group[0]).Canonical()
		for _, raw := range group[1:] {
			if got := mustParse(t, raw).Canonical(); got != want {
				t.Errorf("Canonical(%s) = %s\nwant %s (from %s)", raw, got, want, group[0])
			}
		}
	}
	different := []string{`{"max":128}`, `{"max":160}`, `{"min":"min:0.02"}`, `{"min":"min"}`,
		`{"palette":"viridis"}`, `{"palette":"viridis_r"}`, `{"band":1}`, `{"band":"red"}`,
		`{"bands":[{"framedelta":1}]}`, `{"nodata":0}`, `{"clamp":false}`, `{"scheme":"discrete"}`,
		`{"dtype":"uint16"}`, `{"axis":0}`, `{"icc":false}`, `{"icc":true}`, `{"bands":[]}`}
	seen := map[string]string{}
	for _, raw := range different {
		c := mustParse(t, raw).Canonical()
		if prev, ok := seen[c]; ok {
			t.Errorf("%s and %s share canonical %s", raw, prev, c)
		}
		seen[c] = raw
	}
	c := mustParse(t, `{"max":128}`).Canonical()
	if !strings.HasPrefix(c, `{"bands":[{`) || !strings.Contains(c, `"max":128`) {
		t.Errorf("canonical form %s", c)
	}
}

func TestFramesAndEffectiveFrame(t *testing.T) {
	s := mustParse(t, `{"bands":[{"framedelta":0},{"framedelta":1},{"framedelta":2},{"frame":1}]}`)
	got := s.Frames(3)
	want := []int{3, 4, 5, 1}
	if len(got) != len(want) {
		t.Fatalf("Frames = %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Frames = %v, want %v", got, want)
		}
	}
	if s.EffectiveFrame(3) != 3 {
		t.Error("not every band has a frame")
	}
	s = mustParse(t, `{"bands":[{"frame":2},{"frame":0}]}`)
	if s.EffectiveFrame(5) != 2 {
		t.Errorf("EffectiveFrame = %d", s.EffectiveFrame(5))
	}
}

func TestParseColour(t *testing.T) {
	cases := map[string]Colour{
		"#f00":                 {255, 0, 0, 255},
		"#f008":                {255, 0, 0, 136},
		"#FF000080":            {255, 0, 0, 128},
		"rgb(10,20,30)":        {10, 20, 30, 255},
		"rgb( 1 , 2 , 3 )":     {1, 2, 3, 255},
		"rgb(10%,20%,30%)":     {26, 51, 77, 255},
		"rgba(1,2,3,4)":        {1, 2, 3, 4},
		"hsl(120,50%,50%)":     {64, 191, 64, 255},
		"hsv(120,50%,50%)":     {64, 128, 64, 255},
		"hsb(0,100%,100%)":     {255, 0, 0, 255},
		"GREEN":                {0, 255, 0, 255},
		"green":                {0, 128, 0, 255},
		"Green":                {0, 128, 0, 255},
		"RebeccaPurple":        {102, 51, 153, 255},
		"rgb(300,0,0)":         {300, 0, 0, 255},
		"hsl(120.5,50.5%,50%)": {63, 192, 64, 255},
	}
	for s, want := range cases {
		got, ok := ParseColour(s)
		if !ok || got != want {
			t.Errorf("ParseColour(%q) = %v, %v; want %v", s, got, ok, want)
		}
	}
	for _, s := range []string{" red", "rgba(1,2,3,0.5)", "#12345", "tab:blue", "rgb(10.5%,1%,1%)"} {
		if _, ok := ParseColour(s); ok {
			t.Errorf("ParseColour(%q) accepted", s)
		}
	}
}

func TestResolvePalette(t *testing.T) {
	check := func(v any, n int, first, last Colour) {
		t.Helper()
		p, err := ResolvePalette(v)
		if err != nil {
			t.Fatalf("ResolvePalette(%v): %v", v, err)
		}
		if len(p) != n || p[0] != first || p[len(p)-1] != last {
			t.Errorf("ResolvePalette(%v): %d colours, first %v last %v", v, len(p), p[0], p[len(p)-1])
		}
	}
	check("viridis", 256, Colour{0x44, 0x01, 0x54, 255}, Colour{0xfd, 0xe7, 0x25, 255})
	check("viridis_r", 256, Colour{0xfd, 0xe7, 0x25, 255}, Colour{0x44, 0x01, 0x54, 255})
	check("magma", 256, Colour{0, 0, 4, 255}, Colour{0xfc, 0xfd, 0xbf, 255})
	// Pillow knows CSS "gray" as a colour, so it wins over the colormap.
	check("gray", 2, Colour{0, 0, 0, 255}, Colour{128, 128, 128, 255})
	check("binary", 2, Colour{255, 255, 255, 255}, Colour{0, 0, 0, 255})
	check("Blues", 9, Colour{0xf7, 0xfb, 0xff, 255}, Colour{0x08, 0x30, 0x6b, 255})
	check("colorbrewer.sequential.Blues_9", 9, Colour{0xf7, 0xfb, 0xff, 255}, Colour{0x08, 0x30, 0x6b, 255})
	check("colorbrewer.sequential.Blues_9_r", 9, Colour{0x08, 0x30, 0x6b, 255}, Colour{0xf7, 0xfb, 0xff, 255})
	check("matplotlib.Viridis_20", 20, Colour{0x44, 0x01, 0x54, 255}, Colour{0xfd, 0xe7, 0x25, 255})
	check("#0f0", 2, Colour{0, 0, 0, 255}, Colour{0, 255, 0, 255})
	check("tab:blue", 2, Colour{0, 0, 0, 0}, Colour{0x1f, 0x77, 0xb4, 255})
	check([]any{"#000", "xkcd:sky blue", []any{0.5, 0.5}}, 3, Colour{0, 0, 0, 255}, Colour{127.5, 127.5, 255, 255})
	for _, name := range []string{"plasma", "inferno", "cividis", "Greys", "Reds", "Greens", "RdBu", "Spectral"} {
		if p, err := ResolvePalette(name); err != nil || len(p) < 2 {
			t.Errorf("palette %s: %v", name, err)
		}
	}
	if names := PaletteNames(); len(names) < 1000 {
		t.Errorf("only %d palette names", len(names))
	}
}

func TestGammaPaletteExample(t *testing.T) {
	// The docs emulate gamma 0.5 with a 16-entry grey palette of
	// (v/255)^0.5·255 (truncated) for v = 0, 17, …, 255; check those values.
	want := strings.Split("#000000,#414141,#5D5D5D,#727272,#838383,#939393,#A1A1A1,#AEAEAE,#BABABA,#C5C5C5,#D0D0D0,#DADADA,#E4E4E4,#EDEDED,#F6F6F6,#FFFFFF", ",")
	for i, w := range want {
		v := math.Floor(math.Pow(float64(i*17)/255, 0.5) * 255)
		c, ok := ParseColour(w)
		if !ok || c[0] != v {
			t.Errorf("entry %d: %s vs %v", i, w, v)
		}
	}
}
