package tilecache

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tileserver/tileserver/tilecache/memcachedtest"
)

// testdataSlide is a real Aperio slide; its JPEG tile data stands in for
// tile bytes.
var testdataSlide = filepath.Join("..", "..", "shared", "testdata", "libvips", "CMU-1-Small-Region.svs")

// realTiles returns n distinct slices of the real slide, each size bytes.
func realTiles(t testing.TB, n, size int) [][]byte {
	t.Helper()
	b, err := os.ReadFile(testdataSlide)
	if err != nil {
		t.Fatalf("reading the test slide: %v", err)
	}
	out := make([][]byte, n)
	for i := range out {
		off := (64<<10 + i*size) % (len(b) - size)
		out[i] = b[off : off+size : off+size]
	}
	return out
}

func diskConfig(dir string) Config {
	return Config{Mode: ModeNone, DiskDir: dir, DiskBytes: 64 << 20, Logger: quietLog}
}

// waitDisk waits until the queued disk writes are done (or dropped).
func waitDisk(t testing.TB, tc *Tiered) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for tc.disk.pending.Load() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("disk writes still pending after 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// entryPath is the file of key's entry (the disk tier knows it by its
// shared name).
func entryPath(tc *Tiered, key string) string { return tc.disk.path(diskIDOf(sharedKey("", key))) }

func mustGet(t *testing.T, tc *Tiered, key string, produce func(context.Context) ([]byte, error), wantStatus string, want []byte) {
	t.Helper()
	v, st, err := tc.GetOrProduce(context.Background(), key, produce)
	if err != nil || st != wantStatus || !bytes.Equal(v, want) {
		t.Fatalf("key %s: status %q err %v equal %v; want %q", key, st, err, bytes.Equal(v, want), wantStatus)
	}
}

func TestDiskRestartKeepsEntries(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	cfg := diskConfig(dir)
	cfg.Mode, cfg.MemoryBytes = ModeMemory, 8<<20
	tiles := realTiles(t, 20, 16<<10)
	var calls atomic.Int64
	a := newTestTiered(t, cfg)
	for i, v := range tiles {
		mustGet(t, a, Key("k", strconv.Itoa(i)), constProducer(v, &calls), StatusMiss, v)
	}
	waitDisk(t, a)
	a.Close()

	b := newTestTiered(t, cfg)
	<-b.disk.swept
	if s := b.Stats().Disk; s.Items != 20 || s.Used == 0 {
		t.Fatalf("after restart: disk stats %+v; want the 20 entries from the index", s)
	}
	for i, v := range tiles {
		mustGet(t, b, Key("k", strconv.Itoa(i)), constProducer(nil, &calls), StatusHitDisk, v)
		// Promoted to memory.
		mustGet(t, b, Key("k", strconv.Itoa(i)), constProducer(nil, &calls), StatusHitMemory, v)
	}
	if calls.Load() != 20 {
		t.Fatalf("produced %d times, want 20", calls.Load())
	}
	if s := b.Stats().Disk; s.Hits != 20 || s.Misses != 0 || s.Corrupt != 0 {
		t.Fatalf("disk stats %+v", s)
	}
}

// TestDiskNamespaces: entries written under one namespace (a rendering
// version) are not read under another, and are still there for the first.
func TestDiskNamespaces(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	cfg := diskConfig(dir)
	cfg.Mode, cfg.Namespace = ModeNone, "render 1"
	var calls atomic.Int64
	old, cur := []byte("rendered by release 1"), []byte("rendered by release 2")
	a := newTestTiered(t, cfg)
	mustGet(t, a, Key("k"), constProducer(old, &calls), StatusMiss, old)
	waitDisk(t, a)
	a.Close()

	cfg.Namespace = "render 2"
	b := newTestTiered(t, cfg)
	<-b.disk.swept
	mustGet(t, b, Key("k"), constProducer(cur, &calls), StatusMiss, cur)
	waitDisk(t, b)
	b.Close()

	cfg.Namespace = "render 1"
	c := newTestTiered(t, cfg)
	<-c.disk.swept
	mustGet(t, c, Key("k"), constProducer(nil, &calls), StatusHitDisk, old)
	if calls.Load() != 2 {
		t.Fatalf("produced %d times, want 2", calls.Load())
	}
}

func TestDiskLostIndexIsRebuiltBySweep(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	tiles := realTiles(t, 10, 4<<10)
	var calls atomic.Int64
	a := newTestTiered(t, diskConfig(dir))
	for i, v := range tiles {
		mustGet(t, a, Key(strconv.Itoa(i)), constProducer(v, &calls), StatusMiss, v)
	}
	waitDisk(t, a)
	a.Close()
	if err := os.Remove(filepath.Join(dir, diskIndexFile)); err != nil {
		t.Fatal(err)
	}
	b := newTestTiered(t, diskConfig(dir))
	<-b.disk.swept
	if s := b.Stats().Disk; s.Items != 10 {
		t.Fatalf("after the sweep: %d items, want 10", s.Items)
	}
	for i, v := range tiles {
		mustGet(t, b, Key(strconv.Itoa(i)), constProducer(nil, &calls), StatusHitDisk, v)
	}
}

func TestDiskSecondProcessRefused(t *testing.T) {
	dir := t.TempDir()
	newTestTiered(t, diskConfig(dir))
	if tc, err := New(diskConfig(dir)); err == nil {
		tc.Close()
		t.Fatal("a second cache opened a directory in use")
	}
}

func TestDiskDamagedEntriesAreDroppedAndReproduced(t *testing.T) {
	damage := map[string]func([]byte) []byte{
		"flip-body": func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b },
		"flip-header": func(b []byte) []byte {
			b[9] ^= 1 // write time: covered by the checksum
			return b
		},
		"flip-checksum": func(b []byte) []byte { b[len(b)-1] ^= 1; return b },
		"truncated":     func(b []byte) []byte { return b[:len(b)-100] },
		"truncated-header": func(b []byte) []byte {
			return b[:10]
		},
		"empty":    func(b []byte) []byte { return nil },
		"extended": func(b []byte) []byte { return append(b, 0) },
	}
	for _, encrypted := range []bool{false, true} {
		for name, fn := range damage {
			t.Run(name+"/encrypted="+strconv.FormatBool(encrypted), func(t *testing.T) {
				cfg := diskConfig(t.TempDir())
				if encrypted {
					cfg.DiskKey = bytes.Repeat([]byte{7}, 32)
				}
				tc := newTestTiered(t, cfg)
				tiles := realTiles(t, 2, 8<<10)
				var calls atomic.Int64
				k := Key("damaged")
				mustGet(t, tc, k, constProducer(tiles[0], &calls), StatusMiss, tiles[0])
				waitDisk(t, tc)
				p := entryPath(tc, k)
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, fn(b), 0o600); err != nil {
					t.Fatal(err)
				}
				// The damaged entry is never served: the new tile is produced.
				mustGet(t, tc, k, constProducer(tiles[1], &calls), StatusMiss, tiles[1])
				s := tc.Stats().Disk
				if s.Corrupt != 1 || s.Hits != 0 || s.Undecryptable != 0 {
					t.Fatalf("disk stats %+v; want one corrupt entry dropped", s)
				}
				waitDisk(t, tc)
				mustGet(t, tc, k, constProducer(nil, &calls), StatusHitDisk, tiles[1])
				if calls.Load() != 2 {
					t.Fatalf("produced %d times, want 2", calls.Load())
				}
			})
		}
	}
}

