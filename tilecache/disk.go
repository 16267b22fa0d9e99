package tilecache

import (
	"bytes"
	"cmp"
	"container/list"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Disk tier layout under Config.DiskDir:
//
//	index.db            bbolt: entry records and tier metadata
//	tiles/a/bc/abc…     one file per entry, named by a hash of the cache key
//	tmp/tile-*.tmp      entries being written
//	tiles.trash-*       a cleared tiles/ being removed in the background
//
// The fan-out (16 × 256 = 4096 leaf directories, like nginx's levels=1:2)
// keeps a full default cache (10 GiB of ~16 KiB tiles) near 160 files per
// directory; 65536 leaves would cost a directory creation on most writes
// of a young cache for no gain.
const (
	diskIndexFile  = "index.db"
	diskTilesDir   = "tiles"
	diskTmpDir     = "tmp"
	diskTrashDir   = "tiles.trash-"
	diskTmpPattern = "tile-*.tmp"

	diskFlushInterval   = time.Second
	diskJanitorInterval = time.Minute
	// diskAccessResolution is how stale a persisted access time may get: a
	// hot entry is rewritten in the index once a minute, not on every hit,
	// and a restart still rebuilds the LRU order to within a minute.
	diskAccessResolution = int64(time.Minute)
	// nonceBlock is how many GCM nonces are reserved in the index at once:
	// a restart skips the rest of the block rather than reusing any.
	nonceBlock = 1 << 16
)

var (
	bucketEntries = []byte("entries")
	bucketMeta    = []byte("meta")
	metaClean     = []byte("clean")
	metaNonce     = []byte("nonce")
	metaFormat    = []byte("format")
)

// diskID names an entry: the first 128 bits of SHA-256 of its cache key.
type diskID [16]byte

func diskIDOf(key string) diskID {
	sum := sha256.Sum256([]byte(key))
	return diskID(sum[:16])
}

// diskEntry is the in-memory index record of one entry file. Times are
// Unix nanoseconds.
type diskEntry struct {
	id      diskID
	size    int64
	written int64
	access  int64
	saved   int64         // access as last handed to the index
	elem    *list.Element // its place in diskTier.lru
}

const diskRecordSize = 24

func (e *diskEntry) record() []byte {
	b := make([]byte, diskRecordSize)
	binary.BigEndian.PutUint64(b[0:], uint64(e.size))
	binary.BigEndian.PutUint64(b[8:], uint64(e.written))
	binary.BigEndian.PutUint64(b[16:], uint64(e.access))
	return b
}

// diskTier is the persistent tier (L3). Entries are files in a two-level
// fan-out directory, written to a temporary file and renamed into place,
// so a reader sees a whole entry or none; every read verifies the entry's
// checksum (see diskfmt.go). The index (size, write and access times per
// entry) lives in memory and is persisted to bbolt in one transaction per
// second, so neither a hit nor a write waits for an fsync, and a restart
// loads the index instead of walking the directory.
//
// Eviction is least recently accessed first. The disk tier only sees the
// misses of the memory tier, whose W-TinyLFU already keeps the frequently
// used tiles; what reaches the disk is mostly the recency-driven stream of
// viewers panning back, for which LRU does well, and one access time per
// entry is all that must survive a restart to rebuild the order (to within
// a minute, see diskAccessResolution).
//
// The directory must belong to one process: bbolt's file lock makes a
// second one fail to open it.
type diskTier struct {
	dir, tilesDir, tmpDir string
	max                   int64
	ttl                   time.Duration
	now                   func() time.Time
	aead                  cipher.AEAD
	log                   *logThrottle
	db                    *bolt.DB

	mu      sync.Mutex
	entries map[diskID]*diskEntry
	lru     list.List // of *diskEntry: front most recently accessed, back least
	used    int64
	dirty   map[diskID]struct{} // records to put (or delete if gone) at the next flush
	gen     atomic.Uint64       // bumped by clear; writes started before it are discarded

	// made has a bit per fan-out directory known to exist, sparing a
	// MkdirAll (a stat) per write; clear resets it.
	made [1 << 12 / 64]atomic.Uint64

	// flushMu orders index commits with clear's bucket reset.
	flushMu sync.Mutex

	nonceMu     sync.Mutex
	nonceNext   uint64
	nonceLimit  uint64
	noncePrefix [4]byte

	writeQueue[diskWrite]
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	// swept is closed when the start-up sweep (if any) has ended;
	// sweepComplete tells whether it ran to the end (or was not needed).
	swept         chan struct{}
	sweepComplete atomic.Bool

	hits, misses, evictions, expired, corrupt, undecryptable atomic.Uint64
	errors, skipped, writes                                  atomic.Uint64
}

type diskWrite struct {
	key string
	val []byte
}

// defaultDiskBytes is a quarter of the free space under dir, capped at
// 10 GiB, so a default cache never fills a small disk.
func defaultDiskBytes(dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return maxDefaultDiskBytes
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	return max(min(free/4, maxDefaultDiskBytes), 1<<20)
}

func openDiskTier(cfg Config) (*diskTier, error) {
	t := &diskTier{
		dir:        cfg.DiskDir,
		tilesDir:   filepath.Join(cfg.DiskDir, diskTilesDir),
		tmpDir:     filepath.Join(cfg.DiskDir, diskTmpDir),
		max:        cfg.DiskBytes,
		ttl:        cfg.DiskTTL,
		now:        cfg.now,
		log:        newLogThrottle(cfg.Logger, cfg.LogInterval),
		entries:    make(map[diskID]*diskEntry),
		dirty:      make(map[diskID]struct{}),
		writeQueue: newWriteQueue[diskWrite](cfg.WriteQueue),
		done:       make(chan struct{}),
		swept:      make(chan struct{}),
	}
	var err error
	if t.aead, err = newDiskAEAD(cfg.DiskKey); err != nil {
		return nil, err
	}
	for _, d := range []string{t.dir, t.tilesDir, t.tmpDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	clean, err := t.openIndex()
	if err != nil {
		return nil, err
	}
	// Only now that the index lock is ours: another process's writes in
	// progress must not be touched.
	t.removeTemps()
	if _, err := rand.Read(t.noncePrefix[:]); err != nil {
		t.db.Close()
		return nil, err
	}
	for range cfg.Writers {
		t.wg.Add(1)
		go t.writer()
	}
	t.wg.Add(1)
	go t.loop()
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		defer close(t.swept)
		t.removeTrash()
		if clean || t.sweep() {
			t.sweepComplete.Store(true)
		}
	}()
	return t, nil
}

// removeTemps deletes entries whose write was interrupted by a crash. Only
// names this tier creates are touched.
func (t *diskTier) removeTemps() {
	names, _ := filepath.Glob(filepath.Join(t.tmpDir, diskTmpPattern))
	for _, n := range names {
		_ = os.Remove(n)
	}
}

// removeTrash finishes removing cleared tiles directories.
func (t *diskTier) removeTrash() {
	names, _ := filepath.Glob(filepath.Join(t.dir, diskTrashDir+"*"))
	for _, n := range names {
		_ = os.RemoveAll(n)
	}
}

// openIndex opens the bbolt index and loads it (see loadIndex). An index
// that cannot be read (torn by a power failure, or garbage) is replaced by
// an empty one; the start-up sweep then adopts the entry files it finds.
func (t *diskTier) openIndex() (clean bool, err error) {
	path := filepath.Join(t.dir, diskIndexFile)
	for attempt := 0; ; attempt++ {
		clean, err = t.tryOpenIndex(path)
		if err == nil || attempt > 0 {
			return clean, err
		}
		if errors.Is(err, bolterrors.ErrTimeout) {
			return false, fmt.Errorf("disk cache %s is in use by another process: %w", t.dir, err)
		}
		if errors.Is(err, fs.ErrPermission) {
			return false, err
		}
		t.log.warn("disk-index", "disk cache index unreadable; starting a new one", err)
		if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return false, err
		}
		t.reset()
	}
}

