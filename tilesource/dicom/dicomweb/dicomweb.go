// Package dicomweb serves a whole-slide series held by a DICOMweb server
// (Orthanc, DCM4CHEE, Google Healthcare API, …): QIDO-RS lists the
// series' instances, WADO-RS metadata describes them, and frames are
// fetched with WADO-RS on demand. The tile pipeline's cache sits in front
// of ReadTile, so each frame crosses the network once per cache lifetime.
//
// A series is named either by a server URL (the import route stores
// Series.Locator() on the item) or by the name of a configured Archive,
// whose URL and credentials come from configuration and never reach the
// item database. Archives.Open reopens either kind from its locator;
// ListSeries finds an archive's slide series with QIDO-RS.
package dicomweb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"

	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/dicom"
)

// Bounds on what a server may send.
const (
	maxMetadataBytes = 64 << 20
	maxFrameBytes    = 256 << 20
	maxInstances     = 4096
)

// Transfer syntaxes used in requests.
const (
	tsJPEGBaseline = "1.2.840.10008.1.2.4.50"
	tsExplicitLE   = "1.2.840.10008.1.2.1"
)

// LocatorPrefix starts every DICOMweb source locator.
const LocatorPrefix = "dicomweb:"

// Series names a series on a DICOMweb server: either BaseURL, the service
// root (for Orthanc "http://host:8042/dicom-web"), or Archive, the name of
// a configured Archive.
type Series struct {
	BaseURL   string `json:"url"`
	StudyUID  string `json:"study"`
	SeriesUID string `json:"series"`
	Archive   string `json:"archive,omitempty"`
}

// Validate checks the URL (http or https, with a host) or the archive
// name, and the UIDs (see CheckUID), with public 400 messages.
func (s Series) Validate() error {
	if s.Archive != "" {
		if err := CheckArchiveName(s.Archive); err != nil {
			return tilesource.BadRequest("Invalid DICOMweb archive name")
		}
	} else {
		u, err := url.Parse(s.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return tilesource.BadRequest("Invalid DICOMweb URL")
		}
	}
	if err := CheckUID(s.StudyUID); err != nil {
		return tilesource.BadRequest("Invalid study UID: %s", err.Error())
	}
	if err := CheckUID(s.SeriesUID); err != nil {
		return tilesource.BadRequest("Invalid series UID: %s", err.Error())
	}
	return nil
}

// Locator returns a string that identifies the series, for storing on an
// item: "dicomweb:" + URL-encoded query of url (or archive), study and
// series. An archive's locator holds its name only, so neither its URL nor
// its credentials are stored, and every replica configured with the same
// archive name derives the same item id from it.
func (s Series) Locator() string {
	v := url.Values{"study": {s.StudyUID}, "series": {s.SeriesUID}}
	if s.Archive != "" {
		v.Set("archive", s.Archive)
	} else {
		v.Set("url", strings.TrimRight(s.BaseURL, "/"))
	}
	return LocatorPrefix + v.Encode()
}

// ParseLocator parses a string made by Locator.
func ParseLocator(loc string) (Series, error) {
	rest, ok := strings.CutPrefix(loc, LocatorPrefix)
	if !ok {
		return Series{}, errors.New("not a DICOMweb locator")
	}
	v, err := url.ParseQuery(rest)
	if err != nil {
		return Series{}, err
	}
	s := Series{BaseURL: v.Get("url"), StudyUID: v.Get("study"), SeriesUID: v.Get("series"), Archive: v.Get("archive")}
	if s.Archive != "" && s.BaseURL != "" {
		return Series{}, errors.New("DICOMweb locator names both a URL and an archive")
	}
	return s, s.Validate()
}

// Open opens the series of a URL locator; see the package Open. A series
// of an archive is opened through Archives.Open.
func (s Series) Open(ctx context.Context, client *http.Client) (tilesource.Source, error) {
	return Open(ctx, client, s.BaseURL, s.StudyUID, s.SeriesUID)
}

// maxUIDLen is the longest UID DICOM allows (PS3.5 section 9.1: at most 64
// characters, digits and dots).
const maxUIDLen = 64

// CheckUID reports why s is not a DICOM UID: empty, longer than 64
// characters, or holding anything but digits and dots. UIDs go into
// request paths and cache keys; one that breaks the standard's rules is
// refused rather than guessed at (a 66-character value cannot be sent to
// a conforming archive, which may truncate or reject it, so two servers
// could disagree on what it names).
func CheckUID(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > maxUIDLen {
		return fmt.Errorf("DICOM UIDs are at most %d characters, this one has %d", maxUIDLen, len(s))
	}
	for _, c := range s {
		if (c < '0' || c > '9') && c != '.' {
			return errors.New("DICOM UIDs hold only digits and dots")
		}
	}
	return nil
}

