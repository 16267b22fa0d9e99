package pipeline

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/tileserver/tileserver/tilesource/limits"
)

// A montage of every frame counts the frames against the loop limit, as a
// listed frameList does.
func TestMontageFrameCount(t *testing.T) {
	defer limits.Set(limits.Limits{})
	p := newPipeline(t, nil)
	path, _ := filepath.Abs(filepath.Join(testdata, "libvips", "multi-channel-z-series.ome.tif"))
	loc := Locator{ID: "ome", Path: path, Version: "1"}
	w, h := 32, 32
	req := TileFramesRequest{Region: RegionRequest{Width: &w, Height: &h, Fill: "red", Encode: EncodeOptions{Encoding: "PNG"}}}
	limits.Set(limits.Limits{MaxLoop: 4})
	_, err := p.TileFrames(context.Background(), loc, req)
	wantError(t, err, http.StatusBadRequest, "Value Error: The number of frames (15) is over the limit of 4.")
	req.FrameList = []int{0, 1, 2, 3, 4}
	_, err = p.TileFrames(context.Background(), loc, req)
	wantError(t, err, http.StatusBadRequest, "Value Error: The number of frameList entries (5) is over the limit of 4.")
	limits.Set(limits.Limits{MaxLoop: 15})
	req.FrameList = nil
	res, err := p.TileFrames(context.Background(), loc, req)
	if err != nil {
		t.Fatal(err)
	}
	img := decode(t, res.Data)
	if img.Width != 4*32 || img.Height != 4*32 {
		t.Errorf("montage %dx%d, want 128x128", img.Width, img.Height)
	}
}

// quad_info's layout loops end at once for any stride, and give up when
// the request is cancelled.
func TestQuadInfoBounds(t *testing.T) {
	defer limits.Set(limits.Limits{})
	limits.Set(limits.Limits{MaxLoop: 50})
	frames := make([]any, 40)
	md := map[string]any{"sizeX": 1000, "sizeY": 800, "tileWidth": 256, "tileHeight": 256, "frames": frames,
		"IndexRange": map[string]any{"IndexZ": 40}}
	_, err := quadInfo(context.Background(), md, QuadInfoRequest{FrameGroupStride: "51"})
	wantError(t, err, http.StatusBadRequest, "Value Error: frameGroupStride (51) is over the limit of 50.")
	_, err = quadInfo(context.Background(), md, QuadInfoRequest{FrameGroup: "9223372036854775807"})
	wantError(t, err, http.StatusBadRequest, "Value Error: frameGroup (9223372036854775807) is over the limit of 50.")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = quadInfo(ctx, md, QuadInfoRequest{FrameBase: "z"})
	wantError(t, err, 499, "Request cancelled")
	out, err := quadInfo(context.Background(), md, QuadInfoRequest{FrameGroupStride: "50"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(out["frames"].([]any)); n != 40 {
		t.Errorf("%d frames laid out, want 40", n)
	}
}
