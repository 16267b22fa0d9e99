// Package objstore serves slides kept in S3-compatible object storage: it
// lists a bucket under a prefix, reads objects by ranged GETs through a
// bounded block cache (so the TIFF and DICOM readers parse headers without a
// request per small read and fetch each cold tile with one GET), and copies
// the objects that only file-based readers (OpenSlide, libvips) can open
// into a bounded local cache directory.
//
// The client is minio-go v7: an Apache-2.0 S3 client of small surface
// (ranged GETs with If-Match, listing, the AWS credential chain) that works
// with any S3-compatible server and pulls in far less than the AWS SDK.
package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// requestLimit bounds one request to the object store.
const requestLimit = 30 * time.Second

// Object is one stored object, its key relative to the bucket prefix.
type Object struct {
	// Key is slash-separated and relative to the prefix.
	Key      string
	Size     int64
	ETag     string
	Modified time.Time
}

// Version is the object's version string: it changes whenever the object
// is replaced (a new ETag, size or modification time), so cache keys built
// from it never serve the old bytes.
func (o Object) Version() string {
	return fmt.Sprintf("%d-%d-%s", o.Size, o.Modified.UnixNano(), strings.Trim(o.ETag, `"`))
}

// Config locates a bucket and a prefix in it.
type Config struct {
	Bucket string
	// Prefix is "" or ends with "/".
	Prefix string
	// Endpoint is host:port of the S3 API; "" means AWS S3.
	Endpoint string
	// Secure selects https.
	Secure bool
	Region string
	// Transport, when set, carries every request (tests count GETs with
	// it).
	Transport http.RoundTripper
}

// IsURL reports whether s names object storage (s3://…) rather than a
// directory.
func IsURL(s string) bool { return strings.HasPrefix(s, "s3://") }

// ParseURL parses s3://bucket/prefix?endpoint=…&region=…. endpoint may be
// host:port (https) or a full http:// or https:// URL; without it the
// bucket is on AWS S3. The URL never holds credentials: they come from the
// standard AWS environment variables or shared credentials file.
func ParseURL(s string) (Config, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return Config{}, errors.New("object storage URL must look like s3://bucket/prefix?endpoint=host:port")
	}
	if u.User != nil {
		return Config{}, errors.New("object storage URL must not hold credentials: use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or a credentials file")
	}
	c := Config{Bucket: u.Host, Secure: true, Region: u.Query().Get("region")}
	if p := strings.Trim(u.Path, "/"); p != "" {
		c.Prefix = p + "/"
	}
	ep := u.Query().Get("endpoint")
	switch {
	case ep == "":
		c.Endpoint = "s3.amazonaws.com"
	case strings.Contains(ep, "://"):
		eu, err := url.Parse(ep)
		if err != nil || eu.Host == "" || (eu.Scheme != "http" && eu.Scheme != "https") {
			return Config{}, fmt.Errorf("object storage endpoint %q: want host:port or an http(s) URL", ep)
		}
		c.Endpoint, c.Secure = eu.Host, eu.Scheme == "https"
	default:
		c.Endpoint = ep
	}
	for k := range u.Query() {
		if k != "endpoint" && k != "region" {
			return Config{}, fmt.Errorf("object storage URL: unknown parameter %q (endpoint, region)", k)
		}
	}
	return c, nil
}

// String is the URL of the bucket and prefix, without credentials.
func (c Config) String() string {
	return "s3://" + c.Bucket + "/" + c.Prefix
}

// Bucket reads objects under one prefix of one bucket. Safe for concurrent
// use.
type Bucket struct {
	cfg    Config
	client *minio.Client
	core   minio.Core
}

// credentialChain is the standard AWS order: environment variables
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), then the
// shared credentials file (AWS_SHARED_CREDENTIALS_FILE or
// ~/.aws/credentials, profile AWS_PROFILE); none gives anonymous access.
func credentialChain() *credentials.Credentials {
	return credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.FileAWSCredentials{Filename: os.Getenv("AWS_SHARED_CREDENTIALS_FILE"), Profile: os.Getenv("AWS_PROFILE")},
	})
}

// Open returns the bucket of cfg. It does not contact the server.
func Open(cfg Config) (*Bucket, error) {
	cl, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds: credentialChain(), Secure: cfg.Secure, Region: cfg.Region, Transport: cfg.Transport,
	})
	if err != nil {
		return nil, fmt.Errorf("object storage: %w", err)
	}
	return &Bucket{cfg: cfg, client: cl, core: minio.Core{Client: cl}}, nil
}