func validUID(s string) bool { return CheckUID(s) == nil }

// Open opens a whole-slide series on a DICOMweb server: it lists the
// series' instances (QIDO-RS), reads each one's metadata (WADO-RS), and
// returns a source whose tiles are frames fetched on demand. client may be
// nil (http.DefaultClient). Errors are *tilesource.Error: 400 for bad
// arguments or a series that is not a slide, 404 when the server does not
// know the series, 502 when the server fails or answers nonsense.
func Open(ctx context.Context, client *http.Client, baseURL, studyUID, seriesUID string) (tilesource.Source, error) {
	s := Series{BaseURL: baseURL, StudyUID: studyUID, SeriesUID: seriesUID}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if client == nil {
		client = http.DefaultClient
	}
	c := &conn{client: client, base: strings.TrimRight(baseURL, "/"), scope: "url:" + strings.TrimRight(baseURL, "/")}
	return c.open(ctx, studyUID, seriesUID, "")
}

// open opens a series on c's server. With version set (the item's version,
// which covers the series' instance list) the instance list is cached
// under it; instance metadata and bulk data are cached under their SOP
// Instance UIDs, which DICOM makes immutable.
func (c *conn) open(ctx context.Context, studyUID, seriesUID, version string) (tilesource.Source, error) {
	seriesPath := "/studies/" + studyUID + "/series/" + seriesUID
	listPath := seriesPath + "/instances"
	var body []byte
	var err error
	if version != "" {
		body, err = c.cachedGet(ctx, listPath+"\x00"+version, listPath, "application/dicom+json")
	} else {
		body, err = c.get(ctx, listPath, "application/dicom+json")
	}
	if err != nil {
		return nil, err
	}
	list, err := dicom.ParseJSON(body)
	if err != nil {
		return nil, upstream("invalid instance list", err)
	}
	if len(list) == 0 {
		return nil, tilesource.NotFound("DICOMweb series has no instances")
	}
	if len(list) > maxInstances {
		return nil, tilesource.BadRequest("DICOMweb series has too many instances")
	}
	var insts []*dicom.Instance
	var firstErr error
	for _, item := range list {
		sop := item.Str(tagSOPInstanceUID)
		if !validUID(sop) {
			return nil, upstream("invalid instance list", fmt.Errorf("SOP instance UID %q", sop))
		}
		instPath := seriesPath + "/instances/" + sop
		md, err := c.cachedGet(ctx, instPath+"/metadata", instPath+"/metadata", "application/dicom+json")
		if err != nil {
			return nil, err
		}
		dss, err := dicom.ParseJSON(md)
		if err != nil || len(dss) == 0 {
			return nil, upstream("invalid instance metadata", err)
		}
		ds := dss[0]
		if err := c.fetchICC(ctx, ds); err != nil {
			return nil, err
		}
		ts := ds.Str(0x00020010)
		in, err := dicom.NewInstance(ds, ts, &frames{c: c, path: instPath, ts: ts})
		if err != nil {
			// Other objects of the series (annotations, …) are skipped.
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		insts = append(insts, in)
	}
	if len(insts) == 0 {
		if firstErr == nil {
			firstErr = errors.New("no whole-slide instances")
		}
		return nil, tilesource.BadRequest("DICOMweb series: %s", firstErr.Error())
	}
	src, err := dicom.NewSource("DICOMweb series", insts)
	if err != nil {
		return nil, err
	}
	return src, nil
}

func upstream(msg string, err error) error {
	return &tilesource.Error{Status: http.StatusBadGateway, Message: "DICOMweb server: " + msg, Cause: err}
}

// conn makes requests to one server.
type conn struct {
	client *http.Client
	base   string
	// cache, when set, keeps metadata answers under keys that start with
	// scope (the archive name or the server URL).
	cache Cache
	scope string
}

// Cache keeps bytes under a key; the pipeline's tile cache tiers
// (tilecache.Tiles) are one, so series metadata is shared by replicas
// through memcached like tiles are.
// produce runs under the context it is given (the shared production's, not
// a caller's), as tilecache.Tiles requires.
type Cache interface {
	GetOrProduce(ctx context.Context, key string, produce func(context.Context) ([]byte, error)) ([]byte, string, error)
}

// cachedGet is get through the cache under key (below c's scope).
func (c *conn) cachedGet(ctx context.Context, key, path, accept string) ([]byte, error) {
	if c.cache == nil {
		return c.get(ctx, path, accept)
	}
	b, _, err := c.cache.GetOrProduce(ctx, "dicomweb-md\x00"+c.scope+"\x00"+key, func(pctx context.Context) ([]byte, error) {
		return c.get(pctx, path, accept)
	})
	return b, err
}

func (c *conn) do(ctx context.Context, path, accept string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, tilesource.BadRequest("Invalid DICOMweb URL")
	}
	req.Header.Set("Accept", accept)
	resp, err := c.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, upstream("request failed", err)
	}
	return resp, nil
}

