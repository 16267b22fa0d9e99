package tilecache

import (
	"strconv"
	"testing"
	"time"
)

func TestZZOpenTiming(t *testing.T) {
	cfg := diskConfig(t.TempDir())
	cfg.DiskBytes = 1 << 40
	t0 := time.Now()
	tc, _ := New(cfg)
	t.Log("new", time.Since(t0))
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
	t0 = time.Now()
	tc.Close()
	t.Log("close+flush", time.Since(t0))
	for range 2 {
		t0 = time.Now()
		tc, _ = New(cfg)
		t.Log("open", time.Since(t0))
		t0 = time.Now()
		tc.Close()
		t.Log("close", time.Since(t0))
	}
}
