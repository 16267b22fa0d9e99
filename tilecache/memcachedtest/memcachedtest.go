// Package memcachedtest starts real memcached processes for tests.
//
// The binary is looked up as "memcached" on PATH, then at /usr/bin/memcached. When it is missing a test is skipped, except under
// CI=true where it fails: CI must exercise the real server.
package memcachedtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// debianBinary is where Debian's memcached package installs the server,
// tried when memcached is not on PATH.
const debianBinary = "/usr/bin/memcached"

// Server is one memcached child process.
type Server struct {
	// Addr is "127.0.0.1:port".
	Addr string
	// Port is the TCP port, kept across Restart.
	Port int

	t      testing.TB
	bin    string
	args   []string
	mu     sync.Mutex
	cmd    *exec.Cmd
	out    *bytes.Buffer
	waitCh chan error
}

// Start launches `memcached -l 127.0.0.1 -p <free port> -U 0 -m 64 -I 2m`
// plus extra args, waits until it accepts connections and stops it in
// t.Cleanup.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("memcached")
	if err != nil {
		if _, serr := os.Stat(debianBinary); serr == nil {
			bin, err = debianBinary, nil
		}
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("memcached binary not found on PATH (install the Debian package memcached): %v", err)
		}
		t.Skipf("memcached binary not found on PATH: %v", err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Port: port, t: t, bin: bin}
	s.args = append([]string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-m", "64", "-I", "2m"}, extra...)
	if os.Geteuid() == 0 {
		// memcached refuses to run as root without -u.
		s.args = append(s.args, "-u", "root")
	}
	t.Cleanup(s.Stop)
	s.Restart()
	return s
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Restart starts the server again on the same port (after Stop or Kill)
// and waits until it accepts connections. It fails the test if the server
// does not come up within 10 s.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatalf("memcached on %s is already running", s.Addr)
	}
	out := &bytes.Buffer{}
	cmd := exec.Command(s.bin, s.args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("starting memcached: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		select {
		case werr := <-exited:
			s.t.Fatalf("memcached exited before accepting connections: %v; output: %s", werr, out.String())
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			s.t.Fatalf("memcached did not accept connections on %s within 10s; output: %s", s.Addr, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.cmd, s.out = cmd, out
	s.waitCh = exited
}

// Stop kills the server (SIGKILL, as a crash would) and waits for it to
// exit. It is safe to call when the server is not running.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.waitCh
	s.cmd = nil
}

// String describes the server for test messages.
func (s *Server) String() string { return fmt.Sprintf("memcached@%s", s.Addr) }
