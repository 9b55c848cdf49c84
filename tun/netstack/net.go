package netstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// Dial connects to address on the named network through the tunnel.
// Networks are "tcp", "tcp4", "tcp6", "udp", "udp4" and "udp6"; the host
// may be a name, looked up with the tunnel's DNS servers.
func (s *Stack) Dial(network, address string) (net.Conn, error) {
	return s.DialContext(context.Background(), network, address)
}

// DialContext is Dial with a context that bounds the lookup and the
// connection attempts. Errors are *net.OpError; a refused connection
// wraps syscall.ECONNREFUSED, an unreachable one syscall.EHOSTUNREACH or
// syscall.ENETUNREACH, a timeout syscall.ETIMEDOUT or the context's error.
func (s *Stack) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	fam, udpNet, err := parseNetwork(network)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	host, port, err := splitHostPort(address)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	addrs, err := s.lookupFamily(ctx, host, fam)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	var first error
	for _, a := range addrs {
		ap := netip.AddrPortFrom(a, port)
		var c net.Conn
		if udpNet {
			c, err = s.DialUDPAddrPort(netip.AddrPort{}, ap)
		} else {
			c, err = s.DialTCPAddrPort(ctx, ap)
		}
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

// DialTCPAddrPort connects to addr over TCP.
func (s *Stack) DialTCPAddrPort(ctx context.Context, addr netip.AddrPort) (*gonet.TCPConn, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(addr), Err: err}
	}
	fa, proto, err := s.fullAddr(addr)
	if err != nil {
		return nil, opErr(err)
	}
	if err := ctx.Err(); err != nil {
		return nil, opErr(err)
	}
	wq := new(waiter.Queue)
	ep, terr := s.stack.NewEndpoint(tcp.ProtocolNumber, proto, wq)
	if terr != nil {
		return nil, opErr(translate(terr))
	}
	entry, ch := waiter.NewChannelEntry(waiter.WritableEvents)
	wq.EventRegister(&entry)
	defer wq.EventUnregister(&entry)
	terr = ep.Connect(fa)
	if _, ok := terr.(*tcpip.ErrConnectStarted); ok {
		select {
		case <-ctx.Done():
			ep.Close()
			return nil, opErr(ctx.Err())
		case <-ch:
		}
		terr = ep.LastError()
	}
	if terr != nil {
		ep.Close()
		return nil, opErr(translate(terr))
	}
	return gonet.NewTCPConn(wq, ep), nil
}