func TestDiskMissingFileIsAMiss(t *testing.T) {
	tc := newTestTiered(t, diskConfig(t.TempDir()))
	var calls atomic.Int64
	mustGet(t, tc, "k", constProducer([]byte("v1"), &calls), StatusMiss, []byte("v1"))
	waitDisk(t, tc)
	if err := os.Remove(entryPath(tc, "k")); err != nil {
		t.Fatal(err)
	}
	mustGet(t, tc, "k", constProducer([]byte("v2"), &calls), StatusMiss, []byte("v2"))
	if s := tc.Stats().Disk; s.Errors != 0 || s.Corrupt != 0 || s.Misses != 2 {
		t.Fatalf("disk stats %+v", s)
	}
}

func TestDiskEncryption(t *testing.T) {
	dir := t.TempDir()
	key := bytes.Repeat([]byte{0xa5}, 32)
	cfg := diskConfig(dir)
	cfg.DiskKey = key
	tile := realTiles(t, 1, 16<<10)[0]
	k := Key("secret", "0", "0", "0")
	var calls atomic.Int64

	a := newTestTiered(t, cfg)
	mustGet(t, a, k, constProducer(tile, &calls), StatusMiss, tile)
	waitDisk(t, a)
	onDisk, err := os.ReadFile(entryPath(a, k))
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off+32 <= len(tile); off += 1024 {
		if bytes.Contains(onDisk, tile[off:off+32]) {
			t.Fatalf("plaintext of the tile (offset %d) found in the encrypted entry", off)
		}
	}
	a.Close()

	// Same key: round trip.
	b := newTestTiered(t, cfg)
	mustGet(t, b, k, constProducer(nil, &calls), StatusHitDisk, tile)
	b.Close()

	// Wrong key: a miss, never garbage; the entry is replaced.
	wrong := cfg
	wrong.DiskKey = bytes.Repeat([]byte{0x5a}, 32)
	c := newTestTiered(t, wrong)
	other := []byte("produced under the new key")
	mustGet(t, c, k, constProducer(other, &calls), StatusMiss, other)
	if s := c.Stats().Disk; s.Undecryptable != 1 || s.Corrupt != 0 || s.Hits != 0 {
		t.Fatalf("wrong key: disk stats %+v; want one undecryptable entry", s)
	}
	waitDisk(t, c)
	mustGet(t, c, k, constProducer(nil, &calls), StatusHitDisk, other)
	c.Close()

	// Encryption turned off: sealed entries are misses too.
	plain := cfg
	plain.DiskKey = nil
	d := newTestTiered(t, plain)
	mustGet(t, d, k, constProducer(tile, &calls), StatusMiss, tile)
	if s := d.Stats().Disk; s.Undecryptable != 1 {
		t.Fatalf("no key: disk stats %+v", s)
	}
	waitDisk(t, d)
	// Unencrypted entries do hold the plaintext (so the search above can fail).
	onDisk, err = os.ReadFile(entryPath(d, k))
	if err != nil || !bytes.Contains(onDisk, tile) {
		t.Fatalf("plain entry does not hold the tile: %v", err)
	}
	d.Close()

	// ...and plaintext entries are misses once encryption is on.
	e := newTestTiered(t, cfg)
	mustGet(t, e, k, constProducer(tile, &calls), StatusMiss, tile)
	if s := e.Stats().Disk; s.Undecryptable != 1 {
		t.Fatalf("key on, plain entry: disk stats %+v", s)
	}
}

