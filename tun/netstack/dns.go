package netstack

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/gotatun/gotatun/internal/dnsname"
)

// dnsTimeout bounds one exchange with one server.
const dnsTimeout = 3 * time.Second

// LookupHost looks host up with the tunnel's DNS servers and returns its
// addresses as strings, IPv4 first when the tunnel has an IPv4 address.
// An IP address is returned as it is.
func (s *Stack) LookupHost(host string) ([]string, error) {
	return s.LookupContextHost(context.Background(), host)
}

// LookupContextHost is LookupHost with a context.
func (s *Stack) LookupContextHost(ctx context.Context, host string) ([]string, error) {
	addrs, err := s.lookupFamily(ctx, host, familyAny)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out, nil
}

// LookupNetIP looks host up for network "ip", "ip4" or "ip6", as
// net.Resolver.LookupNetIP does, through the tunnel.
func (s *Stack) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	fam := familyAny
	switch network {
	case "ip":
	case "ip4":
		fam = family4
	case "ip6":
		fam = family6
	default:
		return nil, net.UnknownNetworkError(network)
	}
	return s.lookupFamily(ctx, host, fam)
}

func (s *Stack) lookupFamily(ctx context.Context, host string, fam family) ([]netip.Addr, error) {
	notFound := func(msg string) error {
		return &net.DNSError{Err: msg, Name: host, IsNotFound: true}
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")); err == nil {
		a = a.Unmap()
		if (fam == family4 && !a.Is4()) || (fam == family6 && !a.Is6()) {
			return nil, notFound("address of the wrong family")
		}
		return []netip.Addr{a}, nil
	}
	if host == "" {
		return nil, notFound("empty host name")
	}
	name, err := dnsmessage.NewName(strings.TrimSuffix(host, ".") + ".")
	if err != nil || !dnsname.Valid(host) {
		return nil, notFound("invalid host name")
	}
	if len(s.dns) == 0 {
		return nil, &net.DNSError{Err: "no DNS servers configured for the tunnel", Name: host}
	}
	var types []dnsmessage.Type
	if s.hasV4 && fam != family6 {
		types = append(types, dnsmessage.TypeA)
	}
	if s.hasV6 && fam != family4 {
		types = append(types, dnsmessage.TypeAAAA)
	}
	if len(types) == 0 {
		return nil, notFound("the tunnel has no address of that family")
	}
	type result struct {
		addrs []netip.Addr
		err   error
	}
	results := make([]chan result, len(types))
	for i, t := range types {
		results[i] = make(chan result, 1)
		go func() {
			a, err := s.query(ctx, host, name, t)
			results[i] <- result{a, err}
		}()
	}
	var addrs []netip.Addr
	var firstErr error
	for _, ch := range results {
		r := <-ch
		addrs = append(addrs, r.addrs...)
		if r.err != nil && firstErr == nil {
			firstErr = r.err
		}
	}
	if len(addrs) > 0 {
		return addrs, nil
	}
	if firstErr == nil {
		firstErr = notFound("no such host")
	}
	return nil, firstErr
}

// query asks the servers in turn, twice round, for name's records of
// type t. A definite "no such name" ends the search.
func (s *Stack) query(ctx context.Context, host string, name dnsmessage.Name, t dnsmessage.Type) ([]netip.Addr, error) {
	var last error
	for round := 0; round < 2; round++ {
		for _, server := range s.dns {
			addrs, err := s.exchange(ctx, server, name, t)
			if err == nil {
				return addrs, nil
			}
			dnsErr := &net.DNSError{Err: err.Error(), Name: host, Server: server.String()}
			var ne net.Error
			dnsErr.IsTimeout = errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)
			if errors.Is(err, errNXDomain) || errors.Is(err, errNoRecords) {
				dnsErr.IsNotFound = true
				return nil, dnsErr
			}
			last = dnsErr
			if ctx.Err() != nil {
				return nil, last
			}
		}
	}
	return nil, last
}

var (
	errNXDomain  = errors.New("no such host")
	errNoRecords = errors.New("no records of the requested type")
)

