package work

import (
	"context"
	"errors"
	"runtime"
	"testing"
)

func TestQueueFullRefuses(t *testing.T) {
	b := New(100, 1)
	rel, err := b.Acquire(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		r, err := b.Acquire(context.Background(), 10)
		if err == nil {
			r()
		}
		got <- err
	}()
	for b.Stats().Queued < 1 {
		runtime.Gosched()
	}
	if _, err := b.Acquire(context.Background(), 10); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("third caller: %v, want ErrOverloaded", err)
	}
	rel()
	if err := <-got; err != nil {
		t.Fatalf("queued caller: %v", err)
	}
	if s := b.Stats(); s.Used != 0 || s.Refused != 1 || s.Acquired != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestForegroundBeforeBackground(t *testing.T) {
	b := New(100, 4)
	rel, _ := b.Acquire(context.Background(), 100)
	order := make(chan Priority, 2)
	bgCtx := WithPriority(context.Background(), Background)
	go func() {
		r, err := b.Acquire(bgCtx, 40)
		if err == nil {
			order <- Background
			r()
		}
	}()
	for b.Stats().QueuedBackground < 1 {
		runtime.Gosched()
	}
	go func() {
		r, err := b.Acquire(context.Background(), 100)
		if err == nil {
			order <- Foreground
			r()
		}
	}()
	for b.Stats().Queued < 1 {
		runtime.Gosched()
	}
	rel()
	if first := <-order; first != Foreground {
		t.Fatal("background work went before a waiting request")
	}
	<-order
}

func TestBackgroundUsesHalf(t *testing.T) {
	b := New(100, 4)
	bgCtx := WithPriority(context.Background(), Background)
	r1, err := b.Acquire(bgCtx, 50)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bgCtx)
	cancel()
	if _, err := b.Acquire(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	// A request still has the other half.
	r2, err := b.Acquire(context.Background(), 50)
	if err != nil {
		t.Fatal(err)
	}
	r1()
	r2()
	if s := b.Stats(); s.Used != 0 || s.Queued != 0 || s.QueuedBackground != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestCancelledWaiterLeavesQueue(t *testing.T) {
	b := New(10, 2)
	rel, _ := b.Acquire(context.Background(), 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := b.Acquire(ctx, 5)
		done <- err
	}()
	for b.Stats().Queued < 1 {
		runtime.Gosched()
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	rel()
	if s := b.Stats(); s.Used != 0 || s.Queued != 0 {
		t.Fatalf("stats %+v", s)
	}
}