func TestDiskNoncesAreUnique(t *testing.T) {
	cfg := diskConfig(t.TempDir())
	cfg.DiskKey = bytes.Repeat([]byte{1}, 32)
	seen := map[string]bool{}
	for round := range 2 {
		tc := newTestTiered(t, cfg)
		for range 100 {
			n, err := tc.disk.nonce()
			if err != nil {
				t.Fatal(err)
			}
			if seen[string(n)] {
				t.Fatalf("round %d: nonce %x reused", round, n)
			}
			seen[string(n)] = true
		}
		// Force a block reservation within the run.
		tc.disk.nonceMu.Lock()
		tc.disk.nonceNext = tc.disk.nonceLimit - 1
		tc.disk.nonceMu.Unlock()
		for range 3 {
			n, err := tc.disk.nonce()
			if err != nil || seen[string(n)] {
				t.Fatalf("after the block: nonce %x err %v", n, err)
			}
			seen[string(n)] = true
		}
		limit := tc.disk.nonceLimit
		tc.Close()
		// The next process starts past everything reserved.
		tc2 := newTestTiered(t, cfg)
		if tc2.disk.nonceNext < limit {
			t.Fatalf("restart counter %d below the reserved limit %d", tc2.disk.nonceNext, limit)
		}
		tc2.Close()
	}
}

