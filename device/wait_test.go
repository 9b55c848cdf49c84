package device

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gotatun/gotatun/noise"
)

func TestWaitHandshake(t *testing.T) {
	pr := newPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := pr.a.d.WaitHandshake(ctx, pr.b.pub, time.Time{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("before any packet: %v, want a deadline error", err)
	}

	done := make(chan error, 1)
	go func() {
		at, err := pr.a.d.WaitHandshake(context.Background(), pr.b.pub, time.Time{})
		if err == nil && !at.Equal(testEpoch) {
			t.Errorf("handshake at %v, want %v", at, testEpoch)
		}
		done <- err
	}()
	pr.ping(t, "wake")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("WaitHandshake did not return after the handshake")
	}

	var other noise.PublicKey
	other[0] = 1
	if _, err := pr.a.d.WaitHandshake(context.Background(), other, time.Time{}); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("unknown peer: %v", err)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		pr.b.d.Close()
	}()
	if _, err := pr.b.d.WaitHandshake(context.Background(), pr.a.pub, testEpoch.Add(time.Hour)); !errors.Is(err, ErrClosed) {
		t.Fatalf("closing device: %v, want ErrClosed", err)
	}
}