// tryOpenIndex opens and loads the index, turning the faults a damaged
// file can cause in bbolt into errors: bbolt trusts its pages, so a torn
// file can make it panic or touch memory past the end of its mapping
// (SIGBUS), which SetPanicOnFault turns into a panic recovered here.
func (t *diskTier) tryOpenIndex(path string) (clean bool, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	var db *bolt.DB
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("bbolt failed on %s: %v", path, p)
		}
		if err != nil && db != nil {
			// Closing a damaged database can fault as well.
			func() {
				defer func() { _ = recover() }()
				db.Close()
			}()
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return false, err
	}
	t.db = db
	return t.loadIndex()
}

// reset forgets what a failed load put in memory.
func (t *diskTier) reset() {
	t.db = nil
	clear(t.entries)
	t.lru.Init()
	t.used = 0
	t.nonceNext, t.nonceLimit = 0, 0
}

// loadIndex reads the entry records into memory, drops expired ones, marks
// the index as in use (not clean) and reserves a block of nonces. It
// reports whether the previous process closed the index cleanly. Files of
// expired entries are removed only once the index has been read whole.
func (t *diskTier) loadIndex() (clean bool, err error) {
	now := t.now().UnixNano()
	var stale [][]byte
	var staleFiles []diskID
	err = t.db.View(func(tx *bolt.Tx) error {
		if m := tx.Bucket(bucketMeta); m != nil {
			clean = string(m.Get(metaClean)) == "1" && string(m.Get(metaFormat)) == "1"
			if v := m.Get(metaNonce); len(v) == 8 {
				t.nonceNext = binary.BigEndian.Uint64(v)
			}
		}
		b := tx.Bucket(bucketEntries)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(k) != len(diskID{}) || len(v) != diskRecordSize {
				stale = append(stale, slices.Clone(k))
				return nil
			}
			e := &diskEntry{
				id:      diskID(k),
				size:    int64(binary.BigEndian.Uint64(v[0:])),
				written: int64(binary.BigEndian.Uint64(v[8:])),
				access:  int64(binary.BigEndian.Uint64(v[16:])),
			}
			e.saved = e.access
			if e.size < diskMinSize || e.size > 1<<40 || t.expiredAt(e, now) {
				stale = append(stale, slices.Clone(k))
				staleFiles = append(staleFiles, e.id)
				return nil
			}
			t.entries[e.id] = e
			return nil
		})
	})
	if err != nil {
		return false, err
	}
	if t.nonceNext == 0 {
		// A new index: start the counter at a random point so that a lost
		// index cannot lead to the nonces of its predecessor.
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return false, err
		}
		t.nonceNext = binary.BigEndian.Uint64(b[:])>>2 + 1
	}
	t.nonceLimit = t.nonceNext + nonceBlock
	err = t.db.Update(func(tx *bolt.Tx) error {
		m, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		b, err := tx.CreateBucketIfNotExists(bucketEntries)
		if err != nil {
			return err
		}
		for _, k := range stale {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		var lim [8]byte
		binary.BigEndian.PutUint64(lim[:], t.nonceLimit)
		if err := m.Put(metaNonce, lim[:]); err != nil {
			return err
		}
		if err := m.Put(metaFormat, []byte("1")); err != nil {
			return err
		}
		return m.Put(metaClean, []byte("0"))
	})
	if err != nil {
		return false, err
	}
	for _, id := range staleFiles {
		_ = os.Remove(t.path(id))
	}
	all := make([]*diskEntry, 0, len(t.entries))
	for _, e := range t.entries {
		all = append(all, e)
		t.used += e.size
	}
	// Oldest access last, so pushing each to the front rebuilds the order.
	slices.SortFunc(all, func(a, b *diskEntry) int { return cmp.Compare(a.access, b.access) })
	for _, e := range all {
		t.pushFront(e)
	}
	t.mu.Lock()
	t.evictLocked()
	t.mu.Unlock()
	return clean, nil
}