func TestDiskEvictionKeepsTheByteBound(t *testing.T) {
	const bound = 256 << 10
	cfg := diskConfig(t.TempDir())
	cfg.DiskBytes = bound
	cfg.Writers = 1
	tc := newTestTiered(t, cfg)
	tiles := realTiles(t, 200, 4<<10) // ~800 KiB through a 256 KiB tier
	var calls atomic.Int64
	hot := Key("hot")
	mustGet(t, tc, hot, constProducer(tiles[0], &calls), StatusMiss, tiles[0])
	waitDisk(t, tc)
	for i, v := range tiles {
		mustGet(t, tc, Key(strconv.Itoa(i)), constProducer(v, &calls), StatusMiss, v)
		waitDisk(t, tc)
		// Reading the hot key keeps it the most recently used.
		mustGet(t, tc, hot, constProducer(nil, &calls), StatusHitDisk, tiles[0])
	}
	s := tc.Stats().Disk
	if s.Used > bound || s.MaxSize != bound || s.Evictions == 0 {
		t.Fatalf("disk stats %+v; want used <= %d and evictions", s, bound)
	}
	// The files on disk are exactly what the index counts.
	var files, size int64
	filepath.WalkDir(tc.disk.tilesDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			fi, _ := d.Info()
			files++
			size += fi.Size()
		}
		return nil
	})
	if uint64(files) != s.Items || uint64(size) != s.Used {
		t.Fatalf("on disk %d files, %d bytes; index %d items, %d bytes", files, size, s.Items, s.Used)
	}
	mustGet(t, tc, hot, constProducer(nil, &calls), StatusHitDisk, tiles[0])
	for i := range 100 { // the oldest are gone
		if _, err := os.Stat(entryPath(tc, Key(strconv.Itoa(i)))); !os.IsNotExist(err) {
			t.Fatalf("entry %d of 200 still on disk (err %v)", i, err)
		}
	}
	for i := 190; i < 200; i++ { // the newest are there
		mustGet(t, tc, Key(strconv.Itoa(i)), constProducer(nil, &calls), StatusHitDisk, tiles[i])
	}
	// A tile larger than the whole tier is not written.
	big := make([]byte, bound)
	tc.GetOrProduce(context.Background(), Key("big"), constProducer(big, &calls))
	if s := tc.Stats().Disk; s.Skipped != 1 {
		t.Fatalf("skipped %d, want 1", s.Skipped)
	}
}

func TestDiskBoundAppliesOnRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := diskConfig(dir)
	cfg.Writers = 1
	tc := newTestTiered(t, cfg)
	tiles := realTiles(t, 50, 4<<10)
	var calls atomic.Int64
	for i, v := range tiles {
		mustGet(t, tc, Key(strconv.Itoa(i)), constProducer(v, &calls), StatusMiss, v)
		waitDisk(t, tc)
	}
	tc.Close()
	cfg.DiskBytes = 20 * (4<<10 + diskMinSize)
	tc = newTestTiered(t, cfg)
	if s := tc.Stats().Disk; s.Items != 20 || s.Used > uint64(cfg.DiskBytes) {
		t.Fatalf("smaller bound on restart: %+v", s)
	}
	mustGet(t, tc, Key("49"), constProducer(nil, &calls), StatusHitDisk, tiles[49])
	mustGet(t, tc, Key("0"), constProducer(tiles[0], &calls), StatusMiss, tiles[0])
}

