// Command limitserver is the yardstick of the tile benchmarks: it answers
// the zxy tile URLs of tileserver for one JPEG-tiled pyramidal TIFF with the
// least work a server can do, byte for byte what tileserver sends for a
// stored tile (the stored bytes with the JPEG tables spliced in). In
// -mode pread every request reads the tile from the file; in -mode map the
// first request of a tile reads it and later ones are answered from a map
// in memory. A tile of a level the file lacks, when the next finer level is
// stored, is made as a native server would: its four children decoded at
// half size by libjpeg-turbo's DCT scaling straight into one canvas, then
// encoded (TurboJPEG, tileserver's default quality, 4:4:4) — the limit of
// tileserver's synthesised tiles. It sends the headers tileserver sends with a tile (ETag,
// Cache-Control, Content-Length, nosniff, X-Tile-Cache), so both give the
// same HTTP response. Comparing tileserver with it in the same run gives
// "ours / limit" on this machine.
//
//	limitserver -slide slide.tif -addr 127.0.0.1:18093 -mode map
package main

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/cespare/xxhash/v2"

	"github.com/tileserver/tileserver/encode"
	"github.com/tileserver/tileserver/tilesource/tiff"
)

// TIFF tags the server reads.
const (
	tagImageWidth     = 256
	tagImageLength    = 257
	tagCompression    = 259
	tagPhotometric    = 262
	tagTileWidth      = 322
	tagTileLength     = 323
	tagTileOffsets    = 324
	tagTileByteCounts = 325
	tagJPEGTables     = 347
)

// level is one stored pyramid level.
type level struct {
	cols    int
	offsets []uint64
	counts  []uint64
	tables  []byte
	rgb     bool
}

type server struct {
	f      *os.File
	tileW  int // tile size of every level
	tileH  int
	levels map[int]*level // by large_image's z (0 = lowest resolution)
	cache  bool
	mu     sync.RWMutex
	tiles  map[[3]int][]byte
}

func main() {
	slide := flag.String("slide", "", "JPEG-tiled pyramidal TIFF `file`")
	addr := flag.String("addr", "127.0.0.1:18093", "listen `host:port`")
	mode := flag.String("mode", "pread", "pread (read every tile from the file) or map (read once, then from memory)")
	flag.Parse()
	if *mode != "pread" && *mode != "map" {
		log.Fatalf("-mode %q: want pread or map", *mode)
	}
	s, err := open(*slide)
	if err != nil {
		log.Fatal(err)
	}
	s.cache = *mode == "map"
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/", s.serve)
	log.Printf("limitserver (%s) listening on http://%s/", *mode, *addr)
	log.Fatal(http.ListenAndServe(*addr, mux))
}

func open(path string) (*server, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	tf, err := tiff.Parse(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// The main chain's tiled JPEG directories, full resolution first; each
	// level's z follows from its width relative to full resolution.
	var full uint64
	s := &server{f: f, levels: map[int]*level{}, tiles: map[[3]int][]byte{}}
	type stored struct {
		width uint64
		lv    *level
	}
	var all []stored
	for _, d := range tf.IFDs {
		if d.Uint(tagCompression, 1) != 7 || d.Uint(tagTileWidth, 0) == 0 {
			continue
		}
		w, tw := d.Uint(tagImageWidth, 0), d.Uint(tagTileWidth, 0)
		if full == 0 {
			full = w
		}
		lv := &level{cols: int((w + tw - 1) / tw), offsets: d.Uints(tagTileOffsets), counts: d.Uints(tagTileByteCounts),
			rgb: d.Uint(tagPhotometric, 6) == 2}
		if e := d.Entries[tagJPEGTables]; e != nil {
			lv.tables = e.Data
		}
		all = append(all, stored{w, lv})
	}
	if len(all) == 0 {
		return nil, errors.New("no JPEG-tiled directory")
	}
	// Level count as large_image: enough halvings for the full level to
	// fit one tile.
	tw := tf.IFDs[0].Uint(tagTileWidth, 256)
	th := tf.IFDs[0].Uint(tagTileLength, 256)
	h := tf.IFDs[0].Uint(tagImageLength, 0)
	levels := 1
	for sx, sy := full, h; sx > tw || sy > th; sx, sy = (sx+1)/2, (sy+1)/2 {
		levels++
	}
	s.tileW, s.tileH = int(tw), int(th)
	for _, a := range all {
		k := 0
		for w := full; w > a.width; w /= 2 {
			k++
		}
		s.levels[levels-1-k] = a.lv
	}
	return s, nil
}

// serve answers …/zxy/{z}/{x}/{y} and, for the benchmark's warm-up, any
// other path with an empty JSON object.
func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	_, rest, ok := strings.Cut(r.URL.Path, "/zxy/")
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}"))
		return
	}
	var zxy [3]int
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		http.NotFound(w, r)
		return
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		zxy[i] = n
	}
	b, hit, err := s.tile(zxy)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	// tileserver's ETag is a 64-bit xxHash over the route's identity; so
	// is this.
	var sum [8]byte
	binary.BigEndian.PutUint64(sum[:], xxhash.Sum64String(r.URL.Path))
	h := w.Header()
	h["Cache-Control"] = cacheControl
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	h["Content-Type"] = contentType
	h["Etag"] = []string{`"` + hex.EncodeToString(sum[:]) + `"`}
	h["X-Content-Type-Options"] = nosniff
	if hit {
		h["X-Tile-Cache"] = hitMemory
	} else {
		h["X-Tile-Cache"] = miss
	}
	_, _ = w.Write(b)
}

