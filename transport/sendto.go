package transport

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// MultiSender is a Bind that sends datagrams to several endpoints in one
// call, as a device answering a flood of handshake messages from many
// sources does with its cookie replies. Where a Bind lacks it, callers send
// one datagram per Send.
type MultiSender interface {
	// SendTo sends bufs[i] as one datagram to eps[i], for every i below
	// len(bufs) (eps is at least as long). A datagram that cannot be sent
	// does not stop the others; the first error is returned. The buffers
	// are the caller's again when SendTo returns.
	SendTo(bufs [][]byte, eps []Endpoint) error
}

// errShortEndpoints is returned by SendTo when eps is shorter than bufs.
var errShortEndpoints = errors.New("transport: SendTo with fewer endpoints than datagrams")

// SendTo implements MultiSender, one system call per datagram.
func (b *stdBind) SendTo(bufs [][]byte, eps []Endpoint) error {
	if len(eps) < len(bufs) {
		return errShortEndpoints
	}
	b.mu.Lock()
	v4, v6 := b.v4, b.v6
	b.mu.Unlock()
	if v4 == nil && v6 == nil {
		return ErrClosed
	}
	var first error
	for i, buf := range bufs {
		dst := netip.AddrPortFrom(eps[i].Dst.Addr().Unmap(), eps[i].Dst.Port())
		c := v6
		if dst.Addr().Is4() {
			c = v4
		}
		var err error
		switch {
		case !dst.IsValid():
			err = fmt.Errorf("transport: invalid destination %v", eps[i].Dst)
		case c == nil:
			err = fmt.Errorf("transport: no socket for the address family of %v", dst)
		default:
			if _, err = c.WriteToUDPAddrPort(buf, dst); err != nil {
				if errors.Is(err, net.ErrClosed) {
					return fmt.Errorf("%w: %w", ErrClosed, err)
				}
				err = fmt.Errorf("transport: send to %v: %w", dst, err)
			}
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// SendTo implements MultiSender.
func (b *memBind) SendTo(bufs [][]byte, eps []Endpoint) error {
	if len(eps) < len(bufs) {
		return errShortEndpoints
	}
	for i := range bufs {
		if err := b.Send(bufs[i:i+1], eps[i]); err != nil {
			return err
		}
	}
	return nil
}