type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestDiskTTL(t *testing.T) {
	clock := &fakeClock{}
	clock.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	dir := t.TempDir()
	cfg := diskConfig(dir)
	cfg.now = clock.now
	tc := newTestTiered(t, cfg)
	if tc.Config().DiskTTL != 7*24*time.Hour {
		t.Fatalf("default TTL %s", tc.Config().DiskTTL)
	}
	var calls atomic.Int64
	for _, k := range []string{"a", "b", "c"} {
		mustGet(t, tc, k, constProducer([]byte(k), &calls), StatusMiss, []byte(k))
	}
	waitDisk(t, tc)
	clock.advance(6 * 24 * time.Hour)
	// Reading does not extend the TTL, which counts from the write.
	mustGet(t, tc, "a", constProducer(nil, &calls), StatusHitDisk, []byte("a"))
	clock.advance(2 * 24 * time.Hour)
	mustGet(t, tc, "a", constProducer([]byte("a2"), &calls), StatusMiss, []byte("a2"))
	if _, err := os.Stat(entryPath(tc, "b")); err != nil {
		t.Fatalf("b before the janitor: %v", err)
	}
	tc.disk.expire()
	if _, err := os.Stat(entryPath(tc, "b")); !os.IsNotExist(err) {
		t.Fatalf("expired entry b still on disk: %v", err)
	}
	if s := tc.Stats().Disk; s.Expired != 3 {
		t.Fatalf("expired %d, want 3 (a on read, b and c by the janitor)", s.Expired)
	}
	waitDisk(t, tc)
	tc.Close()

	// Expired entries are dropped when the index is loaded, too.
	clock.advance(8 * 24 * time.Hour)
	tc = newTestTiered(t, cfg)
	if s := tc.Stats().Disk; s.Items != 0 || s.Used != 0 {
		t.Fatalf("after restart past the TTL: %+v", s)
	}
	if _, err := os.Stat(entryPath(tc, "a")); !os.IsNotExist(err) {
		t.Fatalf("expired entry a still on disk: %v", err)
	}
}

func TestDiskPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "cache")
	tc := newTestTiered(t, diskConfig(dir))
	var calls atomic.Int64
	for i := range 10 {
		tc.GetOrProduce(context.Background(), Key(strconv.Itoa(i)), constProducer([]byte("v"), &calls))
	}
	waitDisk(t, tc)
	var dirs, files int
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
			dirs++
		} else {
			files++
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files != 11 || dirs < 4 { // 10 entries and the index
		t.Fatalf("%d files, %d dirs", files, dirs)
	}
}

func TestDiskClear(t *testing.T) {
	cfg := diskConfig(t.TempDir())
	cfg.Mode, cfg.MemoryBytes = ModeMemory, 1<<20
	tc := newTestTiered(t, cfg)
	var calls atomic.Int64
	ctx := context.Background()
	for i := range 5 {
		tc.GetOrProduce(ctx, Key(strconv.Itoa(i)), constProducer([]byte("v"), &calls))
	}
	waitDisk(t, tc)
	// Clearing memory (and memcached) keeps the disk tier.
	if err := tc.Clear(ctx, true); err != nil {
		t.Fatal(err)
	}
	mustGet(t, tc, Key("0"), constProducer(nil, &calls), StatusHitDisk, []byte("v"))
	if err := tc.ClearDisk(ctx); err != nil {
		t.Fatal(err)
	}
	if s := tc.Stats().Disk; s.Items != 0 || s.Used != 0 {
		t.Fatalf("after ClearDisk: %+v", s)
	}
	mustGet(t, tc, Key("1"), constProducer([]byte("w"), &calls), StatusMiss, []byte("w"))
	waitDisk(t, tc)
	tc.Close()
	// The cleared state survives a restart, and the trash is gone.
	tc = newTestTiered(t, cfg)
	<-tc.disk.swept
	if s := tc.Stats().Disk; s.Items != 1 {
		t.Fatalf("after restart: %+v; want only the entry written after the clear", s)
	}
	if m, _ := filepath.Glob(filepath.Join(cfg.DiskDir, diskTrashDir+"*")); len(m) != 0 {
		t.Fatalf("trash left behind: %v", m)
	}
	mustGet(t, tc, Key("1"), constProducer(nil, &calls), StatusHitDisk, []byte("w"))
	mustGet(t, tc, Key("2"), constProducer([]byte("x"), &calls), StatusMiss, []byte("x"))
}

