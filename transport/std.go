package transport

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
)

// stdBind is a portable Bind over the standard library's net.UDPConn: one
// IPv4 and one IPv6 socket on the same port, one datagram per call.
type stdBind struct {
	mu   sync.Mutex
	v4   *net.UDPConn
	v6   *net.UDPConn
	mark uint32
}

// NewStdBind returns a portable Bind built on package net. It moves one
// datagram per call, never knows the local address a datagram arrived on
// (Endpoint.Src stays invalid) and ignores SetMark.
func NewStdBind() Bind { return &stdBind{} }

// bindRetries is how many times Open with port 0 tries to find a port free
// in both address families.
const bindRetries = 10

// Open implements Bind.
func (b *stdBind) Open(port uint16) ([]ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.v4 != nil || b.v6 != nil {
		return nil, 0, errors.New("transport: bind already open")
	}
	v4, v6, actual, err := bindPair(listenStd, port)
	if err != nil {
		return nil, 0, err
	}
	b.v4, b.v6 = v4, v6
	return stdReceivers(v4, v6), actual, nil
}

// stdReceivers returns the receive functions of the sockets that exist.
func stdReceivers(v4, v6 *net.UDPConn) []ReceiveFunc {
	var fns []ReceiveFunc
	if v4 != nil {
		fns = append(fns, stdReceiver(v4))
	}
	if v6 != nil {
		fns = append(fns, stdReceiver(v6))
	}
	return fns
}

// bindPair calls listenPair, retrying when port is 0 and the port the IPv4
// socket picked is already taken for IPv6.
func bindPair(listen func(network string, port uint16) (*net.UDPConn, error), port uint16) (v4, v6 *net.UDPConn, actual uint16, err error) {
	tries := 1
	if port == 0 {
		tries = bindRetries
	}
	for range tries {
		v4, v6, actual, err = listenPair(listen, port)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	return v4, v6, actual, err
}

// listenStd binds a wildcard UDP socket of network ("udp4" or "udp6").
func listenStd(network string, port uint16) (*net.UDPConn, error) {
	return net.ListenUDP(network, &net.UDPAddr{Port: int(port)})
}

// listenPair binds an IPv4 and an IPv6 socket to port with listen (0: the
// IPv4 socket picks one and the IPv6 socket takes the same). A family the
// host does not support is left out; if neither can be bound the error is
// returned.
func listenPair(listen func(network string, port uint16) (*net.UDPConn, error), port uint16) (v4, v6 *net.UDPConn, actual uint16, err error) {
	v4, err4 := listen("udp4", port)
	if err4 != nil && !familyUnsupported(err4) {
		return nil, nil, 0, fmt.Errorf("transport: listen udp4 port %d: %w", port, err4)
	}
	if v4 != nil {
		port = uint16(v4.LocalAddr().(*net.UDPAddr).Port)
	}
	v6, err6 := listen("udp6", port)
	if err6 != nil && !familyUnsupported(err6) {
		if v4 != nil {
			v4.Close()
		}
		return nil, nil, 0, fmt.Errorf("transport: listen udp6 port %d: %w", port, err6)
	}
	if v4 == nil && v6 == nil {
		return nil, nil, 0, fmt.Errorf("transport: no usable address family: %w", errors.Join(err4, err6))
	}
	if v6 != nil {
		port = uint16(v6.LocalAddr().(*net.UDPAddr).Port)
	}
	return v4, v6, port, nil
}

// familyUnsupported reports whether err says the address family is not
// available on this host (for example IPv6 disabled).
func familyUnsupported(err error) bool {
	return errors.Is(err, syscall.EAFNOSUPPORT) ||
		errors.Is(err, syscall.EADDRNOTAVAIL) ||
		errors.Is(err, syscall.EPROTONOSUPPORT)
}

// stdReceiver returns a ReceiveFunc reading one datagram at a time from c.
func stdReceiver(c *net.UDPConn) ReceiveFunc {
	return func(bufs [][]byte, sizes []int, eps []Endpoint) (int, error) {
		if len(bufs) == 0 {
			return 0, nil
		}
		for {
			n, _, flags, from, err := c.ReadMsgUDPAddrPort(bufs[0], nil)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return 0, fmt.Errorf("%w: %w", ErrClosed, err)
				}
				if isTransientRecvErr(err) {
					continue
				}
				return 0, fmt.Errorf("transport: receive: %w", err)
			}
			if flags&msgTrunc != 0 {
				// Larger than the buffer: drop rather than deliver a
				// prefix, and let the caller grow its buffers.
				return 0, nil
			}
			sizes[0] = n
			eps[0] = Endpoint{Dst: netip.AddrPortFrom(from.Addr().Unmap(), from.Port())}
			return 1, nil
		}
	}
}

// isTransientRecvErr reports receive errors that concern one datagram or
// a signal, not the socket, so the caller should simply read again.
func isTransientRecvErr(err error) bool {
	return errors.Is(err, syscall.EINTR) ||
		errors.Is(err, syscall.EAGAIN) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EMSGSIZE)
}

// Close implements Bind.
func (b *stdBind) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var err4, err6 error
	if b.v4 != nil {
		err4 = b.v4.Close()
	}
	if b.v6 != nil {
		err6 = b.v6.Close()
	}
	b.v4, b.v6 = nil, nil
	return errors.Join(err4, err6)
}

// SetMark implements Bind. The portable bind cannot set a firewall mark; it
// records the value and otherwise ignores it.
func (b *stdBind) SetMark(mark uint32) error {
	b.mu.Lock()
	b.mark = mark
	b.mu.Unlock()
	return nil
}

// BatchSize implements Bind.
func (b *stdBind) BatchSize() int { return 1 }

// Send implements Bind. It sends from the socket of ep.Dst's address family,
// treating IPv4-mapped IPv6 addresses as IPv4.
func (b *stdBind) Send(bufs [][]byte, ep Endpoint) error {
	dst := netip.AddrPortFrom(ep.Dst.Addr().Unmap(), ep.Dst.Port())
	if !dst.IsValid() {
		return fmt.Errorf("transport: invalid destination %v", ep.Dst)
	}
	b.mu.Lock()
	c := b.v6
	if dst.Addr().Is4() {
		c = b.v4
	}
	open := b.v4 != nil || b.v6 != nil
	b.mu.Unlock()
	if !open {
		return ErrClosed
	}
	if c == nil {
		return fmt.Errorf("transport: no socket for the address family of %v", dst)
	}
	for _, buf := range bufs {
		if _, err := c.WriteToUDPAddrPort(buf, dst); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("%w: %w", ErrClosed, err)
			}
			return fmt.Errorf("transport: send to %v: %w", dst, err)
		}
	}
	return nil
}