func (t *diskTier) path(id diskID) string {
	h := hex.EncodeToString(id[:])
	return filepath.Join(t.tilesDir, h[0:1], h[1:3], h)
}

func (t *diskTier) expiredAt(e *diskEntry, now int64) bool {
	return now-e.written > int64(t.ttl)
}

func (t *diskTier) pushFront(e *diskEntry) {
	e.elem = t.lru.PushFront(e)
}

func (t *diskTier) pushBack(e *diskEntry) {
	e.elem = t.lru.PushBack(e)
}

func (t *diskTier) unlink(e *diskEntry) {
	t.lru.Remove(e.elem)
	e.elem = nil
}

// removeLocked forgets e and deletes its file. Files are removed under the
// lock so that a concurrent write of the same key cannot lose its file.
func (t *diskTier) removeLocked(e *diskEntry) {
	delete(t.entries, e.id)
	t.unlink(e)
	t.used -= e.size
	t.dirty[e.id] = struct{}{}
	if err := os.Remove(t.path(e.id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.errors.Add(1)
		t.log.warn("disk-remove", "disk cache: removing an entry failed", err)
	}
}

func (t *diskTier) evictLocked() {
	for t.used > t.max && t.lru.Len() > 0 {
		t.removeLocked(t.lru.Back().Value.(*diskEntry))
		t.evictions.Add(1)
	}
}

// get returns the tile stored for key. A missing, expired, damaged or
// undecryptable entry is a miss; damaged and undecryptable ones are
// dropped so that the produced tile replaces them.
func (t *diskTier) get(key string) ([]byte, bool) {
	id := diskIDOf(key)
	now := t.now().UnixNano()
	t.mu.Lock()
	e, ok := t.entries[id]
	if ok && t.expiredAt(e, now) {
		t.removeLocked(e)
		t.expired.Add(1)
		ok = false
	}
	t.mu.Unlock()
	if !ok {
		t.misses.Add(1)
		return nil, false
	}
	b, err := os.ReadFile(t.path(id))
	if err == nil {
		var val []byte
		if val, err = decodeEntry(t.aead, key, b); err == nil {
			t.mu.Lock()
			if t.entries[id] == e {
				if sz := int64(len(b)); sz != e.size {
					// The record predates a rewrite whose record a crash
					// lost; count what is really there.
					t.used += sz - e.size
					e.size = sz
					e.saved = 0
				}
				e.access = now
				t.lru.MoveToFront(e.elem)
				if now-e.saved >= diskAccessResolution {
					t.dirty[id] = struct{}{}
				}
				t.evictLocked()
			}
			t.mu.Unlock()
			t.hits.Add(1)
			return val, true
		}
	}
	switch {
	case errors.Is(err, errDiskCorrupt):
		t.corrupt.Add(1)
	case errors.Is(err, errDiskUndecryptable):
		t.undecryptable.Add(1)
	case errors.Is(err, fs.ErrNotExist):
		// The index outlived its file (removed by hand, or a crash between
		// the two); nothing to report.
	default:
		t.errors.Add(1)
		t.log.warn("disk-read", "disk cache read failed; treated as a miss", err)
	}
	t.mu.Lock()
	if t.entries[id] == e {
		t.removeLocked(e)
	}
	t.mu.Unlock()
	t.misses.Add(1)
	return nil, false
}

// setAsync queues a write; it never blocks. Writes beyond the queue are
// dropped, and tiles larger than the whole tier are skipped.
func (t *diskTier) setAsync(key string, val []byte) {
	if int64(len(val)+diskMinSize+gcmNonceSize+gcmTagSize) > t.max || len(val) > 1<<31 {
		t.skipped.Add(1)
		return
	}
	t.push(diskWrite{key, val})
}

func (t *diskTier) writer() {
	defer t.wg.Done()
	t.drain(t.done, func(w diskWrite) {
		if err := t.write(w.key, w.val); err != nil {
			t.errors.Add(1)
			t.log.warn("disk-write", "disk cache write failed", err)
		}
	})
}

// nonce returns a GCM nonce never used before with this index: a counter
// reserved in blocks in the index, plus a random per-process suffix in case
// the index is lost and restarted at a colliding point.
func (t *diskTier) nonce() ([]byte, error) {
	t.nonceMu.Lock()
	defer t.nonceMu.Unlock()
	if t.nonceNext >= t.nonceLimit {
		limit := t.nonceNext + nonceBlock
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], limit)
		err := t.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(metaNonce, v[:])
		})
		if err != nil {
			return nil, err
		}
		t.nonceLimit = limit
	}
	n := make([]byte, gcmNonceSize)
	binary.BigEndian.PutUint64(n, t.nonceNext)
	copy(n[8:], t.noncePrefix[:])
	t.nonceNext++
	return n, nil
}