// get fetches path and returns the body of a 200 answer.
func (c *conn) get(ctx context.Context, path, accept string) ([]byte, error) {
	resp, err := c.do(ctx, path, accept)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, tilesource.NotFound("DICOMweb series not found")
	}
	if resp.StatusCode == http.StatusNoContent {
		return []byte("[]"), nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, upstream(fmt.Sprintf("status %d", resp.StatusCode), nil)
	}
	return readLimited(resp.Body, maxMetadataBytes)
}

func readLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, upstream("read failed", err)
	}
	if int64(len(b)) > limit {
		return nil, upstream("answer too large", nil)
	}
	return b, nil
}

// frames fetches the frames of one instance with WADO-RS.
type frames struct {
	c    *conn
	path string
	ts   string
}

// ReadFrame fetches frame i (from 0). JPEG instances ask for the JPEG
// bytes as stored; others for the stored bitstream in any transfer syntax
// ("transfer-syntax=*"), then for uncompressed data if the server refuses.
func (f *frames) ReadFrame(ctx context.Context, i int) ([]byte, string, error) {
	path := fmt.Sprintf("%s/frames/%d", f.path, i+1)
	var accepts []string
	if f.ts == tsJPEGBaseline {
		accepts = append(accepts, `multipart/related; type="image/jpeg"; transfer-syntax=`+tsJPEGBaseline,
			`multipart/related; type="image/jpeg"`)
	}
	accepts = append(accepts, `multipart/related; type="application/octet-stream"; transfer-syntax=*`,
		`multipart/related; type="application/octet-stream"`)
	var last error
	for _, a := range accepts {
		resp, err := f.c.do(ctx, path, a)
		if err != nil {
			return nil, "", err
		}
		if resp.StatusCode == http.StatusNotAcceptable || resp.StatusCode == http.StatusBadRequest {
			resp.Body.Close()
			last = upstream(fmt.Sprintf("status %d for %s", resp.StatusCode, a), nil)
			continue
		}
		data, ts, err := framePart(resp)
		resp.Body.Close()
		if err != nil {
			return nil, "", err
		}
		if ts == "" {
			// An unlabelled part is what was asked for: the stored syntax
			// for "*", else uncompressed.
			ts = tsExplicitLE
			if strings.Contains(a, "transfer-syntax=*") || strings.Contains(a, "image/jpeg") {
				ts = f.ts
			}
		}
		return data, ts, nil
	}
	return nil, "", last
}

// framePart reads the first part of a multipart/related frame answer (or a
// single-part answer) and the transfer syntax its content type gives.
func framePart(resp *http.Response) ([]byte, string, error) {
	if resp.StatusCode != http.StatusOK {
		return nil, "", upstream(fmt.Sprintf("frame status %d", resp.StatusCode), nil)
	}
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		return nil, "", upstream("bad frame content type", err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		b, err := readLimited(resp.Body, maxFrameBytes)
		return b, partTS(mt, params), err
	}
	if params["boundary"] == "" {
		return nil, "", upstream("multipart answer without boundary", nil)
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	p, err := mr.NextRawPart()
	if err != nil {
		return nil, "", upstream("bad multipart answer", err)
	}
	b, err := readLimited(p, maxFrameBytes)
	if err != nil {
		return nil, "", err
	}
	pmt, pparams, err := mime.ParseMediaType(p.Header.Get("Content-Type"))
	if err != nil {
		// A part without a type has the type the request named.
		pmt, pparams = params["type"], nil
	}
	return b, partTS(pmt, pparams), nil
}

// partTS maps a frame part's media type to a transfer syntax.
func partTS(mt string, params map[string]string) string {
	if ts := params["transfer-syntax"]; ts != "" && ts != "*" {
		return ts
	}
	switch strings.ToLower(mt) {
	case "image/jpeg":
		return tsJPEGBaseline
	case "image/jls":
		return "1.2.840.10008.1.2.4.80"
	case "image/jp2", "image/j2c", "image/jpx":
		return "1.2.840.10008.1.2.4.90"
	}
	return ""
}
