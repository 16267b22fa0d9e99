package pipeline

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/dicom/dicomweb"
)

// Bounds on talking to a DICOMweb server: a server that is down or stalls
// costs a request at most these, then a 502, never a hung worker.
const (
	remoteDialTimeout   = 5 * time.Second
	remoteHeaderTimeout = 15 * time.Second
	remoteRequestLimit  = 30 * time.Second
	// remoteOpenLimit bounds opening a whole series (one metadata request
	// per instance).
	remoteOpenLimit = 60 * time.Second
)

// DefaultHTTPClient returns the client used for DICOMweb servers when
// Config.HTTPClient is nil: short connect and response-header timeouts, an
// overall limit per request, and enough idle connections per host for
// parallel frame fetches.
func DefaultHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: remoteDialTimeout, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = remoteDialTimeout
	tr.ResponseHeaderTimeout = remoteHeaderTimeout
	tr.MaxIdleConnsPerHost = 16
	return &http.Client{Transport: tr, Timeout: remoteRequestLimit}
}

// isTest reports whether loc names the synthetic test source.
func (l Locator) isTest() bool { return l.Path == "" && l.Remote == "" && len(l.SeriesPaths) == 0 }

// openRemote opens a DICOMweb series. It runs under the source cache, shared
// by every request waiting for it, so it is bounded by its own deadline
// rather than by the first caller's context.
//
// Series metadata goes through the tile cache tiers under the item's
// version, so replicas sharing memcached fetch it once.
func (p *Pipeline) openRemote(loc, version string) (tilesource.Source, error) {
	ctx, cancel := context.WithTimeout(context.Background(), remoteOpenLimit)
	defer cancel()
	var cache dicomweb.Cache
	if p.tiles != nil {
		cache = p.tiles
	}
	src, err := p.archives.Open(ctx, loc, dicomweb.OpenOptions{Client: p.client, Cache: cache, Version: version})
	if err != nil && ctx.Err() != nil {
		// Not the caller's cancellation: the server was too slow.
		return nil, &tilesource.Error{Status: http.StatusGatewayTimeout, Message: "DICOMweb server: timed out", Cause: err}
	}
	return src, err
}