// write stores one entry: a temporary file in tmp/, renamed into place.
func (t *diskTier) write(key string, val []byte) error {
	gen := t.gen.Load()
	now := t.now().UnixNano()
	var nonce []byte
	if t.aead != nil {
		var err error
		if nonce, err = t.nonce(); err != nil {
			return err
		}
	}
	buf := encodeEntry(t.aead, nonce, key, val, now)
	f, err := os.CreateTemp(t.tmpDir, diskTmpPattern)
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	id := diskIDOf(key)
	final := t.path(id)
	// Created outside the lock; a clear racing with it is caught below.
	fan := int(id[0])<<4 | int(id[1])>>4
	if bit := uint64(1) << (fan % 64); t.made[fan/64].Load()&bit == 0 {
		if os.MkdirAll(filepath.Dir(final), 0o700) == nil {
			t.made[fan/64].Or(bit)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gen.Load() != gen {
		// Cleared while this write was under way.
		_ = os.Remove(tmp)
		return nil
	}
	err = os.Rename(tmp, final)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(final), 0o700); err == nil {
			err = os.Rename(tmp, final)
		}
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if old, ok := t.entries[id]; ok {
		t.unlink(old)
		t.used -= old.size
	}
	e := &diskEntry{id: id, size: int64(len(buf)), written: now, access: now}
	t.entries[id] = e
	t.pushFront(e)
	t.used += e.size
	t.dirty[id] = struct{}{}
	t.evictLocked()
	t.writes.Add(1)
	return nil
}

// loop persists the index every second and drops expired entries every
// minute.
func (t *diskTier) loop() {
	defer t.wg.Done()
	flush := time.NewTicker(diskFlushInterval)
	defer flush.Stop()
	lastJanitor := time.Now()
	for {
		select {
		case <-flush.C:
			if time.Since(lastJanitor) >= diskJanitorInterval {
				t.expire()
				lastJanitor = time.Now()
			}
			if err := t.flush(); err != nil {
				t.errors.Add(1)
				t.log.warn("disk-index", "disk cache index update failed", err)
			}
		case <-t.done:
			return
		}
	}
}

// expire drops every expired entry.
func (t *diskTier) expire() {
	now := t.now().UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	for el := t.lru.Front(); el != nil; {
		next := el.Next()
		if e := el.Value.(*diskEntry); t.expiredAt(e, now) {
			t.removeLocked(e)
			t.expired.Add(1)
		}
		el = next
	}
}

type indexOp struct {
	id  diskID
	rec []byte // nil: delete
}

// flush commits the changed index records in one transaction.
func (t *diskTier) flush() error {
	t.flushMu.Lock()
	defer t.flushMu.Unlock()
	t.mu.Lock()
	if len(t.dirty) == 0 {
		t.mu.Unlock()
		return nil
	}
	ops := make([]indexOp, 0, len(t.dirty))
	for id := range t.dirty {
		op := indexOp{id: id}
		if e, ok := t.entries[id]; ok {
			op.rec = e.record()
			e.saved = e.access
		}
		ops = append(ops, op)
	}
	clear(t.dirty)
	t.mu.Unlock()
	// bbolt inserts into an in-memory node by shifting it; keys in order
	// append instead (100k random-order puts take seconds, sorted ones
	// milliseconds).
	slices.SortFunc(ops, func(a, b indexOp) int { return bytes.Compare(a.id[:], b.id[:]) })
	return t.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEntries)
		for i := range ops {
			var err error
			if ops[i].rec == nil {
				err = b.Delete(ops[i].id[:])
			} else {
				err = b.Put(ops[i].id[:], ops[i].rec)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// clear empties the tier: tiles/ is renamed away at once (and removed in
// the background) and the index emptied.
func (t *diskTier) clear() error {
	t.flushMu.Lock()
	defer t.flushMu.Unlock()
	t.mu.Lock()
	trash := filepath.Join(t.dir, fmt.Sprintf("%s%d", diskTrashDir, time.Now().UnixNano()))
	err := os.Rename(t.tilesDir, trash)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.mu.Unlock()
		return err
	}
	clear(t.entries)
	clear(t.dirty)
	t.lru.Init()
	t.used = 0
	t.gen.Add(1)
	for i := range t.made {
		t.made[i].Store(0)
	}
	err = os.MkdirAll(t.tilesDir, 0o700)
	t.mu.Unlock()
	if err != nil {
		return err
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		_ = os.RemoveAll(trash)
	}()
	return t.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketEntries); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return err
		}
		_, err := tx.CreateBucket(bucketEntries)
		return err
	})
}

