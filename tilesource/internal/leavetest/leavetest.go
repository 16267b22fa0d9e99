// Package leavetest helps test that work shared by concurrent callers (a
// strip decode, frame statistics, a local copy of an object) does not fail
// every caller when the one that started it goes away.
package leavetest

import (
	"context"
	"time"
)

// step lets each call reach its waiting point before the next event.
const step = 50 * time.Millisecond

// FirstCallerLeaves runs first with a context it then cancels and second
// with a live one, both asking for the same shared work, while the work
// cannot finish until release is called: first starts the work and waits
// inside it, second joins it, first is cancelled, then release frees the
// work. It returns both calls' errors; second's must be nil for the work
// to have outlived its first caller.
func FirstCallerLeaves(release func(), first, second func(context.Context) error) (errFirst, errSecond error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, b := make(chan error, 1), make(chan error, 1)
	go func() { a <- first(ctx) }()
	time.Sleep(step)
	go func() { b <- second(context.Background()) }()
	time.Sleep(step)
	cancel()
	time.Sleep(step)
	release()
	errSecond = <-b
	return <-a, errSecond
}