func TestDiskConcurrentAccess(t *testing.T) {
	cfg := diskConfig(t.TempDir())
	cfg.DiskBytes = 200 << 10 // keeps evicting
	cfg.Mode, cfg.MemoryBytes = ModeMemory, 64<<10
	cfg.DiskKey = bytes.Repeat([]byte{3}, 32)
	tc := newTestTiered(t, cfg)
	tiles := realTiles(t, 64, 6<<10)
	var calls atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 300 {
				i := r.IntN(len(tiles))
				v, _, err := tc.GetOrProduce(context.Background(), Key(strconv.Itoa(i)), constProducer(tiles[i], &calls))
				if err != nil || !bytes.Equal(v, tiles[i]) {
					t.Errorf("key %d: wrong value (err %v)", i, err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 3 {
			time.Sleep(5 * time.Millisecond)
			if err := tc.ClearDisk(context.Background()); err != nil {
				t.Error(err)
			}
			tc.disk.flush()
			tc.disk.expire()
		}
	})
	wg.Wait()
	waitDisk(t, tc)
	s := tc.Stats().Disk
	if s.Used > uint64(cfg.DiskBytes) || s.Corrupt != 0 || s.Undecryptable != 0 || s.Errors != 0 {
		t.Fatalf("disk stats %+v", s)
	}
}

func TestDiskGarbageDoesNotBreakStartup(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 42))
			garbage := func(n int) []byte {
				b := make([]byte, n)
				for i := range b {
					b[i] = byte(r.Uint32())
				}
				return b
			}
			dir := t.TempDir()
			var calls atomic.Int64
			// Start from a real cache, then damage it.
			tc := newTestTiered(t, diskConfig(dir))
			for i := range 5 {
				tc.GetOrProduce(context.Background(), Key(strconv.Itoa(i)), constProducer([]byte("v"+strconv.Itoa(i)), &calls))
			}
			waitDisk(t, tc)
			target := entryPath(tc, Key("target"))
			tc.Close()

			index := filepath.Join(dir, diskIndexFile)
			switch seed % 3 {
			case 0: // garbage index
				os.WriteFile(index, garbage([]int{0, 100, 4096, 40000}[r.IntN(4)]), 0o600)
			case 1: // torn index
				b, _ := os.ReadFile(index)
				os.WriteFile(index, b[:r.IntN(len(b))], 0o600)
			case 2: // index with bytes flipped
				b, _ := os.ReadFile(index)
				for range 20 {
					b[r.IntN(len(b))] ^= byte(1 + r.IntN(255))
				}
				os.WriteFile(index, b, 0o600)
			}
			// A garbage file under a valid entry name, garbage under other
			// names, a stray directory, an interrupted write.
			os.MkdirAll(filepath.Dir(target), 0o700)
			os.WriteFile(target, garbage(r.IntN(3000)), 0o600)
			os.WriteFile(filepath.Join(dir, diskTilesDir, "notes.txt"), garbage(50), 0o600)
			os.MkdirAll(filepath.Join(dir, diskTilesDir, "zz", "yy"), 0o700)
			os.WriteFile(filepath.Join(dir, diskTilesDir, "zz", "yy", hex.EncodeToString(garbage(16))), garbage(200), 0o600)
			os.WriteFile(filepath.Join(dir, diskTmpDir, "tile-123.tmp"), garbage(500), 0o600)
			os.WriteFile(filepath.Join(dir, "other"), garbage(500), 0o600)

			tc, err := New(diskConfig(dir))
			if err != nil {
				t.Fatalf("start-up on a damaged cache: %v", err)
			}
			defer tc.Close()
			<-tc.disk.swept
			mustGet(t, tc, Key("target"), constProducer([]byte("fresh"), &calls), StatusMiss, []byte("fresh"))
			for i := range 5 {
				k := Key(strconv.Itoa(i))
				want := []byte("v" + strconv.Itoa(i))
				v, st, err := tc.GetOrProduce(context.Background(), k, constProducer(want, &calls))
				if err != nil || !bytes.Equal(v, want) || (st != StatusHitDisk && st != StatusMiss) {
					t.Fatalf("entry %d: %q %q %v", i, v, st, err)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, diskTmpDir, "tile-123.tmp")); !os.IsNotExist(err) {
				t.Fatalf("interrupted write not removed: %v", err)
			}
			// Files the tier did not create are left alone.
			for _, p := range []string{filepath.Join(dir, "other"), filepath.Join(dir, diskTilesDir, "notes.txt")} {
				if _, err := os.Stat(p); err != nil {
					t.Fatalf("foreign file %s: %v", p, err)
				}
			}
		})
	}
}

