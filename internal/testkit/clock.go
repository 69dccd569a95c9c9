package testkit

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// Advance moves a testing/synctest bubble's clock d ahead — every timer
// due meanwhile fires, in order — and returns once every other goroutine
// of the bubble is blocked again. Only inside synctest.Test, where it
// takes no wall-clock time; called by one goroutine of a bubble at a time.
func Advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// Background runs f until the test ends: its context is then cancelled,
// and the test waits for f to return. An error f returns fails the test.
func Background(t testing.TB, f func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}
