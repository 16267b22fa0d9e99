package tiff

import (
	"bytes"
	"encoding/binary"
	"math"
	"slices"
	"testing"
)

// bigEntry is one BigTIFF entry with its value bytes (in file order).
type bigEntry struct {
	tag, typ uint16
	count    uint64
	data     []byte
}

// buildBigTIFF writes a BigTIFF with one directory; values longer than 8
// bytes go after it.
func buildBigTIFF(bo binary.AppendByteOrder, entries []bigEntry) []byte {
	var b []byte
	if bo == binary.BigEndian {
		b = []byte("MM\x00\x2b\x00\x08\x00\x00")
	} else {
		b = []byte("II\x2b\x00\x08\x00\x00\x00")
	}
	b = bo.AppendUint64(b, 16)
	b = bo.AppendUint64(b, uint64(len(entries)))
	extra := uint64(16 + 8 + 20*len(entries) + 8)
	var tail []byte
	for _, e := range entries {
		b = bo.AppendUint16(b, e.tag)
		b = bo.AppendUint16(b, e.typ)
		b = bo.AppendUint64(b, e.count)
		if len(e.data) <= 8 {
			v := make([]byte, 8)
			copy(v, e.data)
			b = append(b, v...)
		} else {
			b = bo.AppendUint64(b, extra+uint64(len(tail)))
			tail = append(tail, e.data...)
		}
	}
	b = bo.AppendUint64(b, 0)
	return append(b, tail...)
}

func TestBigTIFFAllTypesBothOrders(t *testing.T) {
	for _, bo := range []binary.AppendByteOrder{binary.BigEndian, binary.LittleEndian} {
		u16 := func(v ...uint16) []byte {
			var b []byte
			for _, x := range v {
				b = bo.AppendUint16(b, x)
			}
			return b
		}
		u32 := func(v ...uint32) []byte {
			var b []byte
			for _, x := range v {
				b = bo.AppendUint32(b, x)
			}
			return b
		}
		u64 := func(v ...uint64) []byte {
			var b []byte
			for _, x := range v {
				b = bo.AppendUint64(b, x)
			}
			return b
		}
		entries := []bigEntry{
			{tagImageWidth, typeLong, 1, u32(300)},
			{tagImageLength, typeShort, 1, u16(200)},
			{tagImageDescription, typeASCII, 12, []byte("hello world\x00")},
			{1000, typeByte, 3, []byte{1, 2, 255}},
			{1001, typeSByte, 2, []byte{0xFF, 5}},
			{1002, typeSShort, 2, u16(0xFFFE, 7)},
			{1003, typeSLong, 3, u32(0xFFFFFFFD, 1, 2)},
			{1004, typeRational, 2, u32(1, 4, 3, 2)},
			{1005, typeSRational, 1, u32(0xFFFFFFFF, 2)},
			{1006, typeFloat, 1, u32(math.Float32bits(1.5))},
			{1007, typeDouble, 2, u64(math.Float64bits(-2.25), math.Float64bits(1e300))},
			{1008, typeLong8, 2, u64(1<<40, 3)},
			{1009, typeSLong8, 1, u64(^uint64(0))},
			{1010, typeIFD8, 1, u64(0)},
			{1011, typeUndefined, 10, []byte("0123456789")},
			{1012, 99, 1, []byte{1}}, // unknown type: ignored
		}
		b := buildBigTIFF(bo, entries)
		f, err := Parse(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		d := f.IFDs[0]
		if !f.BigTIFF || f.ByteOrder.String() != bo.String() || d.Uint(tagImageWidth, 0) != 300 || d.Uint(tagImageLength, 0) != 200 {
			t.Fatalf("%v: header or size wrong", bo)
		}
		if d.String(tagImageDescription) != "hello world" {
			t.Fatalf("%v: description %q", bo, d.String(tagImageDescription))
		}
		checks := map[uint16][]float64{
			1000: {1, 2, 255}, 1001: {-1, 5}, 1002: {-2, 7}, 1003: {-3, 1, 2}, 1004: {0.25, 1.5},
			1005: {-0.5}, 1006: {1.5}, 1007: {-2.25, 1e300}, 1008: {1 << 40, 3}, 1009: {-1}, 1010: {0},
		}
		for tag, want := range checks {
			if got := d.Entries[tag].Floats(); !slices.Equal(got, want) {
				t.Errorf("%v: tag %d = %v, want %v", bo, tag, got, want)
			}
		}
		if got := d.Uints(1008); !slices.Equal(got, []uint64{1 << 40, 3}) {
			t.Errorf("%v: LONG8 %v", bo, got)
		}
		if string(d.Bytes(1011)) != "0123456789" || d.Entries[1012] != nil {
			t.Errorf("%v: undefined or unknown type", bo)
		}
	}
}

func TestParseNotTIFF(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("II"), []byte("GIF89a.........."), []byte("II*\x00"), []byte("MM\x00\x2b\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x10")} {
		if _, err := Parse(bytes.NewReader(b), int64(len(b))); err == nil {
			t.Errorf("%q parsed", b)
		}
	}
}
