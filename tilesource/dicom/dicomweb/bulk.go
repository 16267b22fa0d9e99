package dicomweb

import (
	"context"
	"errors"
	"net/url"
	"strings"

	"github.com/tileserver/tileserver/tilesource/dicom"
)

// Tags of the colour profile, which servers commonly send as bulk data.
const (
	tagOpticalPathSeq dicom.Tag = 0x00480105
	tagICCProfile     dicom.Tag = 0x00282000
)

// errNoBulk marks bulk data the server would not serve.
var errNoBulk = errors.New("bulk data not available")

// fetchICC fills in the ICC profiles of ds's optical paths that the server
// gave by BulkDataURI, so tiles are colour-managed as they are from the
// file. Only URIs below the service root are followed: the server must not
// steer requests elsewhere. A server that cannot serve the bulk data (4xx)
// leaves the profile out; transport failures are errors.
func (c *conn) fetchICC(ctx context.Context, ds *dicom.Dataset) error {
	for _, op := range ds.Seq(tagOpticalPathSeq) {
		e := op.Get(tagICCProfile)
		if e == nil || e.Raw != nil || e.BulkURI == "" {
			continue
		}
		path, ok := c.below(e.BulkURI)
		if !ok {
			continue
		}
		fetch := func(ctx context.Context) ([]byte, error) {
			resp, err := c.do(ctx, path, `multipart/related; type="application/octet-stream"`)
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			if resp.StatusCode >= 400 && resp.StatusCode < 500 {
				return nil, errNoBulk
			}
			b, _, err := framePart(resp)
			return b, err
		}
		var b []byte
		var err error
		if c.cache != nil {
			b, _, err = c.cache.GetOrProduce(ctx, "dicomweb-bulk\x00"+c.scope+"\x00"+path, fetch)
		} else {
			b, err = fetch(ctx)
		}
		if errors.Is(err, errNoBulk) {
			continue
		}
		if err != nil {
			return err
		}
		e.Raw = b
	}
	return nil
}

// below returns the path of uri relative to the service root when uri
// (absolute, or relative to the root) lies below it.
func (c *conn) below(uri string) (string, bool) {
	base, err := url.Parse(c.base + "/")
	if err != nil {
		return "", false
	}
	u, err := base.Parse(uri)
	if err != nil || u.Scheme != base.Scheme || !strings.EqualFold(u.Host, base.Host) ||
		!strings.HasPrefix(u.Path, base.Path) || strings.Contains(u.Path, "/../") || u.User != nil {
		return "", false
	}
	rest := "/" + strings.TrimPrefix(u.Path, base.Path)
	if u.RawQuery != "" {
		rest += "?" + u.RawQuery
	}
	return rest, true
}
