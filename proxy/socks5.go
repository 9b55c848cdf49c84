package proxy

import (
	"bufio"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"
)

// SOCKS5 constants (RFC 1928, RFC 1929).
const (
	socksVersion = 5

	methodNoAuth   = 0x00
	methodUserPass = 0x02
	methodNone     = 0xff

	cmdConnect      = 1
	cmdBind         = 2
	cmdUDPAssociate = 3

	atypIPv4   = 1
	atypDomain = 3
	atypIPv6   = 4

	repSuccess             = 0
	repFailure             = 1
	repNotAllowed          = 2
	repNetworkUnreachable  = 3
	repHostUnreachable     = 4
	repConnectionRefused   = 5
	repTTLExpired          = 6
	repCommandNotSupported = 7
	repAddressNotSupported = 8
)

// handshakeTimeout bounds a SOCKS5 client's greeting and request.
const handshakeTimeout = 30 * time.Second

// ServeSOCKS5 serves SOCKS5 clients on ln until ln fails or the server is
// closed: CONNECT and UDP ASSOCIATE, with no authentication or with
// username and password (Options.SOCKS5User).
func (s *Server) ServeSOCKS5(ln net.Listener) error {
	return s.serve(ln, s.handleSOCKS5)
}

// socksAddr is a request's target: an address or a name, and a port.
type socksAddr struct {
	ip   netip.Addr
	name string
	port uint16
}

func (a socksAddr) String() string {
	if a.name != "" {
		return net.JoinHostPort(a.name, strconv.Itoa(int(a.port)))
	}
	return netip.AddrPortFrom(a.ip, a.port).String()
}

func (s *Server) handleSOCKS5(c net.Conn) {
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	br := bufio.NewReaderSize(c, 512)
	if err := s.socksAuth(c, br); err != nil {
		s.log.Debug("socks5: handshake failed", "client", c.RemoteAddr(), "err", err)
		return
	}
	var hdr [3]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return
	}
	if hdr[0] != socksVersion {
		s.log.Debug("socks5: bad request version", "client", c.RemoteAddr(), "version", hdr[0])
		return
	}
	dst, err := readSocksAddr(br)
	if err != nil {
		s.log.Debug("socks5: bad request address", "client", c.RemoteAddr(), "err", err)
		writeSocksReply(c, repAddressNotSupported, netip.AddrPort{})
		return
	}
	switch hdr[1] {
	case cmdConnect:
		s.socksConnect(c, br, dst)
	case cmdUDPAssociate:
		s.socksAssociate(c, br, dst)
	default:
		writeSocksReply(c, repCommandNotSupported, netip.AddrPort{})
	}
}

// socksAuth negotiates the method and, for username/password, checks
// the credentials.
func (s *Server) socksAuth(c net.Conn, br *bufio.Reader) error {
	var hdr [2]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return err
	}
	if hdr[0] != socksVersion {
		return fmt.Errorf("version %d, want 5", hdr[0])
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(br, methods); err != nil {
		return err
	}
	want := byte(methodNoAuth)
	if s.opts.SOCKS5User != "" {
		want = methodUserPass
	}
	offered := false
	for _, m := range methods {
		offered = offered || m == want
	}
	if !offered {
		c.Write([]byte{socksVersion, methodNone})
		return fmt.Errorf("client offers none of the methods we accept (%d)", want)
	}
	if _, err := c.Write([]byte{socksVersion, want}); err != nil {
		return err
	}
	if want == methodNoAuth {
		return nil
	}
	// RFC 1929: VER=1, ULEN, UNAME, PLEN, PASSWD.
	var v [2]byte
	if _, err := io.ReadFull(br, v[:]); err != nil {
		return err
	}
	if v[0] != 1 {
		return fmt.Errorf("auth version %d, want 1", v[0])
	}
	user := make([]byte, v[1])
	if _, err := io.ReadFull(br, user); err != nil {
		return err
	}
	plen, err := br.ReadByte()
	if err != nil {
		return err
	}
	pass := make([]byte, plen)
	if _, err := io.ReadFull(br, pass); err != nil {
		return err
	}
	okUser := subtle.ConstantTimeCompare(user, []byte(s.opts.SOCKS5User))
	okPass := subtle.ConstantTimeCompare(pass, []byte(s.opts.SOCKS5Password))
	if okUser&okPass != 1 {
		c.Write([]byte{1, 1})
		return fmt.Errorf("wrong username or password for %q", user)
	}
	_, err = c.Write([]byte{1, 0})
	return err
}

