package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// maxDatagram is the largest UDP payload relayed.
const maxDatagram = 65535

// socksAssociate runs a UDP ASSOCIATE: a local UDP socket for the
// client's datagrams, and tunnel sockets for the targets, for as long as
// the control connection stays open.
func (s *Server) socksAssociate(c net.Conn, br *bufio.Reader, dst socksAddr) {
	clientIP := addrOf(c.RemoteAddr())
	localIP := addrOf(c.LocalAddr())
	local, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(localIP, 0)))
	if err != nil {
		s.log.Info("socks5: UDP associate: opening a local socket", "err", err)
		writeSocksReply(c, repFailure, netip.AddrPort{})
		return
	}
	a := &association{
		s:      s,
		local:  local,
		client: clientIP,
		names:  make(map[string]netip.Addr),
	}
	// A client that names its address and port is held to them.
	if dst.ip.IsValid() && !dst.ip.IsUnspecified() && dst.port != 0 {
		a.clientAddr = netip.AddrPortFrom(dst.ip, dst.port)
		a.fixed = true
	}
	if !s.track(a) {
		return
	}
	defer s.untrack(a)
	defer a.Close()
	if err := writeSocksReply(c, repSuccess, local.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	a.wg.Go(a.fromClient)
	// The association lives as long as the control connection.
	io.Copy(io.Discard, br)
}

// association is one UDP ASSOCIATE.
type association struct {
	s      *Server
	local  *net.UDPConn
	client netip.Addr // the control connection's peer

	mu         sync.Mutex
	clientAddr netip.AddrPort // where replies go; learned unless fixed
	fixed      bool
	tunnel     [2]net.PacketConn // udp4, udp6; opened on first use
	closed     bool
	names      map[string]netip.Addr // resolved target names

	wg sync.WaitGroup
}

func (a *association) Close() error {
	a.mu.Lock()
	a.closed = true
	tun := a.tunnel
	a.mu.Unlock()
	a.local.Close()
	for _, t := range tun {
		if t != nil {
			t.Close()
		}
	}
	a.wg.Wait()
	return nil
}

// fromClient relays the client's datagrams into the tunnel.
func (a *association) fromClient() {
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := a.local.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		if from.Addr() != a.client {
			continue // only the control connection's host may use it
		}
		a.mu.Lock()
		if a.fixed && from != a.clientAddr {
			a.mu.Unlock()
			continue
		}
		a.clientAddr = from
		a.mu.Unlock()
		// RSV(2) FRAG(1) ATYP DST.ADDR DST.PORT DATA.
		if n < 4 || buf[2] != 0 {
			continue // fragments are not supported: drop, as RFC 1928 allows
		}
		dst, data, err := parseSocksAddr(buf[3:n])
		if err != nil {
			continue
		}
		ip := dst.ip
		if dst.name != "" {
			if ip = a.resolve(dst.name); !ip.IsValid() {
				continue
			}
		}
		t := a.tunnelFor(ip)
		if t == nil {
			continue
		}
		t.WriteTo(data, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, dst.port)))
	}
}

// resolve looks a target name up through the tunnel, remembering a few.
func (a *association) resolve(name string) netip.Addr {
	a.mu.Lock()
	ip, ok := a.names[name]
	a.mu.Unlock()
	if ok {
		return ip
	}
	ctx, cancel := context.WithTimeout(a.s.ctx, a.s.opts.DialTimeout)
	defer cancel()
	ips, err := a.s.opts.Net.LookupNetIP(ctx, "ip", name)
	if err != nil || len(ips) == 0 {
		a.s.log.Info("socks5: UDP target lookup failed", "name", name, "err", err)
		return netip.Addr{}
	}
	a.mu.Lock()
	if len(a.names) >= 64 {
		clear(a.names)
	}
	a.names[name] = ips[0]
	a.mu.Unlock()
	return ips[0]
}

// tunnelFor returns the tunnel socket for ip's family, opening it and
// its reader on first use.
func (a *association) tunnelFor(ip netip.Addr) net.PacketConn {
	i, network := 0, "udp4"
	if ip.Is6() {
		i, network = 1, "udp6"
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	if a.tunnel[i] == nil {
		t, err := a.s.opts.Net.ListenPacket(network, ":0")
		if err != nil {
			a.s.log.Info("socks5: UDP associate: opening a tunnel socket", "err", err)
			return nil
		}
		a.tunnel[i] = t
		a.wg.Go(func() { a.toClient(t) })
	}
	return a.tunnel[i]
}

// toClient relays datagrams from the tunnel back to the client, with
// the SOCKS5 UDP header naming their source.
func (a *association) toClient(t net.PacketConn) {
	buf := make([]byte, 3+1+16+2+maxDatagram)
	for {
		// Leave room for the largest header; shift down for IPv4.
		const room = 3 + 1 + 16 + 2
		n, from, err := t.ReadFrom(buf[room:])
		if err != nil {
			return
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok {
			continue
		}
		src := ua.AddrPort()
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		var hb [room]byte
		hdr := appendSocksAddr(hb[:3], src)
		start := room - len(hdr)
		copy(buf[start:], hdr)
		a.mu.Lock()
		to := a.clientAddr
		a.mu.Unlock()
		if to.IsValid() {
			a.local.WriteToUDPAddrPort(buf[start:room+n], to)
		}
	}
}

func addrOf(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}