// exchange asks one server over UDP, and over TCP if the answer was
// truncated.
func (s *Stack) exchange(ctx context.Context, server netip.Addr, name dnsmessage.Name, t dnsmessage.Type) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, dnsTimeout)
	defer cancel()
	id := uint16(rand.Uint32())
	b := dnsmessage.NewBuilder(make([]byte, 2, 514), dnsmessage.Header{ID: id, RecursionDesired: true})
	b.EnableCompression()
	q := dnsmessage.Question{Name: name, Type: t, Class: dnsmessage.ClassINET}
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	msg, err := b.Finish()
	if err != nil {
		return nil, err
	}
	binary.BigEndian.PutUint16(msg, uint16(len(msg)-2))
	ap := netip.AddrPortFrom(server, 53)
	for _, useTCP := range []bool{false, true} {
		var c net.Conn
		if useTCP {
			c, err = s.DialTCPAddrPort(ctx, ap)
		} else {
			c, err = s.DialUDPAddrPort(netip.AddrPort{}, ap)
		}
		if err != nil {
			return nil, err
		}
		stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
		var resp []byte
		if useTCP {
			resp, err = roundTripTCP(c, msg)
		} else {
			resp, err = roundTripUDP(c, msg[2:], id)
		}
		stop()
		c.Close()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		addrs, truncated, err := parseAnswer(resp, id, q)
		if truncated && !useTCP {
			continue
		}
		return addrs, err
	}
	return nil, errors.New("truncated answer over TCP")
}

func roundTripUDP(c net.Conn, msg []byte, id uint16) ([]byte, error) {
	if _, err := c.Write(msg); err != nil {
		return nil, err
	}
	buf := make([]byte, 1232)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		// Skip stray datagrams; parseAnswer checks the rest.
		if n >= 2 && binary.BigEndian.Uint16(buf) == id {
			return buf[:n], nil
		}
	}
}

func roundTripTCP(c net.Conn, msg []byte) ([]byte, error) {
	if _, err := c.Write(msg); err != nil {
		return nil, err
	}
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil, err
	}
	buf := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// parseAnswer extracts the addresses of type q.Type from a response to q.
func parseAnswer(resp []byte, id uint16, q dnsmessage.Question) (addrs []netip.Addr, truncated bool, err error) {
	var p dnsmessage.Parser
	h, err := p.Start(resp)
	if err != nil {
		return nil, false, fmt.Errorf("malformed answer: %w", err)
	}
	if !h.Response || h.ID != id {
		return nil, false, errors.New("answer does not match the query")
	}
	rq, err := p.Question()
	if err != nil || rq.Type != q.Type || rq.Class != q.Class || !strings.EqualFold(rq.Name.String(), q.Name.String()) {
		return nil, false, errors.New("answer is for another question")
	}
	if h.Truncated {
		return nil, true, nil
	}
	switch h.RCode {
	case dnsmessage.RCodeSuccess:
	case dnsmessage.RCodeNameError:
		return nil, false, errNXDomain
	default:
		return nil, false, fmt.Errorf("server answered %v", h.RCode)
	}
	if err := p.SkipAllQuestions(); err != nil {
		return nil, false, fmt.Errorf("malformed answer: %w", err)
	}
	for {
		rh, err := p.AnswerHeader()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			break
		}
		if err != nil {
			return nil, false, fmt.Errorf("malformed answer: %w", err)
		}
		switch {
		case rh.Type == dnsmessage.TypeA && q.Type == dnsmessage.TypeA:
			r, err := p.AResource()
			if err != nil {
				return nil, false, fmt.Errorf("malformed A record: %w", err)
			}
			addrs = append(addrs, netip.AddrFrom4(r.A))
		case rh.Type == dnsmessage.TypeAAAA && q.Type == dnsmessage.TypeAAAA:
			r, err := p.AAAAResource()
			if err != nil {
				return nil, false, fmt.Errorf("malformed AAAA record: %w", err)
			}
			addrs = append(addrs, netip.AddrFrom16(r.AAAA))
		default:
			if err := p.SkipAnswer(); err != nil {
				return nil, false, fmt.Errorf("malformed answer: %w", err)
			}
		}
	}
	if len(addrs) == 0 {
		return nil, false, errNoRecords
	}
	return addrs, false, nil
}
