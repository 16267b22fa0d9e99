package tilecache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
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
	// Typical keys fit a stack buffer and cost one allocation (the result);
	// longer ones are hashed incrementally.
	var buf [512]byte
	b := buf[:0]
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	var sum [sha256.Size]byte
	if len(b) <= len(buf) {
		sum = sha256.Sum256(b)
	} else {
		h := sha256.New()
		h.Write(b)
		h.Sum(sum[:0])
	}
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
