package limits

import "testing"

func TestCheckDecoded(t *testing.T) {
	defer Set(Limits{})
	Set(Limits{MaxDecodedBytes: 1000})
	if err := CheckDecoded("tile", 10, 10, 3, 1); err != nil {
		t.Fatalf("300 bytes refused: %v", err)
	}
	if err := CheckDecoded("tile", 10, 10, 3, 4); err == nil {
		t.Fatal("1200 bytes accepted")
	}
	if err := CheckDecoded("strip", 1<<40, 1<<40, 3, 1); err == nil {
		t.Fatal("an overflowing size accepted")
	}
	if err := CheckDecoded("strip", 0, 5, 3, 1); err == nil {
		t.Fatal("a zero width accepted")
	}
}

func TestOutputPixels(t *testing.T) {
	defer Set(Limits{})
	Set(Limits{MaxOutputPixels: 100})
	for _, c := range []struct {
		w, h int64
		ok   bool
	}{{10, 10, true}, {11, 10, false}, {0, 0, true}, {1 << 62, 1 << 62, false}, {-1, 5, false}} {
		if got := OutputPixelsOK(c.w, c.h); got != c.ok {
			t.Errorf("OutputPixelsOK(%d, %d) = %v, want %v", c.w, c.h, got, c.ok)
		}
	}
	if Get().MaxLoop != Default().MaxLoop {
		t.Error("a zero field did not take its default")
	}
}