// Header values, shared by every response (net/http only reads them).
var (
	cacheControl = []string{"public, max-age=3600"}
	contentType  = []string{"image/jpeg"}
	nosniff      = []string{"nosniff"}
	hitMemory    = []string{"hit-memory"}
	miss         = []string{"miss"}
)

// tile returns the tile's bytes and whether they came from memory.
func (s *server) tile(zxy [3]int) ([]byte, bool, error) {
	if s.cache {
		s.mu.RLock()
		b, ok := s.tiles[zxy]
		s.mu.RUnlock()
		if ok {
			return b, true, nil
		}
	}
	b, err := s.read(zxy)
	if err != nil {
		return nil, false, err
	}
	if s.cache {
		s.mu.Lock()
		s.tiles[zxy] = b
		s.mu.Unlock()
	}
	return b, false, nil
}

// read reads a stored tile from the file and splices in its JPEG tables,
// or makes a tile of a missing level from the next finer one.
func (s *server) read(zxy [3]int) ([]byte, error) {
	lv := s.levels[zxy[0]]
	if lv == nil {
		return s.synthesise(zxy)
	}
	return s.stored(lv, zxy)
}

// synthesise makes a tile of a missing level from its four children one
// level finer, each decoded at half size into its quarter of the tile.
func (s *server) synthesise(zxy [3]int) ([]byte, error) {
	child := s.levels[zxy[0]+1]
	if child == nil {
		return nil, errors.New("neither the level nor the next finer one is stored")
	}
	canvas := encode.NewImage(s.tileW, s.tileH, 3, encode.Uint8)
	found := false
	for j := range 2 {
		for i := range 2 {
			b, err := s.stored(child, [3]int{zxy[0] + 1, 2*zxy[1] + i, 2*zxy[2] + j})
			if err != nil {
				continue // beyond the level's edge
			}
			if err := encode.DecodeJPEGInto(b, 2, canvas, i*s.tileW/2, j*s.tileH/2); err != nil {
				return nil, err
			}
			found = true
		}
	}
	if !found {
		return nil, errors.New("no such tile")
	}
	return encode.EncodeJPEGTurbo(canvas, encode.DefaultJPEGQuality, 0)
}

// stored reads a stored tile and splices in its level's JPEG tables.
func (s *server) stored(lv *level, zxy [3]int) ([]byte, error) {
	i := zxy[2]*lv.cols + zxy[1]
	if zxy[1] < 0 || zxy[2] < 0 || zxy[1] >= lv.cols || i >= len(lv.offsets) || i >= len(lv.counts) || lv.counts[i] > 1<<24 {
		return nil, errors.New("no such tile")
	}
	raw := make([]byte, lv.counts[i])
	if _, err := s.f.ReadAt(raw, int64(lv.offsets[i])); err != nil {
		return nil, err
	}
	return encode.SpliceJPEG(lv.tables, raw, lv.rgb), nil
}
