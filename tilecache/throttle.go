package tilecache

import (
	"log/slog"
	"sync"
	"time"
)

// logThrottle logs at most one line per kind per interval, with the number
// of failures suppressed since the last line: a dead memcached under load
// must not flood the log.
type logThrottle struct {
	log      *slog.Logger
	interval time.Duration
	mu       sync.Mutex
	kinds    map[string]*throttleState
}

type throttleState struct {
	last       time.Time
	suppressed int
}

func newLogThrottle(log *slog.Logger, interval time.Duration) *logThrottle {
	return &logThrottle{log: log, interval: interval, kinds: make(map[string]*throttleState)}
}

// warn logs msg for kind unless a line of that kind was logged within the
// interval.
func (l *logThrottle) warn(kind, msg string, err error) {
	now := time.Now()
	l.mu.Lock()
	st := l.kinds[kind]
	if st == nil {
		st = &throttleState{}
		l.kinds[kind] = st
	}
	if !st.last.IsZero() && now.Sub(st.last) < l.interval {
		st.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := st.suppressed
	st.last, st.suppressed = now, 0
	l.mu.Unlock()
	l.log.Warn(msg, "kind", kind, "err", err, "suppressed", suppressed)
}
