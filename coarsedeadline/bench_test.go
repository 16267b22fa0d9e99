package coarsedeadline

import (
	"net"
	"testing"
	"time"
)

// requestDeadlines makes the deadline calls net/http makes on a
// keep-alive connection for one request when its server has
// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout: the header
// and body deadlines, clearing for the background read, its interruption
// and clearing again, the response's write deadline, the idle deadline
// and clearing it when the next request arrives.
func requestDeadlines(c net.Conn) {
	now := time.Now()
	c.SetReadDeadline(now.Add(10 * time.Second))
	c.SetReadDeadline(now.Add(30 * time.Second))
	c.SetReadDeadline(time.Time{})
	c.SetReadDeadline(time.Unix(1, 0))
	c.SetReadDeadline(time.Time{})
	c.SetWriteDeadline(time.Now().Add(2 * time.Minute))
	c.SetReadDeadline(time.Now().Add(2 * time.Minute))
	c.SetReadDeadline(time.Time{})
}

// BenchmarkRequestDeadlines compares one request's deadlines on a TCP
// connection as accepted (a runtime timer per future deadline) and through
// a Listener.
func BenchmarkRequestDeadlines(b *testing.B) {
	for _, wrap := range []bool{false, true} {
		name := "tcp"
		if wrap {
			name = "coarse"
		}
		b.Run(name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			var l net.Listener = ln
			if wrap {
				l = NewListener(ln, 500*time.Millisecond)
			}
			defer l.Close()
			client, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer client.Close()
			c, err := l.Accept()
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			for b.Loop() {
				requestDeadlines(c)
			}
		})
	}
}
