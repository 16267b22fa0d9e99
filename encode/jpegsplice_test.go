package encode

import (
	"bytes"
	"testing"
)

// seg builds a JPEG marker segment with the given payload.
func seg(marker byte, payload ...byte) []byte {
	n := len(payload) + 2
	return append([]byte{0xFF, marker, byte(n >> 8), byte(n)}, payload...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

var (
	soi  = []byte{0xFF, 0xD8}
	eoi  = []byte{0xFF, 0xD9}
	dqt  = seg(0xDB, 0x00, 1, 2, 3, 4)
	dht  = seg(0xC4, 0x00, 9, 9)
	sof  = seg(0xC0, 8, 0, 16, 0, 16, 3, 0, 0x11, 0, 1, 0x11, 0, 2, 0x11, 0)
	sos  = seg(0xDA, 3, 0, 0, 1, 0, 2, 0, 0, 63, 0)
	ecs  = []byte{0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56} // stuffed byte and a restart marker
	tbls = cat(soi, dqt, dht, eoi)
	tile = cat(soi, sof, sos, ecs, eoi)
)

func TestSpliceJPEGRGBAddsAdobe(t *testing.T) {
	got := SpliceJPEG(tbls, tile, true)
	want := cat(soi, adobeRGB, dqt, dht, sof, sos, ecs, eoi)
	if !bytes.Equal(got, want) {
		t.Fatalf("splice:\n got % x\nwant % x", got, want)
	}
	// The inserted segment is a valid APP14 "Adobe" with transform 0.
	if got[2] != 0xFF || got[3] != 0xEE || got[4] != 0 || got[5] != 14 || string(got[6:11]) != "Adobe" || got[17] != 0 {
		t.Fatalf("bad Adobe segment % x", got[2:18])
	}
	if !hasAdobe(got[2:]) {
		t.Fatal("hasAdobe does not see the inserted marker")
	}
}

func TestSpliceJPEGYCbCrNoAdobe(t *testing.T) {
	got := SpliceJPEG(tbls, tile, false)
	want := cat(soi, dqt, dht, sof, sos, ecs, eoi)
	if !bytes.Equal(got, want) {
		t.Fatalf("splice:\n got % x\nwant % x", got, want)
	}
	if hasAdobe(got[2:]) {
		t.Fatal("unexpected Adobe marker")
	}
}

func TestSpliceJPEGKeepsExistingAdobe(t *testing.T) {
	adobe := seg(0xEE, 'A', 'd', 'o', 'b', 'e', 0, 100, 0, 0, 0, 0, 1)
	withAdobe := cat(soi, adobe, sof, sos, ecs, eoi)
	got := SpliceJPEG(tbls, withAdobe, true)
	want := cat(soi, dqt, dht, adobe, sof, sos, ecs, eoi)
	if !bytes.Equal(got, want) {
		t.Fatalf("splice:\n got % x\nwant % x", got, want)
	}
	// An Adobe marker in the tables also counts.
	got = SpliceJPEG(cat(soi, adobe, dqt, eoi), tile, true)
	if bytes.Count(got, []byte("Adobe")) != 1 {
		t.Fatalf("Adobe marker duplicated: % x", got)
	}
}

func TestSpliceJPEGNoTables(t *testing.T) {
	if got := SpliceJPEG(nil, tile, false); !bytes.Equal(got, tile) {
		t.Fatalf("no tables: got % x", got)
	}
	// A tile missing SOI and EOI is completed.
	body := cat(sof, sos, ecs)
	if got := SpliceJPEG(nil, body, false); !bytes.Equal(got, cat(soi, body, eoi)) {
		t.Fatalf("completed: got % x", got)
	}
	// Tables without SOI/EOI are used as they are.
	if got := SpliceJPEG(cat(dqt, dht), tile, false); !bytes.Equal(got, cat(soi, dqt, dht, sof, sos, ecs, eoi)) {
		t.Fatalf("bare tables: got % x", got)
	}
}

func TestHasAdobeIgnoresEntropyData(t *testing.T) {
	// "Adobe" bytes after SOS are image data, not a marker.
	b := cat(sof, sos, []byte{0xFF, 0xEE, 0, 14, 'A', 'd', 'o', 'b', 'e'}, eoi)
	if hasAdobe(b) {
		t.Fatal("matched data after SOS")
	}
	if hasAdobe([]byte{0xFF}) || hasAdobe(nil) || hasAdobe(seg(0xE0)[:3]) {
		t.Fatal("matched truncated input")
	}
}
