package tilesource

import (
	"errors"
	"testing"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilesource/limits"
)

func TestCheckSynthesis(t *testing.T) {
	info := func(w, h, tile int, stored ...int) *Info {
		in := &Info{SizeX: w, SizeY: h, TileWidth: tile, TileHeight: tile, Bands: 3, Format: encode.Uint8}
		in.Levels = LevelsFor(w, h, tile, tile)
		in.Stored = make([]bool, in.Levels)
		for _, z := range stored {
			in.Stored[in.Levels-1-z] = true // z counts down from full resolution
		}
		return in
	}
	for _, c := range []struct {
		name string
		in   *Info
		ok   bool
	}{
		// 32768² in one level: the thumbnail is made from 2^30 pixels.
		{"single level at the limit", info(32768, 32768, 256, 0), true},
		{"single level over the limit", info(32769, 32768, 256, 0), false},
		{"100000² pyramid with every level", info(100000, 100000, 256, 0, 1, 2, 3, 4, 5, 6, 7, 8), true},
		{"100000² with every other level", info(100000, 100000, 256, 0, 2, 4, 6, 8), true},
		{"100000² with the top level only", info(100000, 100000, 256, 0), false},
		// 4096² tiles, 8× gap: a 32768² canvas of 3 GB.
		{"huge tiles with a gap", info(65536, 65536, 4096, 0, 3, 4), false},
		{"huge tiles without gaps", info(65536, 65536, 4096, 0, 1, 2, 3, 4), true},
	} {
		err := c.in.CheckSynthesis()
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, limits.ErrTooLarge)) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}
