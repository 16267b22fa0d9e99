package tilecache

import (
	"strings"
	"testing"
)

func TestKeyDependsOnEveryPart(t *testing.T) {
	base := []string{"file:slide.svs", "v=123456:1700000000", "z=3", "x=4", "y=5", "frame=0", "JPEG", "q=95", "ss=0", `{"min":0}`}
	k := Key(base...)
	if sk := sharedKey("", k); len(sk) != 32 || !memcachedSafe(sk) {
		t.Fatalf("shared key %q: want 32 memcached-safe characters", sk)
	}
	if k != Key(base...) {
		t.Fatal("Key is not deterministic")
	}
	seen := map[string]int{k: -1}
	for i := range base {
		parts := append([]string(nil), base...)
		parts[i] += "'"
		k2 := Key(parts...)
		if sharedKey("", k2) == sharedKey("", k) {
			t.Fatalf("changing part %d gives the same shared key", i)
		}
		if j, dup := seen[k2]; dup {
			t.Fatalf("changing part %d gives the same key as %d", i, j)
		}
		seen[k2] = i
	}
}

func TestKeyChangedVersionGivesNewKeys(t *testing.T) {
	for z := range 4 {
		old := Key("item1", "size=1000,mtime=1", "z", string(rune('0'+z)))
		upd := Key("item1", "size=1000,mtime=2", "z", string(rune('0'+z)))
		if old == upd {
			t.Fatalf("z=%d: same key for two versions", z)
		}
	}
}

func TestKeyPartsAreLengthPrefixed(t *testing.T) {
	if Key("ab", "c") == Key("a", "bc") {
		t.Fatal(`Key("ab","c") == Key("a","bc")`)
	}
	if Key("a", "") == Key("a") {
		t.Fatal(`Key("a","") == Key("a")`)
	}
	long := strings.Repeat("x", 1000)
	if Key(long) == Key(long+"x") || Key(long, "a") == Key(long+"a") {
		t.Fatal("long parts collide")
	}
}

// TestKeyFormat pins a key's bytes (each part's length as a uvarint, then
// the part) and its shared name (SHA-256 of those bytes, the first 16 in
// hex): replicas of different releases share memcached and the disk tier,
// so a name must not change by accident. The expected names come from
// Python's hashlib over the same bytes, and are those of the releases that
// used the shared name as the key everywhere.
func TestKeyFormat(t *testing.T) {
	parts := []string{"item1\x00v2", "tile", "7", "117", "-3", "0", "JPEG", "", ""}
	const want = "8eea8d43e7900eaf481d2436d9913c6b"
	if got, raw := Key(parts...), "\x08item1\x00v2\x04tile\x017\x03117\x02-3\x010\x04JPEG\x00\x00"; got != raw {
		t.Errorf("Key = %q, want %q", got, raw)
	}
	if got := sharedKey("", Key(parts...)); got != want {
		t.Errorf("sharedKey(\"\", Key) = %s, want %s", got, want)
	}
	// The appenders give the same key without a string per part.
	b := AppendKeyPart(nil, "item1", "\x00", "v2")
	b = AppendKeyPart(b, "tile")
	for _, v := range []int{7, 117, -3, 0} {
		b = AppendKeyInt(b, v)
	}
	b = AppendKeyPart(AppendKeyPart(AppendKeyPart(b, "JPEG"), ""))
	if got := sharedKey("", KeyOf(b)); got != want {
		t.Errorf("KeyOf(appended parts) = %s, want %s", got, want)
	}
	// A part longer than 127 bytes has a two-byte length.
	if got, want := sharedKey("", Key(strings.Repeat("x", 200))), "948cdefb43779b0b015ecba112d64d8b"; got != want {
		t.Errorf("Key(200×x) = %s, want %s", got, want)
	}
	// A namespace is hashed first, as a length-prefixed part.
	if got, want := sharedKey("render 2", Key(parts...)), "2bf0c6316c00e79c1722e6f0c270e970"; got != want {
		t.Errorf("sharedKey(\"render 2\", Key) = %s, want %s", got, want)
	}
}

func TestMemcachedKeyForUnsafeKeys(t *testing.T) {
	for _, k := range []string{"has space", strings.Repeat("k", 300), "ctl\x01", ""} {
		mk := mcKey(k)
		if !memcachedSafe(mk) {
			t.Errorf("mcKey(%q) = %q is not memcached-safe", k, mk)
		}
	}
	if mcKey("plain-key") != "plain-key" {
		t.Error("a safe key must be used as is")
	}
}

func BenchmarkKey(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Key("item/64f0a1b2c3d4e5f607182930", "v=123456789:1700000000000", "3", "4", "5", "0", "JPEG", "95", "0", "raw", "", `{"bands":[{"palette":"#f00"}]}`)
	}
}
