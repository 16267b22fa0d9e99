package girder

import (
	"crypto/md5"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"
)

// The ETag is the MD5 of route, item, version, path arguments and the
// query parameters sorted by name (token left out), each followed by a
// NUL; the same value whether the input fits the stack buffer or not.
func TestETagValue(t *testing.T) {
	long := strings.Repeat("x", 300)
	for _, q := range []url.Values{
		{},
		{"encoding": {"PNG"}, "token": {"secret"}},
		{"style": {long}, "edge": {"crop"}, "frame": {"1", "2"}},
	} {
		var want strings.Builder
		for _, s := range []string{"zxy", "item1", "v2", "3", "4", "5"} {
			want.WriteString(s + "\x00")
		}
		for _, k := range []string{"edge", "encoding", "frame", "style"} {
			if vs, ok := q[k]; ok {
				want.WriteString(k + "\x00")
				for _, v := range vs {
					want.WriteString(v + "\x00")
				}
			}
		}
		sum := md5.Sum([]byte(want.String()))
		if got := etag("zxy", "item1", "v2", []string{"3", "4", "5"}, q); got != `"`+hex.EncodeToString(sum[:])+`"` {
			t.Errorf("query %v: etag %s, want %x", q, got, sum)
		}
	}
}
