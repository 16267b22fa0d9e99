package objstore

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tileserver/tileserver/tilesource"
)

// FileCache keeps local copies of objects that only file-based readers
// (OpenSlide, libvips) can open, in a directory bounded in bytes: the least
// recently used copies are deleted first. A copy already open by a reader
// stays readable after deletion (Unix semantics) until it is closed. Each
// object version is downloaded once; concurrent requests for it wait for
// the one download. Safe for concurrent use.
type FileCache struct {
	dir string
	max int64

	mu       sync.Mutex
	lru      *list.List // of *cachedFile, most recent at the front
	files    map[string]*list.Element
	bytes    int64
	inflight map[string]*fetch
}

type cachedFile struct {
	id   string // directory name: hash of the object key and version
	path string
	size int64
}

// NewFileCache uses dir (created if needed) for at most maxBytes of
// copies. Copies left by an earlier run are kept, oldest first out.
func NewFileCache(dir string, maxBytes int64) (*FileCache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	c := &FileCache{dir: dir, max: maxBytes, lru: list.New(), files: map[string]*list.Element{}, inflight: map[string]*fetch{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	type found struct {
		cf  *cachedFile
		mod int64
	}
	var old []found
	for _, e := range ents {
		sub := filepath.Join(dir, e.Name())
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			os.RemoveAll(sub) // an interrupted download
			continue
		}
		inner, err := os.ReadDir(sub)
		if err != nil || len(inner) != 1 || !inner[0].Type().IsRegular() {
			os.RemoveAll(sub)
			continue
		}
		fi, err := inner[0].Info()
		if err != nil {
			continue
		}
		old = append(old, found{&cachedFile{id: e.Name(), path: filepath.Join(sub, inner[0].Name()), size: fi.Size()}, fi.ModTime().UnixNano()})
	}
	sort.Slice(old, func(i, j int) bool { return old[i].mod > old[j].mod })
	for _, f := range old {
		c.files[f.cf.id] = c.lru.PushBack(f.cf)
		c.bytes += f.cf.size
	}
	c.mu.Lock()
	c.evictLocked()
	c.mu.Unlock()
	return c, nil
}

// Bytes returns the bytes of copies held.
func (c *FileCache) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

func (c *FileCache) evictLocked() {
	for c.bytes > c.max && c.lru.Len() > 0 {
		e := c.lru.Back()
		cf := e.Value.(*cachedFile)
		c.lru.Remove(e)
		delete(c.files, cf.id)
		c.bytes -= cf.size
		os.RemoveAll(filepath.Join(c.dir, cf.id))
	}
}

// Path returns the path of a local copy of the object version o, named
// with the object's base name (readers that look at the extension see the
// real one), downloading it first when needed. An object larger than the
// whole cache is refused.
func (c *FileCache) Path(ctx context.Context, b *Bucket, o Object) (string, error) {
	name := path.Base(o.Key)
	if o.Size > c.max {
		return "", &tilesource.Error{Status: http.StatusBadRequest,
			Message: fmt.Sprintf("%s: this format needs a local copy and the object (%d bytes) is larger than the local slide cache (%d bytes)", name, o.Size, c.max)}
	}
	sum := sha256.Sum256([]byte(b.cfg.String() + "\x00" + o.Key + "\x00" + o.Version()))
	id := hex.EncodeToString(sum[:16])
	for {
		c.mu.Lock()
		if e, ok := c.files[id]; ok {
			c.lru.MoveToFront(e)
			p := e.Value.(*cachedFile).path
			c.mu.Unlock()
			touch(p)
			return p, nil
		}
		if f := c.inflight[id]; f != nil {
			c.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return "", ctx.Err()
			}
			if f.err != nil && !(ctx.Err() == nil && isContextError(f.err)) {
				return "", f.err
			}
			// Copied, or the download stopped because the caller that
			// started it went away, which says nothing about this one:
			// look again (and download it ourselves if needed).
			continue
		}
		f := &fetch{done: make(chan struct{})}
		c.inflight[id] = f
		c.mu.Unlock()

		p, err := c.download(ctx, b, o, id, name)
		if err == nil {
			touch(p)
		}
		c.mu.Lock()
		delete(c.inflight, id)
		if err == nil {
			c.files[id] = c.lru.PushFront(&cachedFile{id: id, path: p, size: o.Size})
			c.bytes += o.Size
			c.evictLocked()
		}
		c.mu.Unlock()
		f.err = err
		close(f.done)
		return p, err
	}
}

// touch stamps a copy with the time of its use, which is how a reopened
// cache orders its copies. The kernel's own stamp is not enough: it comes
// from a coarse clock (a tick of a few milliseconds), so copies written
// in one tick tie, and it never records a later read.
func touch(p string) {
	now := time.Now()
	_ = os.Chtimes(p, now, now)
}

// download writes the object into a hidden temporary directory and renames
// it into place, so that a crash never leaves a partial copy under its
// final name.
func (c *FileCache) download(ctx context.Context, b *Bucket, o Object, id, name string) (string, error) {
	tmp, err := os.MkdirTemp(c.dir, ".dl-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	fh, err := os.Create(filepath.Join(tmp, name))
	if err != nil {
		return "", err
	}
	err = b.download(ctx, o, fh)
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	final := filepath.Join(c.dir, id)
	os.RemoveAll(final)
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	return filepath.Join(final, name), nil
}

// isContextError reports whether err is a context's cancellation or
// deadline.
func isContextError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
