// Package proxy serves SOCKS5, an HTTP proxy and port forwards whose
// outgoing connections are made through a Network: in gotatun, a
// WireGuard tunnel on a userspace TCP/IP stack (tun/netstack), so the
// whole thing runs as an ordinary user.
//
// Goroutines: one per listener served, two per relayed connection, and
// for UDP one per association or forwarded client. Close stops them all.
package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Network is where the proxy's outgoing traffic goes. *netstack.Stack
// implements it.
type Network interface {
	// DialContext connects to address ("host:port", host may be a name
	// resolved by the Network) on "tcp" or "udp".
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
	// ListenPacket opens an unconnected UDP socket ("udp4" or "udp6",
	// address ":0").
	ListenPacket(network, address string) (net.PacketConn, error)
	// LookupNetIP resolves a host name ("ip", "ip4" or "ip6").
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Options configure a Server.
type Options struct {
	Net Network
	// Logger receives one line per failed request; nil discards.
	Logger *slog.Logger
	// DialTimeout bounds connecting to a target, name lookup included;
	// 0 means 15 s. A target that does not answer in time gets the
	// client's "host unreachable" (SOCKS5) or 504 (HTTP).
	DialTimeout time.Duration
	// UDPIdleTimeout ends a forwarded UDP client's mapping after this
	// long without traffic; 0 means 2 minutes.
	UDPIdleTimeout time.Duration
	// SOCKS5User and SOCKS5Password, when User is not empty, make the
	// SOCKS5 server require username/password authentication (RFC 1929)
	// and refuse clients that offer only "no authentication".
	SOCKS5User, SOCKS5Password string
}

// Server runs proxies over one Network.
type Server struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	closed  bool
	closers map[io.Closer]struct{}
	wg      sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelFunc
}

// ErrServerClosed is returned by the Serve methods after Close.
var ErrServerClosed = errors.New("proxy: server closed")

// New returns a Server.
func New(opts Options) *Server {
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 15 * time.Second
	}
	if opts.UDPIdleTimeout <= 0 {
		opts.UDPIdleTimeout = 2 * time.Minute
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{opts: opts, log: log, closers: make(map[io.Closer]struct{}), ctx: ctx, cancel: cancel}
}

// Close closes every listener and connection the server handles and
// waits for its goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	cs := s.closers
	s.closers = nil
	s.mu.Unlock()
	s.cancel()
	for c := range cs {
		c.Close()
	}
	s.wg.Wait()
	return nil
}

// track registers c to be closed by Close; it returns false (and closes
// c) if the server is already closed. untrack undoes it.
func (s *Server) track(c io.Closer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return false
	}
	s.closers[c] = struct{}{}
	return true
}

func (s *Server) untrack(c io.Closer) {
	s.mu.Lock()
	delete(s.closers, c)
	s.mu.Unlock()
}

// serve accepts connections from ln and runs handle for each on its own
// goroutine until ln fails or the server closes.
func (s *Server) serve(ln net.Listener, handle func(net.Conn)) error {
	if !s.track(ln) {
		return ErrServerClosed
	}
	defer s.untrack(ln)
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of descriptors: back off instead of spinning.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		if !s.track(c) {
			return ErrServerClosed
		}
		s.wg.Go(func() {
			defer s.untrack(c)
			defer c.Close()
			handle(c)
		})
	}
}

// dial connects to address through the tunnel within DialTimeout.
func (s *Server) dial(ctx context.Context, network, address string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.DialTimeout)
	defer cancel()
	return s.opts.Net.DialContext(ctx, network, address)
}

// copyBufs recycles relay buffers.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

type closeWriter interface{ CloseWrite() error }

// relay copies both ways between a and b until both directions are done,
// passing a half-close on where the connection supports it.
func relay(a, b net.Conn) {
	done := make(chan struct{})
	go func() {
		copyHalf(b, a)
		close(done)
	}()
	copyHalf(a, b)
	<-done
}

// copyHalf copies src to dst, then closes dst for writing (or entirely
// if it cannot half-close, which also ends the other direction).
func copyHalf(dst, src net.Conn) {
	bp := copyBufs.Get().(*[]byte)
	// Hide ReadFrom/WriteTo so the pooled buffer is used.
	_, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *bp)
	copyBufs.Put(bp)
	if cw, ok := dst.(closeWriter); ok && err == nil {
		cw.CloseWrite()
		return
	}
	dst.Close()
	src.Close()
}

// isTimeout reports whether err means the target did not answer in time.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, syscall.ETIMEDOUT) || (errors.As(err, &ne) && ne.Timeout())
}

// isNoHost reports whether err is a failed name lookup.
func isNoHost(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de)
}

// atomicTime is a time read and written from several goroutines.
type atomicTime struct{ ns atomic.Int64 }

func (t *atomicTime) store(v time.Time) { t.ns.Store(v.UnixNano()) }
func (t *atomicTime) load() time.Time   { return time.Unix(0, t.ns.Load()) }