// Config returns the bucket's configuration.
func (b *Bucket) Config() Config { return b.cfg }

// List returns every object under the prefix, sorted by key. Keys ending
// in "/" (folder markers) are left out.
func (b *Bucket) List(ctx context.Context) ([]Object, error) {
	var out []Object
	for oi := range b.client.ListObjectsIter(ctx, b.cfg.Bucket, minio.ListObjectsOptions{Prefix: b.cfg.Prefix, Recursive: true}) {
		if oi.Err != nil {
			return nil, fmt.Errorf("object storage: list %s: %w", b.cfg, oi.Err)
		}
		key := strings.TrimPrefix(oi.Key, b.cfg.Prefix)
		if key == "" || strings.HasSuffix(key, "/") {
			continue
		}
		out = append(out, Object{Key: key, Size: oi.Size, ETag: oi.ETag, Modified: oi.LastModified.UTC()})
	}
	return out, nil
}

// Stat returns the object at key (relative to the prefix). A missing object
// gives an error wrapping os.ErrNotExist.
func (b *Bucket) Stat(ctx context.Context, key string) (Object, error) {
	if !validKey(key) {
		return Object{}, os.ErrNotExist
	}
	ctx, cancel := context.WithTimeout(ctx, requestLimit)
	defer cancel()
	oi, err := b.client.StatObject(ctx, b.cfg.Bucket, b.cfg.Prefix+key, minio.StatObjectOptions{})
	if err != nil {
		if minio.ToErrorResponse(err).StatusCode == http.StatusNotFound {
			return Object{}, fmt.Errorf("object storage: %s: %w", key, os.ErrNotExist)
		}
		return Object{}, fmt.Errorf("object storage: stat %s: %w", key, err)
	}
	return Object{Key: key, Size: oi.Size, ETag: oi.ETag, Modified: oi.LastModified.UTC()}, nil
}

// validKey refuses keys that could not have come from List.
func validKey(key string) bool {
	return key != "" && !strings.HasPrefix(key, "/") && path.Clean(key) == key
}

// ErrReplaced is returned when an object changed since it was opened: its
// bytes no longer match the version being served.
var ErrReplaced = errors.New("object storage: object was replaced while open")

// get reads n bytes at off of the object version o into p with one ranged
// GET, conditional on o's ETag.
func (b *Bucket) get(o Object, p []byte, off int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), requestLimit)
	defer cancel()
	var opt minio.GetObjectOptions
	if err := opt.SetRange(off, off+int64(len(p))-1); err != nil {
		return err
	}
	rc, err := b.open(ctx, o, opt)
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, p); err != nil {
		return fmt.Errorf("object storage: get %s: %w", o.Key, err)
	}
	return nil
}

// open starts a GET of object version o: If-Match its ETag, so that a
// replaced object fails with ErrReplaced instead of mixing versions.
func (b *Bucket) open(ctx context.Context, o Object, opt minio.GetObjectOptions) (io.ReadCloser, error) {
	if o.ETag != "" {
		if err := opt.SetMatchETag(strings.Trim(o.ETag, `"`)); err != nil {
			return nil, err
		}
	}
	rc, _, _, err := b.core.GetObject(ctx, b.cfg.Bucket, b.cfg.Prefix+o.Key, opt)
	if err != nil {
		if minio.ToErrorResponse(err).StatusCode == http.StatusPreconditionFailed {
			return nil, fmt.Errorf("%s: %w", o.Key, ErrReplaced)
		}
		return nil, fmt.Errorf("object storage: get %s: %w", o.Key, err)
	}
	return rc, nil
}

// download copies the whole object version o to w.
func (b *Bucket) download(ctx context.Context, o Object, w io.Writer) error {
	rc, err := b.open(ctx, o, minio.GetObjectOptions{})
	if err != nil {
		return err
	}
	defer rc.Close()
	n, err := io.Copy(w, io.LimitReader(rc, o.Size+1))
	if err != nil {
		return fmt.Errorf("object storage: get %s: %w", o.Key, err)
	}
	if n != o.Size {
		return fmt.Errorf("object storage: get %s: got %d bytes, want %d", o.Key, n, o.Size)
	}
	return nil
}
