package coarsedeadline

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pair returns the server side of a loopback connection accepted through
// a Listener of the given resolution, and the client side.
func pair(t *testing.T, resolution time.Duration) (*Listener, net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(ln, resolution)
	t.Cleanup(func() { l.Close() })
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return l, server, client
}

// readErr reads one byte from c in the background.
func readErr(c net.Conn) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		done <- err
	}()
	return done
}

func wait(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the read is still blocked after 10 s")
		return nil
	}
}

func TestFarDeadlineIsEnforcedBySweep(t *testing.T) {
	_, server, _ := pair(t, 10*time.Millisecond)
	deadline := time.Now().Add(200 * time.Millisecond)
	if err := server.SetReadDeadline(deadline); err != nil {
		t.Fatal(err)
	}
	err := wait(t, readErr(server))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read error %v, want os.ErrDeadlineExceeded", err)
	}
	if now := time.Now(); now.Before(deadline) {
		t.Fatalf("the read failed %v before its deadline", deadline.Sub(now))
	}
}

func TestClearingAnEnforcedDeadlineLetsReadsWork(t *testing.T) {
	_, server, client := pair(t, 10*time.Millisecond)
	if err := server.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, readErr(server)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read error %v, want os.ErrDeadlineExceeded", err)
	}
	// net/http sets the next request's deadline (far) or clears it.
	for _, next := range []time.Time{{}, time.Now().Add(time.Hour)} {
		if err := server.SetReadDeadline(next); err != nil {
			t.Fatal(err)
		}
		done := readErr(server)
		if _, err := client.Write([]byte{'x'}); err != nil {
			t.Fatal(err)
		}
		if err := wait(t, done); err != nil {
			t.Fatalf("deadline %v: read error %v after the enforced one was replaced", next, err)
		}
	}
}

func TestPastAndNearDeadlinesTakeEffectAtOnce(t *testing.T) {
	// A resolution of an hour: only the connection's own timer can end
	// these reads.
	_, server, _ := pair(t, time.Hour)
	done := readErr(server)
	time.Sleep(20 * time.Millisecond) // let the read block
	// net/http interrupts its background read this way.
	if err := server.SetReadDeadline(time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, done); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("past deadline: read error %v, want os.ErrDeadlineExceeded", err)
	}
	if err := server.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, readErr(server)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("near deadline: read error %v, want os.ErrDeadlineExceeded", err)
	}
}

func TestWriteDeadline(t *testing.T) {
	_, server, _ := pair(t, 10*time.Millisecond)
	if err := server.SetDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	// The client never reads: the socket buffers fill and the write
	// blocks until the deadline is enforced.
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 1<<20)
		for {
			if _, err := server.Write(buf); err != nil {
				done <- err
				return
			}
		}
	}()
	if err := wait(t, done); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write error %v, want os.ErrDeadlineExceeded", err)
	}
}

// serve runs an http.Server with net/http's four timeouts on a Listener.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(ln, 10*time.Millisecond)
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 200 * time.Millisecond, ReadTimeout: time.Second,
		WriteTimeout: time.Second, IdleTimeout: 300 * time.Millisecond}
	go hs.Serve(l)
	t.Cleanup(func() {
		hs.Close()
		select {
		case <-l.swept:
		case <-time.After(10 * time.Second):
			t.Error("the sweeper still runs after the server closed")
		}
	})
	return ln.Addr().String()
}

func TestHTTPServerTimeoutsAndKeepAlive(t *testing.T) {
	body := bytes.Repeat([]byte("tile"), 5000)
	path := filepath.Join(t.TempDir(), "slide.bin")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/mem", func(w http.ResponseWriter, _ *http.Request) { w.Write(body) })
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, path) })
	addr := serve(t, mux)

	// Keep-alive: many requests on one connection, each answered in full,
	// the file through the wrapped connection's ReadFrom.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i := range 20 {
		p := []string{"/mem", "/file"}[i%2]
		if _, err := io.WriteString(c, "GET "+p+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		got, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("request %d (%s): %d bytes, err %v; want the %d bytes", i, p, len(got), err, len(body))
		}
	}
	// Idle past IdleTimeout: the server closes the connection.
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: read %v, want EOF from the server closing it", err)
	}

	// A client that never finishes its headers is cut off after
	// ReadHeaderTimeout.
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	start := time.Now()
	if _, err := io.WriteString(slow, "GET /mem HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, err := io.ReadAll(slow)
	if err != nil {
		t.Fatalf("slow client: %v (the server did not close the connection)", err)
	}
	if len(rest) != 0 && !strings.HasPrefix(string(rest), "HTTP/1.1 408") {
		t.Fatalf("slow client got %q", rest)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("slow client cut off after %v, before ReadHeaderTimeout", d)
	}
}
