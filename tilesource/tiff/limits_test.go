package tiff

import (
	"bytes"
	"context"
	"errors"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/damaged"
	"github.com/tileserver/tileserver/tilesource/internal/leavetest"
	"github.com/tileserver/tileserver/tilesource/limits"
)

// damagedFiles generates the damaged variants of some test files, by name.
func damagedFiles(t *testing.T, rels ...string) map[string][]byte {
	t.Helper()
	var srcs []damaged.Source
	for _, rel := range rels {
		b, err := os.ReadFile(tdPath(rel))
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, damaged.Source{Name: filepath.Base(rel), Data: b})
	}
	out := map[string][]byte{}
	for _, f := range damaged.Generate(srcs, 1, 0) {
		out[f.Name] = f.Data
	}
	return out
}

// TestDeclaredSizesOverLimits: files declaring chunks or images over the
// limits are refused at open with a public 400 naming the file and the
// reason, wrapping limits.ErrTooLarge.
func TestDeclaredSizesOverLimits(t *testing.T) {
	files := damagedFiles(t, "large_image/grey10kx5k.tif", "libvips/CMU-1-Small-Region.svs", "libvips/ojpeg-strip.tif")
	for name, want := range map[string]string{
		"grey10kx5k.ifd0-square-1048576-bigstrips.tif":       "strip of 1048576×",
		"CMU-1-Small-Region.ifd0-square-100000-bigtiles.svs": "tile of 12512×12512 pixels is larger than the decode limit",
		"CMU-1-Small-Region.ifd0-width-1048577.svs":          "image of 1048577×2967 pixels is outside the image size limit",
		"ojpeg-strip.ifd0-ojpeg-1048576.tif":                 "strip of 1048576×160 pixels",
	} {
		data := files[name]
		if data == nil {
			t.Fatalf("%s not generated", name)
		}
		_, err := newSource(bytes.NewReader(data), int64(len(data)), name)
		var te *tilesource.Error
		if !errors.As(err, &te) || te.Status != http.StatusBadRequest || !strings.HasPrefix(te.Message, name+": ") ||
			!strings.Contains(te.Message, want) {
			t.Errorf("%s: %v, want a 400 containing %q", name, err, want)
		}
		if !errors.Is(err, limits.ErrTooLarge) {
			t.Errorf("%s: %v does not wrap ErrTooLarge", name, err)
		}
	}
}

// TestHugeImageOfSmallStrips: 100000² pixels in strips within the decode
// limit open, but their lower levels cannot be made within the limits, so
// the file is refused by the synthesis check that opening applies.
func TestHugeImageOfSmallStrips(t *testing.T) {
	name := "grey10kx5k.ifd0-square-100000-bigstrips.tif"
	data := damagedFiles(t, "large_image/grey10kx5k.tif")[name]
	s, err := newSource(bytes.NewReader(data), int64(len(data)), name)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Info().CheckSynthesis(); !errors.Is(err, limits.ErrTooLarge) {
		t.Fatalf("CheckSynthesis: %v", err)
	}
}

// TestRowsPerStripZero: RowsPerStrip 0 is read as libtiff does (the whole
// image in one strip); the strip's stored bytes then hold fewer rows than
// that, which is a read error of the tile (404), not a crash.
func TestRowsPerStripZero(t *testing.T) {
	name := "grey10kx5k.ifd0-rowsperstrip-0.tif"
	data := damagedFiles(t, "large_image/grey10kx5k.tif")[name]
	s, err := newSource(bytes.NewReader(data), int64(len(data)), name)
	if err != nil {
		t.Fatal(err)
	}
	in := s.Info()
	if in.SizeX != 10000 || in.SizeY != 5000 || s.frame[0][in.Levels-1].th != 5000 {
		t.Fatalf("%dx%d, strip of %d rows", in.SizeX, in.SizeY, s.frame[0][in.Levels-1].th)
	}
	_, err = s.ReadTile(context.Background(), 0, in.Levels-1, 0, 0)
	var te *tilesource.Error
	if !errors.As(err, &te) || te.Status != http.StatusNotFound {
		t.Fatalf("tile of a short strip: %v", err)
	}
	// The damaged strip is remembered: the tiles beside it fail without
	// decoding it again.
	if s.strips.failure(stripKey{s.frame[0][in.Levels-1], 0}) == nil {
		t.Error("the failed strip is not remembered")
	}
	if _, err := s.ReadTile(context.Background(), 0, in.Levels-1, 1, 0); !errors.As(err, &te) || te.Status != http.StatusNotFound {
		t.Errorf("tile beside it: %v", err)
	}
}

// TestStripDecodesShareBudget: with a decode limit below one strip, the
// file is refused; with room for one strip, concurrent readers of the
// strips of a row all succeed through the shared budget.
func TestStripDecodeLimit(t *testing.T) {
	defer limits.Set(limits.Limits{})
	limits.Set(limits.Limits{MaxDecodedBytes: 10000 * 63})
	if _, err := Open(tdPath("large_image/grey10kx5k.tif")); !errors.Is(err, limits.ErrTooLarge) {
		t.Fatalf("strips of 10000×64 under a 10000×63 limit: %v", err)
	}
	limits.Set(limits.Limits{MaxDecodedBytes: 10000 * 64})
	s := openT(t, "large_image/grey10kx5k.tif")
	z := s.Info().Levels - 1
	errs := make(chan error, 40)
	for x := range 40 {
		go func() {
			_, err := s.ReadTile(context.Background(), 0, z, x, 0)
			errs <- err
		}()
	}
	for range 40 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestStripDecodeOutlivesItsFirstCaller: a strip decode shared by two
// readers does not fail the second when the first goes away while the
// decode waits for the budget.
func TestStripDecodeOutlivesItsFirstCaller(t *testing.T) {
	s := openT(t, "large_image/grey10kx5k.tif")
	z := s.Info().Levels - 1
	// Hold the whole decode budget, so that the first reader's decode of
	// strip 0 waits inside the strip's flight.
	hold, err := acquireDecode(context.Background(), math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	read := func(x int) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := s.ReadTile(ctx, 0, z, x, 0)
			return err
		}
	}
	if _, err := leavetest.FirstCallerLeaves(hold, read(0), read(1)); err != nil { // tiles 0 and 1 share strip 0
		t.Fatalf("second reader, first one cancelled: %v", err)
	}
	if _, err := s.ReadTile(context.Background(), 0, z, 2, 0); err != nil {
		t.Fatalf("strip remembered as failed: %v", err)
	}
}