// sweep runs after an unclean shutdown or a lost index: it walks tiles/,
// adopts entry files the index does not know (as least recently used;
// each is verified when read) and removes expired ones. Files with names
// this tier does not create are left alone, in case DiskDir was pointed
// at a directory holding other data.
// It reports whether it walked the whole directory.
func (t *diskTier) sweep() bool {
	complete := true
	_ = filepath.WalkDir(t.tilesDir, func(p string, d fs.DirEntry, err error) error {
		select {
		case <-t.done:
			complete = false
			return filepath.SkipAll
		default:
		}
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		id, ok := parseDiskPath(t.tilesDir, p)
		if !ok {
			return nil
		}
		t.adopt(id, p)
		return nil
	})
	return complete
}

func parseDiskPath(root, p string) (diskID, bool) {
	rel, err := filepath.Rel(root, p)
	if err != nil {
		return diskID{}, false
	}
	parts := strings.Split(filepath.ToSlash(rel), "/")
	if len(parts) != 3 || len(parts[2]) != 2*len(diskID{}) {
		return diskID{}, false
	}
	var id diskID
	if _, err := hex.Decode(id[:], []byte(parts[2])); err != nil || hex.EncodeToString(id[:]) != parts[2] {
		return diskID{}, false
	}
	if parts[0] != parts[2][0:1] || parts[1] != parts[2][1:3] {
		return diskID{}, false
	}
	return id, true
}

