package device

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gotatun/gotatun/noise"
)

// ErrUnknownPeer is returned for a public key that is not a peer of the
// device.
var ErrUnknownPeer = errors.New("device: no such peer")

// handshakePoll is how often WaitHandshake looks.
const handshakePoll = 10 * time.Millisecond

// WaitHandshake waits until a handshake with the peer pub completes after
// the call (or has completed at or after since, if since is not zero),
// and returns the time it completed. It does not start one: a packet for
// the peer, a persistent keepalive or the peer itself does. It fails with
// ErrUnknownPeer when the peer is or becomes unknown, ErrClosed when the
// device closes, and ctx's error, wrapped, when ctx is done first.
func (d *Device) WaitHandshake(ctx context.Context, pub noise.PublicKey, since time.Time) (time.Time, error) {
	if since.IsZero() {
		since = d.clock.Now()
	}
	t := time.NewTicker(handshakePoll)
	defer t.Stop()
	for {
		p := d.peer(pub)
		if p == nil {
			return time.Time{}, fmt.Errorf("%w: %s", ErrUnknownPeer, pub)
		}
		if ns := p.lastHandshake.Load(); ns != 0 && ns >= since.UnixNano() {
			return time.Unix(0, ns), nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("device: waiting for a handshake with %s: %w", pub, ctx.Err())
		case <-d.done:
			return time.Time{}, ErrClosed
		case <-t.C:
		}
	}
}
