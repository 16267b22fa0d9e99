package objstore_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/detect"
	"github.com/tileserver/tileserver/tilesource/objstore"
	"github.com/tileserver/tileserver/tilesource/objstore/s3test"
)

// BenchmarkColdTile reads every stored tile of CMU-1-Small-Region.svs
// (240×240 JPEG tiles) once per source opening, from a local file and from
// SeaweedFS on loopback: the cost of a tile no cache of ours holds (the
// file's pages may be in the OS cache). Opening is outside the timer;
// GETs/tile counts the object requests of the tile reads.
func BenchmarkColdTile(b *testing.B) {
	const key = "CMU-1-Small-Region.svs"
	path := testdata(b, "libvips/"+key)
	b.Run("file", func(b *testing.B) {
		coldTiles(b, func() tilesource.Source {
			src, err := detect.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			return src
		}, nil)
	})
	b.Run("s3", func(b *testing.B) {
		srv := s3test.Start(b, bucket)
		srv.Upload(b, bucket, "demo/"+key, path)
		srv.Env(b)
		cfg, err := objstore.ParseURL("s3://" + bucket + "/demo?endpoint=http://" + srv.Endpoint)
		if err != nil {
			b.Fatal(err)
		}
		count := &countingTransport{base: http.DefaultTransport}
		cfg.Transport = count
		bk, err := objstore.Open(cfg)
		if err != nil {
			b.Fatal(err)
		}
		coldTiles(b, func() tilesource.Source {
			sl := &objstore.Slides{Bucket: bk, Blocks: objstore.NewBlockCache(64<<20, 0)}
			src, err := sl.Open(context.Background(), key)
			if err != nil {
				b.Fatal(err)
			}
			count.gets.Store(0)
			return src
		}, &count.gets)
	})
}

type loader interface{ Load() int64 }

func coldTiles(b *testing.B, open func() tilesource.Source, gets loader) {
	ctx := context.Background()
	var (
		src        tilesource.Source
		x, y, cols int
		rows       int
		z          int
		total      int64
	)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if src == nil {
			b.StopTimer()
			src = open()
			z = src.Info().Levels - 1
			cols, rows = src.Info().TileCount(z)
			x, y = 0, 0
			b.StartTimer()
		}
		if _, err := src.ReadTile(ctx, 0, z, x, y); err != nil {
			b.Fatal(err)
		}
		if x++; x == cols {
			x, y = 0, y+1
		}
		if y == rows {
			b.StopTimer()
			if gets != nil {
				total += gets.Load()
			}
			src.Close()
			src = nil
			b.StartTimer()
		}
	}
	b.StopTimer()
	if src != nil {
		if gets != nil {
			total += gets.Load()
		}
		src.Close()
	}
	if gets != nil {
		b.ReportMetric(float64(total)/float64(b.N), "GETs/tile")
	}
}
