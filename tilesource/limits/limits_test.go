package limits

import (
	"errors"
	"testing"
)

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

func TestCheckSide(t *testing.T) {
	defer Set(Limits{})
	Set(Limits{MaxImageSide: 1000})
	if err := CheckSide("image", 1000, 1); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]int64{{1001, 5}, {5, 1001}, {0, 5}, {5, -1}} {
		if err := CheckSide("image", c[0], c[1]); !errors.Is(err, ErrTooLarge) {
			t.Errorf("CheckSide(%d, %d) = %v", c[0], c[1], err)
		}
	}
	if err := CheckDecoded("tile", 1<<40, 1, 1, 1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("CheckDecoded does not wrap ErrTooLarge: %v", err)
	}
	if Get().MaxSynthPixels != Default().MaxSynthPixels {
		t.Error("MaxSynthPixels did not take its default")
	}
}
