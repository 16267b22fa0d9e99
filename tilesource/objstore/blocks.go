package objstore

import (
	"container/list"
	"io"
	"sync"
)

// DefaultBlockSize is the unit of the block cache: big enough that parsing
// a TIFF header and its directories, or a DICOM header, costs a handful of
// GETs, small enough that a cold tile read of a few kilobytes stays cheap.
const DefaultBlockSize = 64 << 10

// BlockCache keeps recently read blocks of objects, bounded in bytes (least
// recently used first out). One cache serves every open object. Safe for
// concurrent use.
type BlockCache struct {
	blockSize int64
	max       int64

	mu       sync.Mutex
	lru      *list.List // of *block, most recent at the front
	blocks   map[blockKey]*list.Element
	bytes    int64
	inflight map[blockKey]*fetch
}

type blockKey struct {
	obj string // key and version
	idx int64
}

type block struct {
	key  blockKey
	data []byte
}

// fetch is a GET in progress that will fill some blocks.
type fetch struct {
	done chan struct{}
	err  error
}

// NewBlockCache returns a cache of at most maxBytes in blocks of blockSize
// (0: DefaultBlockSize).
func NewBlockCache(maxBytes int64, blockSize int) *BlockCache {
	if blockSize <= 0 {
		blockSize = DefaultBlockSize
	}
	return &BlockCache{blockSize: int64(blockSize), max: maxBytes, lru: list.New(),
		blocks: map[blockKey]*list.Element{}, inflight: map[blockKey]*fetch{}}
}

// Bytes returns the bytes held.
func (c *BlockCache) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

// getLocked returns a cached block, marking it used.
func (c *BlockCache) getLocked(k blockKey) []byte {
	if e, ok := c.blocks[k]; ok {
		c.lru.MoveToFront(e)
		return e.Value.(*block).data
	}
	return nil
}

// putLocked stores a block and evicts the least recently used past the
// budget.
func (c *BlockCache) putLocked(k blockKey, data []byte) {
	if _, ok := c.blocks[k]; ok || int64(len(data)) > c.max {
		return
	}
	c.blocks[k] = c.lru.PushFront(&block{key: k, data: data})
	c.bytes += int64(len(data))
	for c.bytes > c.max {
		e := c.lru.Back()
		b := e.Value.(*block)
		c.lru.Remove(e)
		delete(c.blocks, b.key)
		c.bytes -= int64(len(b.data))
	}
}

// Reader reads one version of an object: reads shorter than a block go
// through the block cache (the missing blocks of a read fetched by one GET),
// longer ones (tiles, large tag arrays) by one GET of exactly their bytes,
// not cached here since the tile cache keeps what they become. Every GET is
// conditional on the version's ETag, so a replaced object fails with
// ErrReplaced instead of mixing old and new bytes. Safe for concurrent use.
type Reader struct {
	b     *Bucket
	o     Object
	cache *BlockCache
	id    string
}

// NewReader returns a reader of the object version o through cache.
func (b *Bucket) NewReader(o Object, cache *BlockCache) *Reader {
	return &Reader{b: b, o: o, cache: cache, id: o.Key + "\x00" + o.Version()}
}

// Size returns the object's size.
func (r *Reader) Size() int64 { return r.o.Size }

// ReadAt implements io.ReaderAt.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, io.ErrUnexpectedEOF
	}
	if off >= r.o.Size {
		return 0, io.EOF
	}
	var short error
	if rest := r.o.Size - off; int64(len(p)) > rest {
		p, short = p[:rest], io.EOF
	}
	if len(p) == 0 {
		return 0, short
	}
	if r.cache == nil || int64(len(p)) >= r.cache.blockSize {
		if err := r.b.get(r.o, p, off); err != nil {
			return 0, err
		}
		return len(p), short
	}
	if err := r.readBlocks(p, off); err != nil {
		return 0, err
	}
	return len(p), short
}

// readBlocks fills p from cached blocks, fetching the missing ones with one
// GET (and waiting for those another reader is already fetching).
func (r *Reader) readBlocks(p []byte, off int64) error {
	c := r.cache
	bs := c.blockSize
	first, last := off/bs, (off+int64(len(p))-1)/bs
	for {
		c.mu.Lock()
		var (
			data             = make([][]byte, last-first+1)
			missFrom, missTo = int64(-1), int64(-1)
			wait             *fetch
		)
		for i := first; i <= last; i++ {
			k := blockKey{r.id, i}
			if d := c.getLocked(k); d != nil {
				data[i-first] = d
				continue
			}
			if f := c.inflight[k]; f != nil {
				wait = f
				continue
			}
			if missFrom < 0 {
				missFrom = i
			}
			missTo = i
		}
		if missFrom < 0 && wait == nil {
			c.mu.Unlock()
			for i, d := range data {
				bo := (first + int64(i)) * bs
				lo := max(off, bo)
				hi := min(off+int64(len(p)), bo+int64(len(d)))
				copy(p[lo-off:hi-off], d[lo-bo:hi-bo])
			}
			return nil
		}
		if missFrom < 0 {
			c.mu.Unlock()
			<-wait.done
			if wait.err != nil {
				return wait.err
			}
			continue
		}
		f := &fetch{done: make(chan struct{})}
		for i := missFrom; i <= missTo; i++ {
			if c.inflight[blockKey{r.id, i}] == nil && c.blocks[blockKey{r.id, i}] == nil {
				c.inflight[blockKey{r.id, i}] = f
			}
		}
		c.mu.Unlock()

		start := missFrom * bs
		end := min((missTo+1)*bs, r.o.Size)
		buf := make([]byte, end-start)
		f.err = r.b.get(r.o, buf, start)
		c.mu.Lock()
		for i := missFrom; i <= missTo; i++ {
			k := blockKey{r.id, i}
			if c.inflight[k] == f {
				delete(c.inflight, k)
			}
			if f.err == nil {
				lo := (i - missFrom) * bs
				hi := min(lo+bs, int64(len(buf)))
				c.putLocked(k, buf[lo:hi:hi])
			}
		}
		c.mu.Unlock()
		close(f.done)
		if f.err != nil {
			return f.err
		}
		// A budget smaller than the span may have evicted some of it:
		// serve this read from the fetched bytes directly.
		lo := off - start
		if lo >= 0 && lo+int64(len(p)) <= int64(len(buf)) && wait == nil {
			copy(p, buf[lo:])
			return nil
		}
	}
}
