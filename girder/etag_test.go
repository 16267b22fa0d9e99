package girder

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// The ETag is the 64-bit xxHash, in hex, of route, item, version, path arguments and the
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
		wantTag := fmt.Sprintf(`"%016x"`, xxhash.Sum64String(want.String()))
		if got := etag("zxy", "item1", "v2", []string{"3", "4", "5"}, q); got != wantTag {
			t.Errorf("query %v: etag %s, want %s", q, got, wantTag)
		}
	}
}
