// Package coarsedeadline enforces the read and write deadlines of a
// listener's connections by one periodic sweep instead of a runtime timer
// per deadline.
//
// net/http sets about eight deadlines per keep-alive request when its
// server has ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout
// (header, body, response, idle, and clearing them around its background
// read). On a TCP connection each one that lies in the future arms, moves
// or stops a runtime timer: 1.6 µs per request on this project's machine
// (BenchmarkRequestDeadlines), a twentieth of serving a cached tile, of
// which this package saves about half. The timeouts of a public
// server are seconds to minutes and need no microsecond precision, so
// this package records such deadlines in the connection and a sweeper
// makes the ones that have passed take effect, at most one resolution
// late. Deadlines that are near (within two resolutions), in the past
// (net/http's way of interrupting a blocked read) or cleared after being
// enforced go to the connection at once, exactly as without the package.
package coarsedeadline

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Listener wraps a net.Listener; its connections have coarse deadlines.
type Listener struct {
	net.Listener
	resolution time.Duration
	// now is the time of the last sweep (Unix nanoseconds): reading the
	// clock on every deadline would cost a good part of what a timer does
	// on this project's machine.
	now atomic.Int64

	mu     sync.Mutex
	conns  map[*conn]struct{}
	closed bool // the listener is closed: the sweeper ends with the last connection

	swept chan struct{} // closed when the sweeper has returned
}

// NewListener wraps l. A deadline further than two resolutions away (three
// from the last sweep) is enforced by a sweep every resolution, so it
// takes effect up to one resolution after it passes; a nearer one is set
// on the connection directly. The sweeper runs until the listener is
// closed and its last connection with it.
func NewListener(l net.Listener, resolution time.Duration) *Listener {
	cl := &Listener{Listener: l, resolution: resolution, conns: map[*conn]struct{}{}, swept: make(chan struct{})}
	cl.now.Store(time.Now().UnixNano())
	go cl.sweepEvery()
	return cl
}

// Accept waits for the next connection and returns it wrapped.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cc := &conn{Conn: c, l: l}
	l.mu.Lock()
	l.conns[cc] = struct{}{}
	l.mu.Unlock()
	return cc, nil
}

// Close closes the listener. Connections already accepted keep working,
// and their deadlines keep being enforced (a server shutting down waits
// for them), until the last one is closed.
func (l *Listener) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	return l.Listener.Close()
}

func (l *Listener) sweepEvery() {
	defer close(l.swept)
	t := time.NewTicker(l.resolution)
	defer t.Stop()
	for now := range t.C {
		l.now.Store(now.UnixNano())
		if !l.sweep(now) {
			return
		}
	}
}

// sweep enforces every recorded deadline that has passed by now. It
// reports whether sweeping must go on.
func (l *Listener) sweep(now time.Time) bool {
	l.mu.Lock()
	if l.closed && len(l.conns) == 0 {
		l.mu.Unlock()
		return false
	}
	conns := make([]*conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		c.enforce(now)
	}
	return true
}

func (l *Listener) forget(c *conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// conn is a connection whose far deadlines are recorded rather than set.
type conn struct {
	net.Conn
	l *Listener

	mu sync.Mutex
	// read and write are the recorded deadlines the sweeper enforces
	// (zero: none recorded).
	read, write deadline
}

// deadline is one direction's state.
type deadline struct {
	at time.Time
	// onConn is set when the connection itself carries a deadline (a near
	// one, or a recorded one the sweeper enforced), which a later far or
	// zero deadline must clear.
	onConn bool
}

// set records t, or sets it on the connection through apply when it is
// near or past. Called with c.mu held.
func (c *conn) set(d *deadline, t time.Time, apply func(time.Time) error) error {
	// The last sweep was at most one resolution ago, so a deadline more
	// than three resolutions after it is more than two from now.
	if t.IsZero() || t.UnixNano()-c.l.now.Load() > int64(3*c.l.resolution) {
		d.at = t
		if d.onConn {
			d.onConn = false
			return apply(time.Time{})
		}
		return nil
	}
	d.at = time.Time{}
	d.onConn = true
	return apply(t)
}

// SetReadDeadline implements net.Conn.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.set(&c.read, t, c.Conn.SetReadDeadline)
}

// SetWriteDeadline implements net.Conn.
func (c *conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.set(&c.write, t, c.Conn.SetWriteDeadline)
}

// SetDeadline implements net.Conn.
func (c *conn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.set(&c.read, t, c.Conn.SetReadDeadline)
	if werr := c.set(&c.write, t, c.Conn.SetWriteDeadline); err == nil {
		err = werr
	}
	return err
}

// enforce sets each recorded deadline that has passed by now on the
// connection: it lies in the past, so a blocked or later read or write
// fails with os.ErrDeadlineExceeded as it would have with a timer.
func (c *conn) enforce(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range []struct {
		d     *deadline
		apply func(time.Time) error
	}{{&c.read, c.Conn.SetReadDeadline}, {&c.write, c.Conn.SetWriteDeadline}} {
		if !d.d.at.IsZero() && !now.Before(d.d.at) {
			_ = d.apply(d.d.at) // fails only on a closed connection
			d.d.at = time.Time{}
			d.d.onConn = true
		}
	}
}

// Close implements net.Conn.
func (c *conn) Close() error {
	c.l.forget(c)
	return c.Conn.Close()
}

// ReadFrom lets io.Copy to the connection use the wrapped connection's own
// ReadFrom (sendfile or splice for a TCP connection), as net/http does
// when it sends a file.
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{c.Conn}, r)
}

// writerOnly hides every method of a writer but Write, so io.Copy does not
// call back into ReadFrom.
type writerOnly struct{ io.Writer }

// CloseWrite shuts down the writing side when the wrapped connection can
// (net/http does before closing, so the client reads the whole response).
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
