package tilecache

import "sync/atomic"

// writeQueue is the bounded queue of a tier's background writes, so that a
// response never waits for a slow tier. Tiers embed it; closed is set by
// the tier's close.
type writeQueue[T any] struct {
	queue   chan T
	closed  atomic.Bool
	pending atomic.Int64 // queued or being written
	dropped atomic.Uint64
}

func newWriteQueue[T any](size int) writeQueue[T] {
	return writeQueue[T]{queue: make(chan T, size)}
}

// push queues w without blocking; once the tier is closed, or when the
// queue is full, w is dropped.
func (q *writeQueue[T]) push(w T) {
	if q.closed.Load() {
		q.dropped.Add(1)
		return
	}
	q.pending.Add(1)
	select {
	case q.queue <- w:
	default:
		q.pending.Add(-1)
		q.dropped.Add(1)
	}
}

// drain runs write on each queued item until done is closed; run it in
// the tier's writer goroutines.
func (q *writeQueue[T]) drain(done <-chan struct{}, write func(T)) {
	for {
		select {
		case w := <-q.queue:
			write(w)
			q.pending.Add(-1)
		case <-done:
			return
		}
	}
}
