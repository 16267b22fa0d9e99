package tilecache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/blake2b"
)

func benchDiskConfig(b *testing.B, encrypted bool) Config {
	cfg := Config{Mode: ModeNone, DiskDir: b.TempDir(), DiskBytes: 1 << 30, Logger: quietLog}
	if encrypted {
		cfg.DiskKey = bytes.Repeat([]byte{9}, 32)
	}
	return cfg
}

func encName(encrypted bool) string {
	if encrypted {
		return "aes-gcm"
	}
	return "plain"
}

// BenchmarkDiskHit measures a hit in the disk tier with the memory tier
// off: index lookup, file read (from the page cache), checksum and, when
// encrypted, AES-GCM.
func BenchmarkDiskHit(b *testing.B) {
	for _, encrypted := range []bool{false, true} {
		b.Run(encName(encrypted), func(b *testing.B) {
			tc := newTestTiered(b, benchDiskConfig(b, encrypted))
			keys := make([]string, 256)
			for i := range keys {
				keys[i] = Key("bench", strconv.Itoa(i))
				tc.GetOrProduce(context.Background(), keys[i], benchProduce)
			}
			waitDisk(b, tc)
			ctx := context.Background()
			b.SetBytes(int64(len(benchTile)))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					_, st, _ := tc.GetOrProduce(ctx, keys[i%len(keys)], benchProduce)
					if st != StatusHitDisk && st != StatusCoalesced {
						b.Errorf("status %q", st)
						return
					}
					i++
				}
			})
		})
	}
}

// BenchmarkDiskColdWrite measures what one asynchronous writer spends per
// new tile: frame, checksum, (encrypt,) temporary file, rename, index. The
// fan-out directories exist already, as in a cache that has run a while.
func BenchmarkDiskColdWrite(b *testing.B) {
	for _, encrypted := range []bool{false, true} {
		b.Run(encName(encrypted), func(b *testing.B) {
			tc := newTestTiered(b, benchDiskConfig(b, encrypted))
			for i := range 1 << 12 {
				h := fmt.Sprintf("%03x", i)
				if err := os.MkdirAll(filepath.Join(tc.disk.tilesDir, h[:1], h[1:]), 0o700); err != nil {
					b.Fatal(err)
				}
			}
			var n atomic.Int64
			b.SetBytes(int64(len(benchTile)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := tc.disk.write(Key("cold", strconv.FormatInt(n.Add(1), 10)), benchTile); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEntryFile writes a tile as temporary file + rename, without and
// with the fsync that the disk tier does not pay (a torn entry fails its
// checksum instead).
func BenchmarkEntryFile(b *testing.B) {
	for _, sync := range []bool{false, true} {
		b.Run("fsync="+strconv.FormatBool(sync), func(b *testing.B) {
			dir := b.TempDir()
			i := 0
			for b.Loop() {
				f, err := os.CreateTemp(dir, "x-*")
				if err != nil {
					b.Fatal(err)
				}
				f.Write(benchTile)
				if sync {
					if err := f.Sync(); err != nil {
						b.Fatal(err)
					}
				}
				f.Close()
				i++
				if err := os.Rename(f.Name(), filepath.Join(dir, strconv.Itoa(i))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkChecksum compares the entry checksum (SHA-256) with BLAKE2b on
// a typical tile.
func BenchmarkChecksum(b *testing.B) {
	b.Run("sha256", func(b *testing.B) {
		b.SetBytes(int64(len(benchTile)))
		for b.Loop() {
			sha256.Sum256(benchTile)
		}
	})
	b.Run("blake2b-256", func(b *testing.B) {
		b.SetBytes(int64(len(benchTile)))
		for b.Loop() {
			blake2b.Sum256(benchTile)
		}
	})
}

// BenchmarkDiskOpen measures start-up with an index of 100k entries
// (~1.6 GB of 16 KiB tiles): the records are loaded from bbolt, the
// directory is not walked.
func BenchmarkDiskOpen(b *testing.B) {
	cfg := benchDiskConfig(b, false)
	cfg.DiskBytes = 1 << 40
	tc := newTestTiered(b, cfg)
	d := tc.disk
	now := time.Now().UnixNano()
	d.mu.Lock()
	for i := range 100_000 {
		e := &diskEntry{id: diskIDOf(strconv.Itoa(i)), size: 16 << 10, written: now, access: now + int64(i)}
		d.entries[e.id] = e
		d.pushFront(e)
		d.dirty[e.id] = struct{}{}
	}
	d.mu.Unlock()
	tc.Close()
	b.ResetTimer()
	for b.Loop() {
		tc, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		if s := tc.Stats().Disk; s.Items != 100_000 {
			b.Fatalf("items %d", s.Items)
		}
		b.StopTimer()
		tc.Close()
		b.StartTimer()
	}
}
