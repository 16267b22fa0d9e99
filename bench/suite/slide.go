package suite

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// MakeSlide writes a size×size RGB BigTIFF with 256 px JPEG (Q80) tiles and
// a full pyramid to out, from a deterministic pattern (a zone plate, seeded
// noise and sine gratings in the three bands, repeated with a period that
// does not line up with the tile grid). It needs the vips command.
func MakeSlide(ctx context.Context, out string, size int, log io.Writer) error {
	work, err := os.MkdirTemp(filepath.Dir(out), ".make-slide-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	v := func(args ...string) error { return run(ctx, work, log, "vips", args...) }
	const p = "1741" // the pattern's period in pixels
	steps := [][]string{
		{"zone", "zone.v", p, p},
		{"linear", "zone.v", "r.v", "90", "150", "--uchar"},
		{"gaussnoise", "g.v", p, p, "--mean", "150", "--sigma", "25", "--seed", "0"},
		{"cast", "g.v", "gu.v", "uchar"},
		{"sines", "s.v", p, p, "--hfreq", "7", "--vfreq", "5"},
		{"linear", "s.v", "b.v", "60", "170", "--uchar"},
		{"bandjoin", "r.v gu.v b.v", "rgb.v"},
		{"copy", "rgb.v", "srgb.v", "--interpretation", "srgb"},
	}
	for _, s := range steps {
		if err := v(s...); err != nil {
			return err
		}
	}
	n := strconv.Itoa(size/1741 + 1)
	if err := v("replicate", "srgb.v", "rep.v", n, n); err != nil {
		return err
	}
	dst := out + "[tile,pyramid,compression=jpeg,Q=80,tile-width=256,tile-height=256,bigtiff]"
	s := strconv.Itoa(size)
	return v("crop", "rep.v", dst, "0", "0", s, s)
}

// MakeTwin writes a copy of src that keeps only every other pyramid level
// (IFDs 0, 2, 4, …: 4× steps like Aperio SVS), so the half-resolution
// levels must be synthesised. It needs tiffcp (Debian libtiff-tools); the
// tiles are re-encoded at Q80.
func MakeTwin(ctx context.Context, src, out string, log io.Writer) error {
	pages, err := output(ctx, "vipsheader", "-f", "n-pages", src)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(strings.TrimSpace(pages))
	if err != nil || n < 1 {
		return fmt.Errorf("vipsheader n-pages of %s: %q", src, pages)
	}
	spec := src
	for i := 0; i < n; i += 2 {
		spec += "," + strconv.Itoa(i)
	}
	return run(ctx, "", log, "tiffcp", "-m", "0", "-8", "-c", "jpeg:80", "-t", "-w", "256", "-l", "256", spec, out)
}

func run(ctx context.Context, dir string, log io.Writer, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}

func output(ctx context.Context, name string, args ...string) (string, error) {
	b, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return string(b), nil
}
