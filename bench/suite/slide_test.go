package suite

import (
	"context"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestMakeSlideAndTwin(t *testing.T) {
	for _, tool := range []string{"vips", "vipsheader", "tiffcp"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	dir := t.TempDir()
	slide, twin := filepath.Join(dir, "slide.tif"), filepath.Join(dir, "slide-4x.tif")
	ctx := context.Background()
	if err := MakeSlide(ctx, slide, 3000, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := MakeTwin(ctx, slide, twin, io.Discard); err != nil {
		t.Fatal(err)
	}
	// 3000 px with 256 px tiles: levels 3000, 1500, 750, 375, 187;
	// the twin keeps 3000, 750 and 187.
	for _, c := range []struct{ file, pages, width string }{{slide, "5", "3000"}, {twin, "3", "3000"}} {
		for field, want := range map[string]string{"n-pages": c.pages, "width": c.width, "bands": "3"} {
			got, err := output(ctx, "vipsheader", "-f", field, c.file)
			if err != nil || strings.TrimSpace(got) != want {
				t.Errorf("%s %s = %q %v, want %s", filepath.Base(c.file), field, got, err, want)
			}
		}
	}
	got, _ := output(ctx, "vipsheader", "-f", "width", twin+"[page=1]")
	if strings.TrimSpace(got) != "750" {
		t.Errorf("twin's second level is %q px wide, want 750", got)
	}
}
