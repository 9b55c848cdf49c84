// Package transport is the UDP edge of the device: batched sends and
// receives of WireGuard datagrams, with an in-memory network for tests and
// platform implementations over real sockets.
package transport

import (
	"errors"
	"net/netip"
)

// ErrClosed is returned by receive functions and Send after Close.
var ErrClosed = errors.New("transport: closed")

// Endpoint is where a datagram came from or goes to. Src, when valid, is the
// local address the datagram arrived on and the one replies should leave
// from (sticky source); IfIndex is the interface it arrived on, 0 if unknown.
// It is a comparable value type.
type Endpoint struct {
	Dst     netip.AddrPort
	Src     netip.Addr
	IfIndex int32
}

// String returns the remote address.
func (e Endpoint) String() string { return e.Dst.String() }

// ReceiveFunc reads up to len(bufs) datagrams, blocking until at least one
// arrives, and returns the count; datagram i is then bufs[i][:sizes[i]],
// from eps[i]. It either copies the datagram into the caller's buffer or
// lends one of its own: it sets bufs[i] to a slice of its memory holding the
// datagram, valid until the next call of the same function (so a caller
// that keeps a datagram longer copies it, and passes its own buffers again
// on every call). A datagram longer than the caller's bufs[i] is never
// truncated: when it would be the first of a batch, the function returns 0
// and no error, so that a caller whose buffers fall short of a grown MTU
// can resize them, and it may keep the datagram for that next call; one
// that does not fit then is dropped. After the Bind is closed it returns
// ErrClosed (possibly wrapped).
type ReceiveFunc func(bufs [][]byte, sizes []int, eps []Endpoint) (n int, err error)

// Bind is a set of UDP sockets sharing one port.
type Bind interface {
	// Open binds to port (0 picks one) and returns one receive function per
	// underlying socket, each to be called from its own goroutine, and the
	// port actually bound.
	Open(port uint16) (fns []ReceiveFunc, actualPort uint16, err error)
	// Close closes the sockets; pending receive functions return ErrClosed.
	// The Bind may be opened again afterwards.
	Close() error
	// SetMark sets the firewall mark (SO_MARK) on outgoing packets where
	// the platform supports it.
	SetMark(mark uint32) error
	// Send sends each bufs[i] as one datagram to ep. The buffers are the
	// caller's again when Send returns.
	Send(bufs [][]byte, ep Endpoint) error
	// BatchSize is the most datagrams a receive function returns at once and
	// the most Send handles efficiently.
	BatchSize() int
}