func (t *diskTier) adopt(id diskID, p string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.entries[id]; ok {
		return
	}
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return
	}
	mt := fi.ModTime().UnixNano()
	e := &diskEntry{id: id, size: fi.Size(), written: mt, access: mt}
	if e.size < diskMinSize || t.expiredAt(e, t.now().UnixNano()) {
		_ = os.Remove(p)
		return
	}
	t.entries[id] = e
	t.pushBack(e)
	t.used += e.size
	t.dirty[id] = struct{}{}
	t.evictLocked()
}

// usage returns (used bytes, items).
func (t *diskTier) usage() (uint64, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return uint64(t.used), uint64(len(t.entries))
}

// close stops the writers (queued writes are dropped), persists the index
// and marks it clean so that the next start needs no sweep.
func (t *diskTier) close() {
	t.closeOnce.Do(func() {
		t.closed.Store(true)
		close(t.done)
		t.wg.Wait()
		t.mu.Lock()
		for id, e := range t.entries {
			if e.access != e.saved {
				t.dirty[id] = struct{}{}
			}
		}
		t.mu.Unlock()
		err := t.flush()
		if err == nil && !t.sweepComplete.Load() {
			err = errors.New("start-up sweep interrupted")
		}
		if err == nil {
			err = t.db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket(bucketMeta).Put(metaClean, []byte("1"))
			})
		}
		if err != nil {
			t.log.warn("disk-index", "disk cache index not saved; the next start sweeps the directory", err)
		}
		_ = t.db.Close()
	})
}