func TestDiskMetrics(t *testing.T) {
	cfg := diskConfig(t.TempDir())
	cfg.DiskBytes = 1 << 20
	tc := newTestTiered(t, cfg)
	reg := prometheus.NewPedanticRegistry()
	if err := Register(reg, tc, nil); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	tc.GetOrProduce(context.Background(), "k", constProducer([]byte("v"), &calls))
	waitDisk(t, tc)
	tc.GetOrProduce(context.Background(), "k", constProducer(nil, &calls))
	os.WriteFile(entryPath(tc, "k"), []byte("junk"), 0o600)
	tc.GetOrProduce(context.Background(), "k", constProducer([]byte("v"), &calls))
	waitDisk(t, tc)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	disk := map[string]string{"cache": "tiles", "tier": "disk"}
	for name, want := range map[string]float64{
		"tileserver_cache_hits_total":    1,
		"tileserver_cache_misses_total":  2,
		"tileserver_cache_corrupt_total": 1,
		"tileserver_cache_writes_total":  2,
		"tileserver_cache_max_bytes":     1 << 20,
		"tileserver_cache_items":         1,
	} {
		if got := metricValue(t, mfs, name, disk); got != want {
			t.Errorf("%s{tier=disk} = %v, want %v", name, got, want)
		}
	}
}

func TestDiskConfig(t *testing.T) {
	for _, cfg := range []Config{
		{DiskDir: t.TempDir(), DiskKey: make([]byte, 16)},
		{DiskDir: t.TempDir(), DiskBytes: -1},
		{DiskDir: t.TempDir(), DiskTTL: -time.Second},
	} {
		cfg.Logger = quietLog
		if tc, err := New(cfg); err == nil {
			tc.Close()
			t.Errorf("New(%+v) accepted an invalid disk config", cfg)
		}
	}
	tc := newTestTiered(t, Config{Mode: ModeNone, DiskDir: t.TempDir(), Logger: quietLog})
	if c := tc.Config(); c.DiskBytes <= 0 || c.DiskBytes > maxDefaultDiskBytes || c.DiskTTL != defaultDiskTTL {
		t.Fatalf("disk defaults: bytes %d ttl %s", c.DiskBytes, c.DiskTTL)
	}
	if s := tc.Stats().Disk; !s.Enabled || s.MaxSize != uint64(tc.Config().DiskBytes) {
		t.Fatalf("disk stats %+v", s)
	}
	if s := newTestTiered(t, Config{Mode: ModeNone}).Stats().Disk; s.Enabled {
		t.Fatal("disk tier on without DiskDir")
	}
}

