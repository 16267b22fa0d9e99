package tilecache

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

const (
	// valueFlags marks items written by this package, so a memcached shared
	// with other applications never serves their values as tiles.
	valueFlags = 0x7453
	// itemOverhead approximates memcached's per-item header, which counts
	// against its -I item size limit along with key and value.
	itemOverhead = 96
	// maxRelativeTTL is memcached's limit for relative expirations; larger
	// values are read as absolute Unix times.
	maxRelativeTTL = 30 * 24 * 3600
)

// mcTier is the memcached tier. Reads are synchronous (bounded by the
// client timeout); writes go through a bounded queue so a response never
// waits for memcached.
type mcTier struct {
	client  *memcache.Client
	ring    *Ring
	servers []string
	maxItem int
	ttl     time.Duration
	timeout time.Duration
	log     *logThrottle

	writeQueue[mcWrite]
	done chan struct{}
	wg   sync.WaitGroup

	hits, misses, errors, skipped, writes atomic.Uint64
}

type mcWrite struct {
	key string
	val []byte
}

func newMCTier(cfg Config) (*mcTier, error) {
	ring, err := NewRing(cfg.MemcachedServers, DefaultVirtualNodes, cfg.RetryInterval)
	if err != nil {
		return nil, err
	}
	c := memcache.NewFromSelector(ring)
	c.Timeout = cfg.Timeout
	c.MaxIdleConns = cfg.MaxIdleConns
	t := &mcTier{
		client:     c,
		ring:       ring,
		servers:    append([]string(nil), cfg.MemcachedServers...),
		maxItem:    cfg.MemcachedMaxItemBytes,
		ttl:        cfg.TTL,
		timeout:    cfg.Timeout,
		log:        newLogThrottle(cfg.Logger, cfg.LogInterval),
		writeQueue: newWriteQueue[mcWrite](cfg.WriteQueue),
		done:       make(chan struct{}),
	}
	for range cfg.Writers {
		t.wg.Add(1)
		go t.writer()
	}
	return t, nil
}

// mcKey is the memcached name of key: Tiered passes shared names, which
// are used as they are.
func mcKey(key string) string {
	if memcachedSafe(key) {
		return key
	}
	return sharedKey("", key)
}

// get returns the value for key; every failure is a miss.
func (t *mcTier) get(key string) ([]byte, bool) {
	mk := mcKey(key)
	it, err := t.client.Get(mk)
	if err != nil {
		t.misses.Add(1)
		if err == memcache.ErrCacheMiss {
			t.ring.markUp(mk)
		} else {
			t.fail("get", mk, err)
		}
		return nil, false
	}
	t.ring.markUp(mk)
	if it.Flags != valueFlags {
		t.misses.Add(1)
		return nil, false
	}
	t.hits.Add(1)
	return it.Value, true
}

// setAsync queues a write; it never blocks. Values too large for the
// servers' item limit are skipped, and writes beyond the queue are dropped.
func (t *mcTier) setAsync(key string, val []byte) {
	mk := mcKey(key)
	if len(mk)+len(val)+itemOverhead > t.maxItem {
		t.skipped.Add(1)
		return
	}
	t.push(mcWrite{mk, val})
}

func (t *mcTier) writer() {
	defer t.wg.Done()
	t.drain(t.done, t.write)
}

func (t *mcTier) write(w mcWrite) {
	err := t.client.Set(&memcache.Item{Key: w.key, Value: w.val, Flags: valueFlags, Expiration: t.expiration()})
	if err != nil {
		t.fail("set", w.key, err)
		return
	}
	t.ring.markUp(w.key)
	t.writes.Add(1)
}

func (t *mcTier) expiration() int32 {
	secs := int64(t.ttl / time.Second)
	if secs <= 0 {
		return 0
	}
	if secs > maxRelativeTTL {
		return int32(time.Now().Unix() + secs)
	}
	return int32(secs)
}

// fail records a memcached failure. Connection-level failures mark the
// server down for the retry interval and drop idle connections, which may be
// stale after a restart; each kind of failure is logged at a throttled rate.
func (t *mcTier) fail(kind, key string, err error) {
	if errors.Is(err, errServerDown) {
		return
	}
	t.errors.Add(1)
	if isConnError(err) {
		addr := t.ring.Server(key).String()
		if t.ring.MarkDown(key) {
			t.client.Close()
		}
		t.log.warn(kind+" "+addr, "memcached unavailable; serving without it", err)
		return
	}
	t.log.warn(kind, "memcached error; treated as a miss", err)
}

func isConnError(err error) bool {
	var ne net.Error
	var cte *memcache.ConnectTimeoutError
	return errors.As(err, &ne) || errors.As(err, &cte) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, net.ErrClosed)
}

func (t *mcTier) flush() error { return t.client.FlushAll() }

func (t *mcTier) close() {
	if t.closed.Swap(true) {
		return
	}
	close(t.done)
	t.wg.Wait()
	t.client.Close()
}

// ServerStat is one memcached server's own view of its cache, as reported
// by its "stats" command.
type ServerStat struct {
	Addr string `json:"addr"`
	// LimitMaxBytes is the server's memory limit (-m).
	LimitMaxBytes int64 `json:"limit_maxbytes"`
	// Bytes is the memory used by items.
	Bytes int64 `json:"bytes"`
	// CurrItems is the number of items stored.
	CurrItems int64 `json:"curr_items"`
	// Err is set when the server could not be asked; the numbers are 0.
	Err error `json:"-"`
}

func (t *mcTier) serverStats(ctx context.Context) []ServerStat {
	out := make([]ServerStat, len(t.ring.addrs))
	var wg sync.WaitGroup
	for i, a := range t.ring.addrs {
		wg.Go(func() {
			out[i] = readServerStats(ctx, a, t.timeout)
		})
	}
	wg.Wait()
	return out
}

func readServerStats(ctx context.Context, addr net.Addr, timeout time.Duration) ServerStat {
	st := ServerStat{Addr: addr.String()}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	d := net.Dialer{Deadline: deadline}
	nc, err := d.DialContext(ctx, addr.Network(), addr.String())
	if err != nil {
		st.Err = err
		return st
	}
	defer nc.Close()
	_ = nc.SetDeadline(deadline)
	if _, err := io.WriteString(nc, "stats\r\n"); err != nil {
		st.Err = err
		return st
	}
	r := bufio.NewReader(nc)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			st.Err = err
			return st
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "END" {
			return st
		}
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "STAT" {
			if strings.HasPrefix(line, "ERROR") || strings.HasPrefix(line, "SERVER_ERROR") || strings.HasPrefix(line, "CLIENT_ERROR") {
				st.Err = errors.New("memcached stats: " + line)
				return st
			}
			continue
		}
		v, _ := strconv.ParseInt(f[2], 10, 64)
		switch f[1] {
		case "limit_maxbytes":
			st.LimitMaxBytes = v
		case "bytes":
			st.Bytes = v
		case "curr_items":
			st.CurrItems = v
		}
	}
}
