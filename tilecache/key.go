package tilecache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
)

// keyHexBytes is how many bytes of the SHA-256 digest a shared key keeps:
// 128 bits make a collision between two different tiles practically
// impossible while keeping keys short (32 hex characters) in memory and on
// the wire.
const keyHexBytes = 16

// Key joins its parts into a cache key. Each part is length-prefixed (its
// length as a uvarint, then its bytes), so ("ab", "c") and ("a", "bc") give
// different keys, and the key is those bytes as they are: two keys are equal
// only when their parts are, so the in-process tier and the coalescing of
// productions compare them exactly, with no hash to compute on a hit (a
// SHA-256 was about a sixth of a warm hit's handler time). The tiers shared
// between replicas (memcached, disk) store each entry under sharedKey.
//
// Callers pass the source identity and version, z, x, y, frame, encoding
// and its options, and the canonical style; a changed version therefore
// yields new keys and old entries simply age out.
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
// in the form Key joins them: KeyOf(AppendKeyPart(AppendKeyPart(nil, "a"),
// "b", "c")) equals Key("a", "bc"). It lets the key of every tile request
// be built without a string per part.
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

// KeyOf returns the key made of parts appended by AppendKeyPart and
// AppendKeyInt.
func KeyOf(parts []byte) string { return string(parts) }

// sharedKey is the name of key in the tiers replicas share, under
// namespace (Config.Namespace): the first 128 bits of the SHA-256 of the
// namespace, when there is one, as a length-prefixed part, then the key's
// bytes, in lowercase hex (32 characters, safe for memcached). Every
// replica with the same namespace derives the same name from the same
// parts, so they share entries without coordination.
func sharedKey(namespace, key string) string {
	h := sha256.New()
	if namespace != "" {
		h.Write(AppendKeyPart(nil, namespace))
	}
	h.Write([]byte(key))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
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