func TestParseDiskKey(t *testing.T) {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i * 7)
	}
	for _, s := range []string{
		hex.EncodeToString(key),
		" " + hex.EncodeToString(key) + "\n",
		base64.StdEncoding.EncodeToString(key),
		base64.RawStdEncoding.EncodeToString(key),
		base64.URLEncoding.EncodeToString(key),
	} {
		got, err := ParseDiskKey(s)
		if err != nil || !bytes.Equal(got, key) {
			t.Errorf("ParseDiskKey(%q) = %x, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "abc", hex.EncodeToString(key[:16]), base64.StdEncoding.EncodeToString(key[:31]), hex.EncodeToString(key) + "00"} {
		if _, err := ParseDiskKey(s); err == nil {
			t.Errorf("ParseDiskKey(%q) accepted a bad key", s)
		}
	}
}

func TestDiskWritesNeverBlock(t *testing.T) {
	cfg := diskConfig(t.TempDir())
	cfg.Writers, cfg.WriteQueue = 1, 1
	tc := newTestTiered(t, cfg)
	d := tc.disk
	// Stall the only writer inside its write.
	d.mu.Lock()
	d.setAsync(sharedKey("", "k1"), []byte("1"))
	for len(d.queue) != 0 {
		time.Sleep(time.Millisecond)
	}
	d.setAsync(sharedKey("", "k2"), []byte("2")) // fills the queue
	d.setAsync(sharedKey("", "k3"), []byte("3")) // dropped, without waiting
	dropped := d.dropped.Load()
	d.mu.Unlock()
	if dropped != 1 {
		t.Fatalf("dropped %d, want 1", dropped)
	}
	waitDisk(t, tc)
	var calls atomic.Int64
	mustGet(t, tc, "k2", constProducer(nil, &calls), StatusHitDisk, []byte("2"))
	mustGet(t, tc, "k3", constProducer([]byte("3"), &calls), StatusMiss, []byte("3"))
	if s := tc.Stats().Disk; s.Dropped != 1 || s.Writes < 2 {
		t.Fatalf("disk stats %+v", s)
	}
}

func TestDiskHitPromotedToMemcached(t *testing.T) {
	srv := memcachedtest.Start(t)
	dir := t.TempDir()
	tile := realTiles(t, 1, 16<<10)[0]
	var calls atomic.Int64
	k := Key("promote")
	a := newTestTiered(t, diskConfig(dir))
	mustGet(t, a, k, constProducer(tile, &calls), StatusMiss, tile)
	waitDisk(t, a)
	a.Close()

	cfg := diskConfig(dir)
	cfg.Mode, cfg.MemoryBytes, cfg.MemcachedServers = ModeMemoryMemcached, 1<<20, []string{srv.Addr}
	b := newTestTiered(t, cfg)
	mustGet(t, b, k, constProducer(nil, &calls), StatusHitDisk, tile)
	mustGet(t, b, k, constProducer(nil, &calls), StatusHitMemory, tile)
	waitWrites(t, b)
	// Another replica without a disk finds it in memcached.
	c := newTestTiered(t, Config{Mode: ModeMemcached, MemcachedServers: []string{srv.Addr}, Logger: quietLog})
	mustGet(t, c, k, constProducer(nil, &calls), StatusHitMemcached, tile)
	if calls.Load() != 1 {
		t.Fatalf("produced %d times, want 1", calls.Load())
	}
}

// crash stops tc's disk tier the way a killed process would: no index
// flush, no clean mark. Entry files already renamed stay.
func crash(tc *Tiered) {
	d := tc.disk
	d.closeOnce.Do(func() {
		d.closed.Store(true)
		close(d.done)
		d.wg.Wait()
		d.db.Close()
	})
}

func TestDiskCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	tiles := realTiles(t, 30, 4<<10)
	var calls atomic.Int64
	a := newTestTiered(t, diskConfig(dir))
	for i := range 10 {
		mustGet(t, a, Key(strconv.Itoa(i)), constProducer(tiles[i], &calls), StatusMiss, tiles[i])
	}
	waitDisk(t, a)
	if err := a.disk.flush(); err != nil { // these ten are in the index
		t.Fatal(err)
	}
	for i := 10; i < 30; i++ { // these twenty only on disk
		mustGet(t, a, Key(strconv.Itoa(i)), constProducer(tiles[i], &calls), StatusMiss, tiles[i])
	}
	waitDisk(t, a)
	// Rewrite one indexed entry with a different size.
	a.disk.write(sharedKey("", Key("0")), tiles[1][:1000])
	crash(a)
	// And an interrupted write.
	os.WriteFile(filepath.Join(dir, diskTmpDir, "tile-999.tmp"), tiles[0][:100], 0o600)

	b := newTestTiered(t, diskConfig(dir))
	<-b.disk.swept
	if s := b.Stats().Disk; s.Items != 30 {
		t.Fatalf("after the crash: %d items, want 30 (10 indexed, 20 adopted)", s.Items)
	}
	mustGet(t, b, Key("0"), constProducer(nil, &calls), StatusHitDisk, tiles[1][:1000])
	for i := 1; i < 30; i++ {
		mustGet(t, b, Key(strconv.Itoa(i)), constProducer(nil, &calls), StatusHitDisk, tiles[i])
	}
	var size int64
	filepath.WalkDir(b.disk.tilesDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			fi, _ := d.Info()
			size += fi.Size()
		}
		return nil
	})
	if s := b.Stats().Disk; s.Used != uint64(size) {
		t.Fatalf("index counts %d bytes, files hold %d", s.Used, size)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, diskTmpDir, "*")); len(m) != 0 {
		t.Fatalf("temporary files left: %v", m)
	}
	b.Close()
	// The clean close after the sweep means no sweep next time, and the
	// adopted entries are in the index.
	c := newTestTiered(t, diskConfig(dir))
	if s := c.Stats().Disk; s.Items != 30 {
		t.Fatalf("after a clean restart: %d items", s.Items)
	}
}
