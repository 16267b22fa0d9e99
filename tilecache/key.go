package tilecache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
)

// keyHexBytes is how many bytes of the SHA-256 digest a key keeps: 128 bits
// make a collision between two different tiles practically impossible while
// keeping keys short (32 hex characters) in memory and on the wire.
const keyHexBytes = 16

// Key hashes its parts into a cache key: lowercase hex, 32 characters, safe
// for memcached (no spaces or control characters, well under 250 bytes).
//
// Each part is length-prefixed before hashing, so ("ab", "c") and ("a", "bc")
// give different keys. Callers pass the source identity and version, z, x,
// y, frame, encoding and its options, and the canonical style; a changed
// version therefore yields new keys and old entries simply age out.
func Key(parts ...string) string {
	// Typical keys fit a stack buffer and cost one allocation (the result).
	var buf [512]byte
	b := buf[:0]
	for _, p := range parts {
		b = AppendKeyPart(b, p)
	}
	return KeyOf(b)
}

// AppendKeyPart appends one key part made of the concatenated pieces to b,
// in the form Key hashes: KeyOf(AppendKeyPart(AppendKeyPart(nil, "a"), "b",
// "c")) equals Key("a", "bc"). It lets the key of every tile request be
// built without a string per part.
func AppendKeyPart(b []byte, pieces ...string) []byte {
	n := 0
	for _, p := range pieces {
		n += len(p)
	}
	b = binary.AppendUvarint(b, uint64(n))
	for _, p := range pieces {
		b = append(b, p...)
	}
	return b
}

// AppendKeyInt appends the key part strconv.Itoa(v) to b.
func AppendKeyInt(b []byte, v int) []byte {
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], int64(v), 10)
	b = binary.AppendUvarint(b, uint64(len(d)))
	return append(b, d...)
}

// KeyOf hashes parts appended by AppendKeyPart and AppendKeyInt into a key.
func KeyOf(parts []byte) string {
	sum := sha256.Sum256(parts)
	var out [2 * keyHexBytes]byte
	hex.Encode(out[:], sum[:keyHexBytes])
	return string(out[:])
}

// memcachedSafe reports whether key can be sent to memcached as is.
func memcachedSafe(key string) bool {
	if len(key) == 0 || len(key) > 250 {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] <= ' ' || key[i] == 0x7f {
			return false
		}
	}
	return true
}
