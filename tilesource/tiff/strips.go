package tiff

import (
	"container/list"
	"context"
	"fmt"
	"sync"

	"golang.org/x/sync/semaphore"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilesource/limits"
)

// stripKey names one decoded strip of one directory.
type stripKey struct {
	d *dir
	i int
}

// stripCache is a small LRU of decoded strips, bounded in bytes, so that the
// virtual tiles of a row of an untiled image decode each strip once.
type stripCache struct {
	mu    sync.Mutex
	limit int64
	size  int64
	ll    *list.List
	items map[stripKey]*list.Element
	// failed remembers strips that could not be decoded: a damaged strip
	// stays damaged, and each of the virtual tiles across it would
	// otherwise decode it again.
	failed map[stripKey]error
}

// maxFailedStrips bounds the failures remembered.
const maxFailedStrips = 4096

func (c *stripCache) failure(k stripKey) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failed[k]
}

func (c *stripCache) fail(k stripKey, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.failed) >= maxFailedStrips {
		clear(c.failed)
	}
	c.failed[k] = err
}

type stripEntry struct {
	key stripKey
	img *encode.Image
}

func newStripCache(limit int64) *stripCache {
	return &stripCache{limit: limit, ll: list.New(), items: map[stripKey]*list.Element{}, failed: map[stripKey]error{}}
}

func (c *stripCache) get(k stripKey) *encode.Image {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*stripEntry).img
	}
	return nil
}

func (c *stripCache) put(k stripKey, img *encode.Image) {
	n := int64(len(img.Pix))
	if n > c.limit {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[k]; ok {
		return
	}
	c.items[k] = c.ll.PushFront(&stripEntry{k, img})
	c.size += n
	for c.size > c.limit {
		e := c.ll.Back()
		se := e.Value.(*stripEntry)
		c.ll.Remove(e)
		delete(c.items, se.key)
		c.size -= int64(len(se.img.Pix))
	}
}

func (c *stripCache) bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}

// strip returns decoded strip i of d (all its rows, full width).
// Concurrent callers for one strip share one decode: the virtual tiles of a
// row all need the same strip at once.
func (s *Source) strip(ctx context.Context, d *dir, i int) (*encode.Image, error) {
	k := stripKey{d, i}
	if img := s.strips.get(k); img != nil {
		return img, nil
	}
	// The decode is shared by every caller of the strip, so it runs
	// detached from the cancellation of the first one: otherwise a
	// request that went away would fail the others waiting for the same
	// strip. It is bounded by the strip's size; callers wait for it.
	ctx = context.WithoutCancel(ctx)
	v, err, _ := s.stripFlight.Do(fmt.Sprintf("%p/%d", d, i), func() (any, error) {
		if img := s.strips.get(k); img != nil {
			return img, nil
		}
		if err := s.strips.failure(k); err != nil {
			return nil, err
		}
		rows := min(d.th, d.h-i*d.th)
		chunks, err := s.readChunks(d, 0, i)
		if err != nil {
			s.strips.fail(k, err)
			return nil, err
		}
		img, err := s.decodeChunks(ctx, d, d.w, rows, false, chunks, 0, i*d.th)
		if err == nil && (img.Width < d.w || img.Height < rows) {
			err = fmt.Errorf("strip %d decoded to %dx%d", i, img.Width, img.Height)
		}
		if err != nil {
			s.strips.fail(k, err)
			return nil, err
		}
		s.strips.put(k, img)
		return img, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*encode.Image), nil
}

// decodeBudget bounds the bytes of tiles and strips being decoded at once
// by all TIFF sources, so that concurrent requests (or nested synthesis)
// cannot multiply the per-strip limit: twice the decode limit, taken when
// first needed.
var decodeBudget struct {
	once sync.Once
	sem  *semaphore.Weighted
	size int64
}

// acquireDecode reserves n bytes of the decode budget (at most all of it)
// until release is called.
func acquireDecode(ctx context.Context, n int64) (release func(), err error) {
	decodeBudget.once.Do(func() {
		decodeBudget.size = 2 * limits.Get().MaxDecodedBytes
		decodeBudget.sem = semaphore.NewWeighted(decodeBudget.size)
	})
	n = min(max(n, 1), decodeBudget.size)
	if err := decodeBudget.sem.Acquire(ctx, n); err != nil {
		return nil, err
	}
	return func() { decodeBudget.sem.Release(n) }, nil
}

// stripTile assembles virtual tile (x, y) of an untiled directory from the
// strips it crosses. Only the part inside the image is returned.
func (s *Source) stripTile(ctx context.Context, d *dir, x, y int) (*encode.Image, error) {
	x0, y0 := x*virtualTile, y*virtualTile
	if x < 0 || y < 0 || x0 >= d.w || y0 >= d.h {
		return nil, fmt.Errorf("tile %d,%d outside the image", x, y)
	}
	w, h := min(virtualTile, d.w-x0), min(virtualTile, d.h-y0)
	var out *encode.Image
	for i := y0 / d.th; i*d.th < y0+h; i++ {
		st, err := s.strip(ctx, d, i)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = encode.NewImage(w, h, st.Bands, st.Format)
		} else if st.Bands != out.Bands || st.Format != out.Format {
			return nil, fmt.Errorf("strip %d has a different pixel layout", i)
		}
		ps := st.PixelSize()
		r0 := max(y0, i*d.th)
		r1 := min(y0+h, (i+1)*d.th)
		for r := r0; r < r1; r++ {
			src := st.Pix[(r-i*d.th)*st.Stride()+x0*ps:]
			copy(out.Pix[(r-y0)*out.Stride():(r-y0+1)*out.Stride()], src[:w*ps])
		}
	}
	return out, nil
}
