package objstore

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path"
	"strings"

	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/detect"
	"github.com/tileserver/tileserver/tilesource/dicom"
)

// Slides opens slides stored as objects of one bucket prefix. TIFF (our
// own reader) and DICOM are read in place by ranged GETs; other formats
// (OpenSlide's vendor formats, plain images for libvips) are copied once
// into Files, or refused when Files is nil.
type Slides struct {
	Bucket *Bucket
	Blocks *BlockCache
	// Files holds local copies for file-based readers; nil refuses them.
	Files *FileCache
}

// locPrefix marks a pipeline path that names an object rather than a file:
// local paths are absolute, so they never start with it.
const locPrefix = "s3:"

// PathOf is the pipeline path of the object at key (relative to the
// prefix).
func PathOf(key string) string { return locPrefix + key }

// KeyOf returns the object key of a pipeline path made by PathOf.
func KeyOf(p string) (string, bool) {
	if !strings.HasPrefix(p, locPrefix) {
		return "", false
	}
	return p[len(locPrefix):], true
}

// Open opens the slide at key: one HEAD for its current version, then the
// reader's ranged GETs (or a local copy for file-based readers).
func (s *Slides) Open(ctx context.Context, key string) (tilesource.Source, error) {
	o, err := s.stat(ctx, key)
	if err != nil {
		return nil, err
	}
	return s.OpenObject(ctx, o)
}

// OpenObject opens the object version o.
func (s *Slides) OpenObject(ctx context.Context, o Object) (tilesource.Source, error) {
	name := path.Base(o.Key)
	src, err := detect.OpenReaderAt(s.Bucket.NewReader(o, s.Blocks), o.Size, name)
	if err == nil || !errors.Is(err, detect.ErrNeedsFile) {
		return src, publicError(name, err)
	}
	if s.Files == nil {
		return nil, &tilesource.Error{Status: http.StatusBadRequest,
			Message: name + ": only OpenSlide or libvips read this format, and they need a local file: set a local slide cache to serve it from object storage"}
	}
	p, err := s.Files.Path(ctx, s.Bucket, o)
	if err != nil {
		return nil, publicError(name, err)
	}
	return detect.Open(p)
}

// OpenSeries opens the DICOM instances at keys as one slide.
func (s *Slides) OpenSeries(ctx context.Context, keys []string) (tilesource.Source, error) {
	rs := make([]dicom.Reader, len(keys))
	for i, k := range keys {
		o, err := s.stat(ctx, k)
		if err != nil {
			return nil, err
		}
		rs[i] = dicom.Reader{R: s.Bucket.NewReader(o, s.Blocks), Size: o.Size, Name: path.Base(k)}
	}
	src, err := dicom.OpenReaders(rs)
	return src, publicError(path.Base(keys[0]), err)
}

// SeriesUID returns the Series Instance UID of a DICOM object (reading its
// header through the block cache), or "" for anything else.
func (s *Slides) SeriesUID(o Object) string {
	return dicom.SeriesUIDOf(s.Bucket.NewReader(o, s.Blocks), o.Size)
}

func (s *Slides) stat(ctx context.Context, key string) (Object, error) {
	o, err := s.Bucket.Stat(ctx, key)
	if errors.Is(err, os.ErrNotExist) {
		return Object{}, &tilesource.Error{Status: http.StatusNotFound, Message: path.Base(key) + ": file not found", Cause: err}
	}
	if err != nil {
		return Object{}, &tilesource.Error{Status: http.StatusBadGateway, Message: "Object storage: request failed", Cause: err}
	}
	return o, nil
}

// publicError gives object storage failures a status and a message that
// names no bucket, endpoint or credential.
func publicError(name string, err error) error {
	var te *tilesource.Error
	if err == nil || errors.As(err, &te) {
		return err
	}
	if errors.Is(err, ErrReplaced) {
		return &tilesource.Error{Status: http.StatusServiceUnavailable, Message: name + ": the object changed while it was read; retry", Cause: err}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &tilesource.Error{Status: http.StatusGatewayTimeout, Message: "Object storage: timed out", Cause: err}
	}
	return &tilesource.Error{Status: http.StatusBadGateway, Message: fmt.Sprintf("%s: object storage read failed", name), Cause: err}
}
