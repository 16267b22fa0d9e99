package main

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/tileserver/tileserver/girder/store"
	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/detect"
	"github.com/tileserver/tileserver/tilesource/dicom"
	"github.com/tileserver/tileserver/tilesource/objstore"
)

// s3Settings configure slides in object storage (--slides s3://…).
type s3Settings struct {
	// Bucket is set when --slides is an s3:// URL.
	Bucket     *objstore.Config
	BlockBytes int64
	LocalDir   string
	LocalBytes int64
}

func parseS3Settings(v map[string]string) (s3Settings, error) {
	var s s3Settings
	var err error
	if s.BlockBytes, err = parseBytes(v["slides-block-cache"]); err != nil || s.BlockBytes <= 0 {
		return s, fmt.Errorf("--slides-block-cache: %q is not a positive size", v["slides-block-cache"])
	}
	if s.LocalBytes, err = parseBytes(v["slides-local-cache-size"]); err != nil {
		return s, fmt.Errorf("--slides-local-cache-size: %w", err)
	}
	s.LocalDir = strings.TrimSpace(v["slides-local-cache"])
	if objstore.IsURL(v["slides"]) {
		c, err := objstore.ParseURL(v["slides"])
		if err != nil {
			return s, fmt.Errorf("--slides: %w", err)
		}
		s.Bucket = &c
	}
	return s, nil
}

// s3Objects is the slide root of the item store in object storage.
type s3Objects struct {
	slides *objstore.Slides
}

var _ store.Objects = s3Objects{}

// openS3 opens the bucket of cfg and the store over it, and returns the
// pipeline's openers: paths made by objstore.PathOf open from the bucket,
// others as files.
func openS3(cfg settings) (*store.Store, func(string) (tilesource.Source, error), func([]string) (tilesource.Source, error), error) {
	b, err := objstore.Open(*cfg.S3.Bucket)
	if err != nil {
		return nil, nil, nil, err
	}
	sl := &objstore.Slides{Bucket: b, Blocks: objstore.NewBlockCache(cfg.S3.BlockBytes, 0)}
	if cfg.S3.LocalBytes > 0 {
		dir := cfg.S3.LocalDir
		if dir == "" {
			dir = filepath.Join(cfg.Data, "slide-copies")
		}
		if sl.Files, err = objstore.NewFileCache(dir, cfg.S3.LocalBytes); err != nil {
			return nil, nil, nil, fmt.Errorf("--slides-local-cache: %w", err)
		}
	}
	st, err := store.OpenObjects(cfg.Data, s3Objects{sl})
	if err != nil {
		return nil, nil, nil, err
	}
	open := func(p string) (tilesource.Source, error) {
		if key, ok := objstore.KeyOf(p); ok {
			return sl.Open(context.Background(), key)
		}
		return detect.Open(p)
	}
	openSeries := func(ps []string) (tilesource.Source, error) {
		keys := make([]string, len(ps))
		for i, p := range ps {
			k, ok := objstore.KeyOf(p)
			if !ok {
				return dicom.OpenSeries(ps)
			}
			keys[i] = k
		}
		return sl.OpenSeries(context.Background(), keys)
	}
	return st, open, openSeries, nil
}

// Name is the bucket and prefix's last part.
func (o s3Objects) Name() string {
	c := o.slides.Bucket.Config()
	if p := strings.TrimSuffix(c.Prefix, "/"); p != "" {
		return path.Base(p)
	}
	return c.Bucket
}

func info(ob objstore.Object) store.ObjectInfo {
	return store.ObjectInfo{Key: ob.Key, Version: ob.Version(), Size: ob.Size, Modified: ob.Modified}
}

func (o s3Objects) List(ctx context.Context) ([]store.ObjectInfo, error) {
	objs, err := o.slides.Bucket.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]store.ObjectInfo, len(objs))
	for i, ob := range objs {
		out[i] = info(ob)
	}
	return out, nil
}

func (o s3Objects) Stat(ctx context.Context, key string) (store.ObjectInfo, error) {
	ob, err := o.slides.Bucket.Stat(ctx, key)
	if err != nil {
		return store.ObjectInfo{}, err
	}
	return info(ob), nil
}

func (o s3Objects) Path(key string) string { return objstore.PathOf(key) }

func (o s3Objects) SeriesUID(ctx context.Context, oi store.ObjectInfo) string {
	ob, err := o.slides.Bucket.Stat(ctx, oi.Key)
	if err != nil {
		return ""
	}
	return o.slides.SeriesUID(ob)
}

// slidesForLog names the slide root without anything secret (the URL holds
// no credentials; its query is left out all the same).
func slidesForLog(cfg settings) string {
	if cfg.S3.Bucket != nil {
		return cfg.S3.Bucket.String()
	}
	return cfg.Slides
}
