package tilesource

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/tileserver/tileserver/encode"
)

// roundTrip compares values as JSON would see them.
func roundTrip(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFrameMetadataTestSourceExample(t *testing.T) {
	in := &Info{SizeX: 10000, SizeY: 5000, TileWidth: 256, TileHeight: 256, Levels: 7,
		Format: encode.Uint8, Bands: 3}
	for z := 0; z < 3; z++ {
		for c := 0; c < 2; c++ {
			in.Frames = append(in.Frames, map[string]any{"IndexC": c, "IndexZ": z})
		}
	}
	want := `{"levels": 7, "sizeX": 10000, "sizeY": 5000, "tileWidth": 256, "tileHeight": 256,
 "magnification": null, "mm_x": null, "mm_y": null, "dtype": "uint8", "bandCount": 3,
 "frames": [
   {"IndexZ": 0, "IndexC": 0, "Frame": 0, "Index": 0},
   {"IndexZ": 0, "IndexC": 1, "Frame": 1, "Index": 0},
   {"IndexZ": 1, "IndexC": 0, "Frame": 2, "Index": 1},
   {"IndexZ": 1, "IndexC": 1, "Frame": 3, "Index": 1},
   {"IndexZ": 2, "IndexC": 0, "Frame": 4, "Index": 2},
   {"IndexZ": 2, "IndexC": 1, "Frame": 5, "Index": 2}],
 "IndexRange": {"IndexC": 2, "IndexZ": 3},
 "IndexStride": {"IndexC": 1, "IndexZ": 2}}`
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	got := roundTrip(t, FrameMetadata(in))
	if !reflect.DeepEqual(got, w) {
		gb, _ := json.Marshal(got)
		t.Errorf("metadata\n got %s\nwant %s", gb, want)
	}
	if _, ok := in.Frames[0]["Frame"]; ok {
		t.Error("FrameMetadata modified Info.Frames")
	}
}

func TestFrameMetadataOMEChannels(t *testing.T) {
	mm := 0.0005
	in := &Info{SizeX: 1024, SizeY: 1022, TileWidth: 1024, TileHeight: 256, Levels: 3,
		Format: encode.Uint16, Bands: 1, MMX: &mm, MMY: &mm,
		Channels: []string{"Brightfield", "CY3", "A594", "CY5", "DAPI"}}
	for z := 0; z < 29; z++ {
		for c := 0; c < 5; c++ {
			in.Frames = append(in.Frames, map[string]any{"IndexC": c, "IndexZ": z})
		}
	}
	m := roundTrip(t, FrameMetadata(in)).(map[string]any)
	frames := m["frames"].([]any)
	if len(frames) != 145 {
		t.Fatalf("%d frames", len(frames))
	}
	f101 := frames[101].(map[string]any)
	want101 := map[string]any{"IndexC": 1.0, "IndexZ": 20.0, "Frame": 101.0, "Index": 20.0, "Channel": "CY3"}
	if !reflect.DeepEqual(f101, want101) {
		t.Errorf("frame 101 = %v", f101)
	}
	// Frames that differ only in channel share Index.
	for i := 0; i < 5; i++ {
		if idx := frames[i].(map[string]any)["Index"]; idx != 0.0 {
			t.Errorf("frame %d Index %v, want 0", i, idx)
		}
	}
	if !reflect.DeepEqual(m["IndexRange"], map[string]any{"IndexC": 5.0, "IndexZ": 29.0}) {
		t.Errorf("IndexRange %v", m["IndexRange"])
	}
	if !reflect.DeepEqual(m["IndexStride"], map[string]any{"IndexC": 1.0, "IndexZ": 5.0}) {
		t.Errorf("IndexStride %v", m["IndexStride"])
	}
	if !reflect.DeepEqual(m["channelmap"], map[string]any{"Brightfield": 0.0, "CY3": 1.0, "A594": 2.0, "CY5": 3.0, "DAPI": 4.0}) {
		t.Errorf("channelmap %v", m["channelmap"])
	}
	if len(m["channels"].([]any)) != 5 || m["dtype"] != "uint16" || m["mm_x"] != 0.0005 {
		t.Errorf("channels/dtype/mm_x: %v %v %v", m["channels"], m["dtype"], m["mm_x"])
	}
}

func TestFrameMetadataGenericAndSingle(t *testing.T) {
	in := &Info{SizeX: 100, SizeY: 100, TileWidth: 256, TileHeight: 256, Levels: 1, Bands: 3,
		Frames: []map[string]any{{"Index": 0}, {"Index": 1}, {"Index": 2}},
		Extra:  map[string]any{"bands": map[string]any{"1": "x"}}}
	m := roundTrip(t, FrameMetadata(in)).(map[string]any)
	for i, f := range m["frames"].([]any) {
		if f.(map[string]any)["Index"] != float64(i) {
			t.Errorf("generic frame %d: %v", i, f)
		}
	}
	if _, ok := m["IndexRange"]; ok {
		t.Error("generic frames must not have IndexRange")
	}
	if m["bands"] == nil {
		t.Error("Extra not merged")
	}
	in.Frames = in.Frames[:1]
	m = FrameMetadata(in)
	if _, ok := m["frames"]; ok {
		t.Error("single frame must not list frames")
	}
}
