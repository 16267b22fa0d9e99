package dicomweb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/tileserver/tileserver/tilesource"
)

// Archive is a DICOMweb server configured by name. Its URL and credentials
// live in configuration only: items store the name (see Series.Locator).
type Archive struct {
	// Name is the archive's short name: lower-case letters, digits and
	// dashes (CheckArchiveName). It names the item collection and is part
	// of every item id, so replicas must use the same name.
	Name string
	// URL is the DICOMweb service root, http or https, without
	// credentials.
	URL string
	// Authorization is the Authorization header value sent with every
	// request to URL's host ("Basic …" or "Bearer …"); "" sends none.
	Authorization string
}

// String shows the archive without its credentials, so logging one is
// safe.
func (a Archive) String() string {
	auth := "none"
	if scheme, _, ok := strings.Cut(a.Authorization, " "); ok {
		auth = strings.ToLower(scheme)
	}
	return fmt.Sprintf("%s=%s (auth %s)", a.Name, a.URL, auth)
}

// LogValue logs the archive as String does.
func (a Archive) LogValue() slog.Value { return slog.StringValue(a.String()) }

// CheckArchiveName reports why name cannot name an archive.
func CheckArchiveName(name string) error {
	if name == "" || len(name) > 32 {
		return errors.New("an archive name has 1 to 32 characters")
	}
	for i, c := range name {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && (c != '-' || i == 0) {
			return fmt.Errorf("archive name %q: use lower-case letters, digits and dashes (not first)", name)
		}
	}
	return nil
}

// Validate checks the name and URL.
func (a Archive) Validate() error {
	if err := CheckArchiveName(a.Name); err != nil {
		return err
	}
	u, err := url.Parse(a.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("archive %s: URL must be http:// or https:// with a host", a.Name)
	}
	if u.User != nil {
		return fmt.Errorf("archive %s: put credentials in the environment, not in the URL", a.Name)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("archive %s: URL must not have a query or fragment", a.Name)
	}
	return nil
}

// Archives are the configured archives by name. The zero value (or nil)
// knows none and still opens URL locators.
type Archives struct {
	byName map[string]Archive
	order  []string
}

// NewArchives checks the archives and indexes them by name.
func NewArchives(list []Archive) (*Archives, error) {
	a := &Archives{byName: map[string]Archive{}}
	for _, ar := range list {
		if err := ar.Validate(); err != nil {
			return nil, err
		}
		if _, dup := a.byName[ar.Name]; dup {
			return nil, fmt.Errorf("archive %s configured twice", ar.Name)
		}
		ar.URL = strings.TrimRight(ar.URL, "/")
		a.byName[ar.Name] = ar
		a.order = append(a.order, ar.Name)
	}
	return a, nil
}

// List returns the archives in configuration order.
func (a *Archives) List() []Archive {
	if a == nil {
		return nil
	}
	out := make([]Archive, len(a.order))
	for i, n := range a.order {
		out[i] = a.byName[n]
	}
	return out
}

// OpenOptions are how Archives.Open reaches servers.
type OpenOptions struct {
	// Client makes the requests; nil means http.DefaultClient. An
	// archive's credentials are added to requests to its host only.
	Client *http.Client
	// Cache, when set, keeps series metadata (see conn.open).
	Cache Cache
	// Version is the item's version; it keys the cached instance list.
	Version string
}

// Open opens the series a locator names: on the server of a URL locator,
// or on a configured archive. An archive that is not configured (any
// more) is a 404.
func (a *Archives) Open(ctx context.Context, loc string, opt OpenOptions) (tilesource.Source, error) {
	s, err := ParseLocator(loc)
	if err != nil {
		return nil, &tilesource.Error{Status: http.StatusBadRequest, Message: "Invalid DICOMweb locator", Cause: err}
	}
	c, err := a.conn(s, opt)
	if err != nil {
		return nil, err
	}
	return c.open(ctx, s.StudyUID, s.SeriesUID, opt.Version)
}

// conn returns the connection for a series' server.
func (a *Archives) conn(s Series, opt OpenOptions) (*conn, error) {
	client := opt.Client
	if client == nil {
		client = http.DefaultClient
	}
	if s.Archive == "" {
		base := strings.TrimRight(s.BaseURL, "/")
		return &conn{client: client, base: base, cache: opt.Cache, scope: "url:" + base}, nil
	}
	var ar Archive
	ok := false
	if a != nil {
		ar, ok = a.byName[s.Archive]
	}
	if !ok {
		return nil, tilesource.NotFound("DICOMweb archive %s is not configured", s.Archive)
	}
	return &conn{client: ar.client(client), base: ar.URL, cache: opt.Cache, scope: "archive:" + ar.Name}, nil
}

// client returns base with the archive's credentials added to requests
// for its host.
func (a Archive) client(base *http.Client) *http.Client {
	if a.Authorization == "" {
		return base
	}
	u, _ := url.Parse(a.URL)
	c := *base
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	c.Transport = &authTransport{next: next, scheme: u.Scheme, host: u.Host, auth: a.Authorization}
	return &c
}

// authTransport adds an Authorization header to requests for one origin,
// so a redirect or bulk data URI elsewhere never carries the credentials.
type authTransport struct {
	next         http.RoundTripper
	scheme, host string
	auth         string
}

func (t *authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == t.scheme && strings.EqualFold(r.URL.Host, t.host) {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", t.auth)
	}
	return t.next.RoundTrip(r)
}