// DialUDPAddrPort opens a UDP socket bound to laddr (any address and a
// free port if it is the zero value) and, if raddr is valid, connected
// to it.
func (s *Stack) DialUDPAddrPort(laddr, raddr netip.AddrPort) (*gonet.UDPConn, error) {
	var lfa, rfa *tcpip.FullAddress
	var proto tcpip.NetworkProtocolNumber
	for _, x := range []struct {
		ap  netip.AddrPort
		dst **tcpip.FullAddress
	}{{laddr, &lfa}, {raddr, &rfa}} {
		if !x.ap.Addr().IsValid() && x.ap.Port() == 0 {
			continue
		}
		if !x.ap.Addr().IsValid() {
			fa := tcpip.FullAddress{NIC: nicID, Port: x.ap.Port()}
			*x.dst = &fa
			continue
		}
		fa, p, err := s.fullAddr(x.ap)
		if err != nil {
			return nil, &net.OpError{Op: "dial", Net: "udp", Addr: net.UDPAddrFromAddrPort(x.ap), Err: err}
		}
		if x.ap.Addr().IsUnspecified() {
			fa.Addr = tcpip.Address{}
		}
		*x.dst = &fa
		proto = p
	}
	if proto == 0 {
		proto = ipv4.ProtocolNumber
		if !s.hasV4 {
			proto = ipv6.ProtocolNumber
		}
	}
	c, err := gonet.DialUDP(s.stack, lfa, rfa, proto)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Listen listens on the named network ("tcp", "tcp4", "tcp6") at
// address, whose host must be empty or an IP address of the tunnel.
func (s *Stack) Listen(network, address string) (net.Listener, error) {
	fam, udpNet, err := parseNetwork(network)
	if err == nil && udpNet {
		err = net.UnknownNetworkError(network)
	}
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	ap, err := s.localAddr(address, fam)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	return s.ListenTCPAddrPort(ap)
}

// ListenTCPAddrPort listens for TCP connections on addr; an unspecified
// address listens on every address of its family.
func (s *Stack) ListenTCPAddrPort(addr netip.AddrPort) (*gonet.TCPListener, error) {
	fa := tcpip.FullAddress{NIC: nicID, Port: addr.Port()}
	proto := tcpip.NetworkProtocolNumber(ipv4.ProtocolNumber)
	if addr.Addr().Is6() || (!addr.Addr().IsValid() && !s.hasV4) {
		proto = ipv6.ProtocolNumber
	}
	if addr.Addr().IsValid() && !addr.Addr().IsUnspecified() {
		fa.Addr = tcpip.AddrFromSlice(addr.Addr().AsSlice())
	}
	return gonet.ListenTCP(s.stack, fa, proto)
}

// ListenPacket opens a UDP socket on the named network ("udp", "udp4",
// "udp6") at address, whose host must be empty or an IP address of the
// tunnel.
func (s *Stack) ListenPacket(network, address string) (net.PacketConn, error) {
	fam, udpNet, err := parseNetwork(network)
	if err == nil && !udpNet {
		err = net.UnknownNetworkError(network)
	}
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	ap, err := s.localAddr(address, fam)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	if !ap.Addr().IsValid() {
		// Any address: bind the port only.
		return s.DialUDPAddrPort(netip.AddrPortFrom(netip.Addr{}, ap.Port()), netip.AddrPort{})
	}
	return s.DialUDPAddrPort(ap, netip.AddrPort{})
}

// localAddr parses a listen address: an empty host or an IP address, and
// a numeric port.
func (s *Stack) localAddr(address string, fam family) (netip.AddrPort, error) {
	host, port, err := splitHostPort(address)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if host == "" {
		if fam == family6 {
			return netip.AddrPortFrom(netip.IPv6Unspecified(), port), nil
		}
		return netip.AddrPortFrom(netip.Addr{}, port), nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("listen address %q: host must be an IP address", address)
	}
	a = a.Unmap()
	if (fam == family4 && !a.Is4()) || (fam == family6 && !a.Is6()) {
		return netip.AddrPort{}, fmt.Errorf("listen address %q is not of the network's family", address)
	}
	return netip.AddrPortFrom(a, port), nil
}

func (s *Stack) fullAddr(ap netip.AddrPort) (tcpip.FullAddress, tcpip.NetworkProtocolNumber, error) {
	a := ap.Addr().Unmap()
	if !a.IsValid() {
		return tcpip.FullAddress{}, 0, errors.New("no address")
	}
	proto := tcpip.NetworkProtocolNumber(ipv4.ProtocolNumber)
	if a.Is6() {
		proto = ipv6.ProtocolNumber
		if !s.hasV6 {
			return tcpip.FullAddress{}, 0, fmt.Errorf("%v: %w (the tunnel has no IPv6 address)", a, syscall.ENETUNREACH)
		}
	} else if !s.hasV4 {
		return tcpip.FullAddress{}, 0, fmt.Errorf("%v: %w (the tunnel has no IPv4 address)", a, syscall.ENETUNREACH)
	}
	return tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFromSlice(a.AsSlice()), Port: ap.Port()}, proto, nil
}

type family int

const (
	familyAny family = iota
	family4
	family6
)

func parseNetwork(network string) (fam family, isUDP bool, err error) {
	switch network {
	case "tcp":
	case "tcp4":
		fam = family4
	case "tcp6":
		fam = family6
	case "udp":
		isUDP = true
	case "udp4":
		fam, isUDP = family4, true
	case "udp6":
		fam, isUDP = family6, true
	default:
		return 0, false, net.UnknownNetworkError(network)
	}
	return fam, isUDP, nil
}

func splitHostPort(address string) (string, uint16, error) {
	host, sport, err := net.SplitHostPort(address)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(sport, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: must be a number from 0 to 65535", sport)
	}
	return host, uint16(port), nil
}

// translate turns gVisor's errors into the errno a kernel socket would
// give, so callers can use errors.Is as with the net package.
func translate(err tcpip.Error) error {
	var errno syscall.Errno
	switch err.(type) {
	case *tcpip.ErrConnectionRefused:
		errno = syscall.ECONNREFUSED
	case *tcpip.ErrHostUnreachable:
		errno = syscall.EHOSTUNREACH
	case *tcpip.ErrNetworkUnreachable:
		errno = syscall.ENETUNREACH
	case *tcpip.ErrTimeout:
		errno = syscall.ETIMEDOUT
	case *tcpip.ErrConnectionReset:
		errno = syscall.ECONNRESET
	case *tcpip.ErrConnectionAborted, *tcpip.ErrAborted:
		errno = syscall.ECONNABORTED
	case *tcpip.ErrPortInUse:
		errno = syscall.EADDRINUSE
	case *tcpip.ErrBadLocalAddress:
		errno = syscall.EADDRNOTAVAIL
	default:
		return errors.New(err.String())
	}
	return errno
}
