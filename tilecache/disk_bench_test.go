package tilecache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

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
// new tile: frame, checksum, (encrypt,) temporary file, rename, index.
func BenchmarkDiskColdWrite(b *testing.B) {
	for _, encrypted := range []bool{false, true} {
		b.Run(encName(encrypted), func(b *testing.B) {
			tc := newTestTiered(b, benchDiskConfig(b, encrypted))
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

// BenchmarkFsyncCost is the price of an fsync per entry file that the disk
// tier does not pay (a torn entry fails its checksum instead).
func BenchmarkFsyncCost(b *testing.B) {
	dir := b.TempDir()
	i := 0
	for b.Loop() {
		f, err := os.CreateTemp(dir, "x-*")
		if err != nil {
			b.Fatal(err)
		}
		f.Write(benchTile)
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		f.Close()
		i++
		if err := os.Rename(f.Name(), filepath.Join(dir, strconv.Itoa(i))); err != nil {
			b.Fatal(err)
		}
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
