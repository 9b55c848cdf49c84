package proxy

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// ForwardTCP accepts connections on ln and connects each to remote
// ("host:port") through the tunnel, until ln fails or the server closes.
func (s *Server) ForwardTCP(ln net.Listener, remote string) error {
	return s.serve(ln, func(c net.Conn) {
		t, err := s.dial(s.ctx, "tcp", remote)
		if err != nil {
			s.log.Info("forward: connect failed", "client", c.RemoteAddr(), "target", remote, "err", err)
			return
		}
		if !s.track(t) {
			return
		}
		defer s.untrack(t)
		defer t.Close()
		relay(c, t)
	})
}

// ForwardUDP relays datagrams arriving on pc to remote ("host:port")
// through the tunnel, from one tunnel socket per client address, and the
// answers back to that client. A client's socket is closed after
// Options.UDPIdleTimeout without traffic.
func (s *Server) ForwardUDP(pc net.PacketConn, remote string) error {
	if !s.track(pc) {
		return ErrServerClosed
	}
	defer s.untrack(pc)
	var mu sync.Mutex
	flows := make(map[netip.AddrPort]*udpFlow)
	var wg sync.WaitGroup
	defer func() {
		mu.Lock()
		for _, f := range flows {
			f.t.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if s.ctx.Err() != nil {
				return ErrServerClosed
			}
			return err
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok {
			continue
		}
		key := ua.AddrPort()
		mu.Lock()
		f := flows[key]
		mu.Unlock()
		if f == nil {
			t, err := s.dial(s.ctx, "udp", remote)
			if err != nil {
				s.log.Info("forward: UDP target", "target", remote, "err", err)
				continue
			}
			f = &udpFlow{t: t}
			f.touch()
			mu.Lock()
			flows[key] = f
			mu.Unlock()
			wg.Go(func() {
				f.back(pc, ua, s.opts.UDPIdleTimeout)
				mu.Lock()
				delete(flows, key)
				mu.Unlock()
				t.Close()
			})
		}
		f.touch()
		f.t.Write(buf[:n])
	}
}

// udpFlow is one client's mapping in a UDP forward.
type udpFlow struct {
	t    net.Conn
	last atomicTime
}

func (f *udpFlow) touch() { f.last.store(time.Now()) }

// back relays the target's answers to the client until the flow has been
// idle for idle.
func (f *udpFlow) back(pc net.PacketConn, client net.Addr, idle time.Duration) {
	buf := make([]byte, maxDatagram)
	for {
		f.t.SetReadDeadline(f.last.load().Add(idle))
		n, err := f.t.Read(buf)
		if err != nil {
			if isTimeout(err) && time.Since(f.last.load()) < idle {
				continue
			}
			return
		}
		f.touch()
		pc.WriteTo(buf[:n], client)
	}
}
