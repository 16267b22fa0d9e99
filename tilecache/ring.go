package tilecache

import (
	"cmp"
	"errors"
	"net"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/cespare/xxhash/v2"
)

// DefaultVirtualNodes is the number of ring points per server. More points
// spread keys more evenly; 160 is what ketama uses.
const DefaultVirtualNodes = 160

// errServerDown is returned for a server that failed recently and is skipped
// until its retry time, so a dead server costs no dial per request.
var errServerDown = errors.New("tilecache: memcached server marked down")

// Ring is a consistent-hash memcache.ServerSelector: each server owns many
// points on a 64-bit ring and a key goes to the first point at or after its
// hash. Removing one of N servers moves only about 1/N of the keys, where
// gomemcache's default ServerList (hash modulo N) moves most of them.
//
// A server reported failed with MarkDown is skipped (its keys miss) until
// the retry interval has passed.
type Ring struct {
	addrs  []net.Addr
	points []ringPoint
	down   []atomic.Int64 // unix nanos until which server i is skipped
	retry  time.Duration
}

type ringPoint struct {
	hash   uint64
	server int
}

// NewRing builds a ring over servers ("host:port" or a unix socket path)
// with vnodes points each (DefaultVirtualNodes if <= 0). Points depend only
// on the server addresses as written, so every replica given the same list
// computes the same ring whatever the order.
func NewRing(servers []string, vnodes int, retry time.Duration) (*Ring, error) {
	if len(servers) == 0 {
		return nil, memcache.ErrNoServers
	}
	if vnodes <= 0 {
		vnodes = DefaultVirtualNodes
	}
	r := &Ring{retry: retry, down: make([]atomic.Int64, len(servers))}
	for i, s := range servers {
		a, err := resolveServer(s)
		if err != nil {
			return nil, err
		}
		r.addrs = append(r.addrs, a)
		buf := make([]byte, 0, len(s)+12)
		for v := range vnodes {
			buf = append(buf[:0], s...)
			buf = append(buf, '#')
			buf = strconv.AppendInt(buf, int64(v), 10)
			r.points = append(r.points, ringPoint{hash: xxhash.Sum64(buf), server: i})
		}
	}
	slices.SortFunc(r.points, func(a, b ringPoint) int {
		if a.hash != b.hash {
			if a.hash < b.hash {
				return -1
			}
			return 1
		}
		// Ties (vanishingly rare) resolve by address so all replicas agree.
		return cmp.Compare(servers[a.server], servers[b.server])
	})
	return r, nil
}

func resolveServer(s string) (net.Addr, error) {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			a, err := net.ResolveUnixAddr("unix", s)
			if err != nil {
				return nil, err
			}
			return staticAddr{"unix", a.String()}, nil
		}
	}
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		return nil, err
	}
	return staticAddr{"tcp", a.String()}, nil
}

// staticAddr avoids re-formatting addresses: gomemcache calls String() on
// every operation to find its idle connections.
type staticAddr struct{ network, addr string }

func (a staticAddr) Network() string { return a.network }
func (a staticAddr) String() string  { return a.addr }

// index returns the server owning key.
func (r *Ring) index(key string) int {
	if len(r.addrs) == 1 {
		return 0
	}
	h := xxhash.Sum64String(key)
	i, _ := slices.BinarySearchFunc(r.points, h, func(p ringPoint, h uint64) int {
		switch {
		case p.hash < h:
			return -1
		case p.hash > h:
			return 1
		}
		return 0
	})
	if i == len(r.points) {
		i = 0
	}
	return r.points[i].server
}

// Server returns the address owning key, whether or not it is marked down.
func (r *Ring) Server(key string) net.Addr { return r.addrs[r.index(key)] }

// PickServer implements memcache.ServerSelector. Once a down server's
// retry time has passed, a single caller is let through to probe it while
// the others keep missing, so a black-holed server does not stall every
// request for a timeout each retry interval.
func (r *Ring) PickServer(key string) (net.Addr, error) {
	i := r.index(key)
	if until := r.down[i].Load(); until != 0 {
		now := time.Now().UnixNano()
		if now < until || !r.down[i].CompareAndSwap(until, now+int64(r.retry)) {
			return nil, errServerDown
		}
	}
	return r.addrs[i], nil
}

// Each implements memcache.ServerSelector.
func (r *Ring) Each(f func(net.Addr) error) error {
	for _, a := range r.addrs {
		if err := f(a); err != nil {
			return err
		}
	}
	return nil
}

// MarkDown makes the server owning key skipped for the retry interval. It
// reports whether the server was up before, so that the caller drops idle
// connections once per outage.
func (r *Ring) MarkDown(key string) bool {
	i := r.index(key)
	now := time.Now().UnixNano()
	prev := r.down[i].Swap(now + int64(r.retry))
	return prev == 0 || prev <= now
}

// markUp clears the down mark of the server owning key after it answered.
func (r *Ring) markUp(key string) {
	i := r.index(key)
	if r.down[i].Load() != 0 {
		r.down[i].Store(0)
	}
}
