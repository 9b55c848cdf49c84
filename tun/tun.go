// Package tun is the packet edge of the device: the interface through which
// plaintext IP packets enter and leave, with an in-memory implementation for
// tests and rootless use, and a Linux implementation.
package tun

import "errors"

// ErrClosed is returned by Read and Write after Close.
var ErrClosed = errors.New("tun: device closed")

// Event reports a change of the underlying interface.
type Event int

const (
	// EventUp means the interface came up.
	EventUp Event = 1 << iota
	// EventDown means the interface went down.
	EventDown
	// EventMTUUpdate means the MTU changed; call MTU to read it.
	EventMTUUpdate
	// EventDeleted means the interface is gone; the device should shut down.
	EventDeleted
)

// Device moves batches of IP packets. Buffers belong to the caller: Read
// fills bufs[i][offset:] and sets sizes[i], and may not keep any of them;
// Write sends bufs[i][offset:] and may not keep them after it returns. The
// offset is headroom the caller reserves for its own headers (the WireGuard
// transport header), so packets are encrypted and decrypted in place.
// Implementations with offloads may also use bufs[i][:offset] as scratch
// space for their own headers during Write.
type Device interface {
	// Read reads up to len(bufs) packets. It blocks until at least one is
	// available and returns how many were read. A packet larger than its
	// buffer is never truncated: when it would be the first of a batch,
	// Read returns 0 and no error, so that a caller whose buffers fall
	// short of a grown MTU can resize them, and it may keep the packet for
	// that next call; a packet that does not fit then is dropped and
	// counted by the implementation.
	Read(bufs [][]byte, sizes []int, offset int) (n int, err error)
	// Write writes the packets and returns how many were written.
	Write(bufs [][]byte, offset int) (n int, err error)
	// MTU returns the interface MTU.
	MTU() (int, error)
	// Name returns the interface name.
	Name() (string, error)
	// Events delivers interface changes; it is closed by Close.
	Events() <-chan Event
	// BatchSize is the largest number of packets Read may return at once and
	// the most Write handles efficiently.
	BatchSize() int
	// Close releases the device and unblocks Read and Write.
	Close() error
}

// BatchReader is implemented by Devices that hand what they read to a
// function while holding their read lock, so that batches taken by
// ReadFunc on one goroutine and PollFunc on others are handled in the
// order the device delivered them. A goroutine that has just written
// packets can thus pick up what the kernel answered with at once (an echo
// reply, a TCP ACK) instead of waking the reader. Buffers are used as by
// Read; handle may replace bufs[i] for later batches.
type BatchReader interface {
	// ReadFunc waits until packets are queued, then reads them into bufs
	// and calls handle(n) for each batch of n, and returns. It calls
	// handle(0) when every packet it read was too large for its buffer.
	ReadFunc(bufs [][]byte, sizes []int, offset int, handle func(n int)) error
	// PollFunc is ReadFunc without waiting: it returns false at once if
	// nothing is queued or another call is reading, and never errs (the
	// next ReadFunc reports errors).
	PollFunc(bufs [][]byte, sizes []int, offset int, handle func(n int)) bool
}