// readSocksAddr reads ATYP, DST.ADDR and DST.PORT.
func readSocksAddr(r *bufio.Reader) (socksAddr, error) {
	rd := r
	atyp, err := r.ReadByte()
	if err != nil {
		return socksAddr{}, err
	}
	var a socksAddr
	switch atyp {
	case atypIPv4:
		var b [4]byte
		if _, err := io.ReadFull(rd, b[:]); err != nil {
			return a, err
		}
		a.ip = netip.AddrFrom4(b)
	case atypIPv6:
		var b [16]byte
		if _, err := io.ReadFull(rd, b[:]); err != nil {
			return a, err
		}
		a.ip = netip.AddrFrom16(b).Unmap()
	case atypDomain:
		n, err := r.ReadByte()
		if err != nil {
			return a, err
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(rd, b); err != nil {
			return a, err
		}
		if n == 0 {
			return a, errors.New("empty domain name")
		}
		a.name = string(b)
		if ip, err := netip.ParseAddr(a.name); err == nil {
			a.ip, a.name = ip.Unmap(), ""
		}
	default:
		return a, fmt.Errorf("address type %d", atyp)
	}
	var p [2]byte
	if _, err := io.ReadFull(rd, p[:]); err != nil {
		return a, err
	}
	a.port = binary.BigEndian.Uint16(p[:])
	return a, nil
}

// parseSocksAddr parses ATYP, DST.ADDR and DST.PORT at the start of b
// (a UDP request header) and returns the rest.
func parseSocksAddr(b []byte) (socksAddr, []byte, error) {
	var a socksAddr
	if len(b) < 1 {
		return a, nil, errors.New("short header")
	}
	var n int
	switch b[0] {
	case atypIPv4:
		n = 1 + 4
		if len(b) < n+2 {
			return a, nil, errors.New("short header")
		}
		a.ip = netip.AddrFrom4([4]byte(b[1:5]))
	case atypIPv6:
		n = 1 + 16
		if len(b) < n+2 {
			return a, nil, errors.New("short header")
		}
		a.ip = netip.AddrFrom16([16]byte(b[1:17])).Unmap()
	case atypDomain:
		if len(b) < 2 || b[1] == 0 {
			return a, nil, errors.New("short header")
		}
		n = 2 + int(b[1])
		if len(b) < n+2 {
			return a, nil, errors.New("short header")
		}
		a.name = string(b[2:n])
		if ip, err := netip.ParseAddr(a.name); err == nil {
			a.ip, a.name = ip.Unmap(), ""
		}
	default:
		return a, nil, fmt.Errorf("address type %d", b[0])
	}
	a.port = binary.BigEndian.Uint16(b[n:])
	return a, b[n+2:], nil
}

// appendSocksAddr appends ATYP, ADDR and PORT for ap.
func appendSocksAddr(b []byte, ap netip.AddrPort) []byte {
	a := ap.Addr().Unmap()
	switch {
	case a.Is4():
		b = append(b, atypIPv4)
		b = append(b, a.AsSlice()...)
	case a.Is6():
		b = append(b, atypIPv6)
		b = append(b, a.AsSlice()...)
	default:
		b = append(b, atypIPv4, 0, 0, 0, 0)
	}
	return binary.BigEndian.AppendUint16(b, ap.Port())
}

func writeSocksReply(c net.Conn, rep byte, bound netip.AddrPort) error {
	b := appendSocksAddr([]byte{socksVersion, rep, 0}, bound)
	_, err := c.Write(b)
	return err
}

// socksReplyFor is the reply code a client expects for a failed connect.
func socksReplyFor(err error) byte {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return repConnectionRefused
	case errors.Is(err, syscall.ENETUNREACH):
		return repNetworkUnreachable
	case errors.Is(err, syscall.EHOSTUNREACH), isNoHost(err):
		return repHostUnreachable
	case isTimeout(err):
		return repTTLExpired
	}
	return repFailure
}

func (s *Server) socksConnect(c net.Conn, br *bufio.Reader, dst socksAddr) {
	t, err := s.dial(s.ctx, "tcp", dst.String())
	if err != nil {
		s.log.Info("socks5: connect failed", "client", c.RemoteAddr(), "target", dst, "err", err)
		writeSocksReply(c, socksReplyFor(err), netip.AddrPort{})
		return
	}
	if !s.track(t) {
		return
	}
	defer s.untrack(t)
	defer t.Close()
	var bound netip.AddrPort
	if ta, ok := t.LocalAddr().(*net.TCPAddr); ok {
		bound = ta.AddrPort()
	}
	if err := writeSocksReply(c, repSuccess, bound); err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	if n := br.Buffered(); n > 0 {
		// Data the client sent right after its request.
		b, _ := br.Peek(n)
		if _, err := t.Write(b); err != nil {
			return
		}
	}
	relay(c, t)
}
