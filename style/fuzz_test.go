package style

import (
	"errors"
	"testing"
)

// FuzzParse checks that no input makes Parse, Canonical or Apply panic, that
// every error is a public *Error, and that the canonical form is itself a
// valid style with a stable canonical form.
func FuzzParse(f *testing.F) {
	for _, s := range []string{`{"max":128}`, `{"bands":[{"band":1,"palette":"viridis"}]}`, `[1]`, `{"icc":false}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		s, err := Parse(raw)
		if err != nil {
			var se *Error
			if !errors.As(err, &se) || se.Message == "" {
				t.Fatalf("Parse(%q) returned a non-public error %v", raw, err)
			}
			return
		}
		c1 := s.Canonical()
		s2, err := Parse(c1)
		if err != nil {
			t.Fatalf("canonical %s of %q does not parse: %v", c1, raw, err)
		}
		c2 := s2.Canonical()
		s3, err := Parse(c2)
		if err != nil || s3.Canonical() != c2 {
			t.Fatalf("canonical form is not stable: %s then %s", c2, s3.Canonical())
		}
		_ = s.Frames(1)
		for _, env := range []*fakeEnv{rgb8(), {tiles: map[int]*Raster{0: raster(2, 1, 1, "uint16", 7, 60000)}}} {
			frame := s.EffectiveFrame(0)
			if frame < -2 || frame > 2 {
				continue
			}
			out, err := s.Apply(frame, env)
			if err == nil {
				_ = ToRGBA(out)
				_ = To8BitRaster(out)
			}
		}
	})
}
