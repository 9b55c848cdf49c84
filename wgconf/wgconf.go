// Package wgconf reads wg-quick(8) style configuration files: an
// [Interface] section with the local key, addresses, DNS servers and MTU,
// and one [Peer] section per peer. Errors name the file, the line and the
// key that was wrong.
package wgconf

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gotatun/gotatun/daita"
	"github.com/gotatun/gotatun/device"
	"github.com/gotatun/gotatun/internal/dnsname"
	"github.com/gotatun/gotatun/noise"
)

// Config is a parsed configuration file.
type Config struct {
	// File is the name given to Parse.
	File      string
	Interface Interface
	Peers     []Peer
	// Ignored lists the wg-quick keys that only wg-quick's shell
	// machinery uses (PostUp, Table, SaveConfig, …), as "line N: Key",
	// for callers that want to warn about them.
	Ignored []string
}

// Interface is the [Interface] section.
type Interface struct {
	PrivateKey noise.PrivateKey
	// Addresses are the tunnel's own addresses with their prefix length
	// (a bare address is a /32 or /128).
	Addresses []netip.Prefix
	// DNS are the name servers reached through the tunnel.
	DNS []netip.Addr
	// DNSSearch are the non-address DNS entries: search domains.
	DNSSearch []string
	// MTU is 0 when the file does not set it.
	MTU int
	// ListenPort is nil when the file does not set it (a free port).
	ListenPort   *uint16
	FirewallMark *uint32
}

// Peer is one [Peer] section.
type Peer struct {
	PublicKey    noise.PublicKey
	PresharedKey *noise.PresharedKey
	// Endpoint is "host:port" as written; host may be a name.
	Endpoint            string
	AllowedIPs          []netip.Prefix
	PersistentKeepalive time.Duration
	// DAITA is the peer's DAITA settings, nil if the section has no
	// Daita key: DaitaMachine (one line per Maybenot machine, in order),
	// DaitaMaxDecoyFrac, DaitaMaxDelayFrac, DaitaMaxDelayedPackets and
	// DaitaMinDelayCapacity, the UAPI's daita_ keys.
	DAITA *daita.Config
	// Line is where the section starts, for messages about the peer.
	Line int

	endpointLine int
}

// Error is a problem at one place of a file.
type Error struct {
	File string // as given to Parse; "" if unknown
	Line int    // 1-based; 0 for the whole file
	Key  string // the key or section concerned; "" if none
	Err  error
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:", e.Line)
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// maxFileSize bounds what ParseFile reads.
const maxFileSize = 1 << 20

// ParseFile reads and parses the file at path.
func ParseFile(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > maxFileSize {
		return nil, &Error{File: path, Err: fmt.Errorf("larger than %d bytes", maxFileSize)}
	}
	return Parse(path, b)
}

// wgQuickOnly are keys wg-quick runs or uses itself; they mean nothing to
// a userspace program and are recorded in Config.Ignored.
var wgQuickOnly = map[string]bool{
	"table": true, "preup": true, "postup": true, "predown": true,
	"postdown": true, "saveconfig": true,
}

// Parse parses the text of a configuration file; name is used in errors.
// Keys and section names are case-insensitive, as wg(8) reads them;
// "#" starts a comment.
func Parse(name string, text []byte) (*Config, error) {
	p := parser{file: name, cfg: Config{File: name}}
	return p.parse(text)
}

type parser struct {
	file    string
	line    int
	key     string
	cfg     Config
	section string // "interface", "peer" or ""
	seenIf  bool
	ifLine  int            // where [Interface] starts
	seen    map[string]int // single-valued keys of the section, by line
}

func (p *parser) errf(format string, args ...any) error {
	return &Error{File: p.file, Line: p.line, Key: p.key, Err: fmt.Errorf(format, args...)}
}

func (p *parser) wrap(err error) error {
	return &Error{File: p.file, Line: p.line, Key: p.key, Err: err}
}

func (p *parser) parse(text []byte) (*Config, error) {
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 0, 4096), maxFileSize)
	for sc.Scan() {
		p.line++
		p.key = ""
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if line[0] == '[' {
			if err := p.startSection(line); err != nil {
				return nil, err
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, p.errf("expected \"Key = Value\" or a [Section], got %q", clip(line))
		}
		p.key = strings.TrimSpace(k)
		v = strings.TrimSpace(v)
		if err := p.setKey(strings.ToLower(p.key), v); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		p.line++
		p.key = ""
		return nil, p.wrap(err)
	}
	if err := p.endSection(); err != nil {
		return nil, err
	}
	p.line, p.key = 0, ""
	if !p.seenIf {
		return nil, p.errf("no [Interface] section")
	}
	return &p.cfg, nil
}

func (p *parser) startSection(line string) error {
	if err := p.endSection(); err != nil {
		return err
	}
	if !strings.HasSuffix(line, "]") {
		return p.errf("unterminated section header %q", clip(line))
	}
	name := strings.TrimSpace(line[1 : len(line)-1])
	p.seen = make(map[string]int)
	switch strings.ToLower(name) {
	case "interface":
		if p.seenIf {
			return p.errf("second [Interface] section")
		}
		p.seenIf = true
		p.ifLine = p.line
		p.section = "interface"
	case "peer":
		p.section = "peer"
		p.cfg.Peers = append(p.cfg.Peers, Peer{Line: p.line})
	default:
		p.key = name
		return p.errf("unknown section (want [Interface] or [Peer])")
	}
	return nil
}

// endSection checks the section that just ended.
func (p *parser) endSection() error {
	switch p.section {
	case "interface":
		if _, ok := p.seen["privatekey"]; !ok {
			return &Error{File: p.file, Line: p.ifLine, Key: "PrivateKey", Err: errors.New("missing from [Interface]")}
		}
	case "peer":
		peer := &p.cfg.Peers[len(p.cfg.Peers)-1]
		if _, ok := p.seen["publickey"]; !ok {
			return &Error{File: p.file, Line: peer.Line, Key: "PublicKey", Err: errors.New("missing from [Peer]")}
		}
		for i := range p.cfg.Peers[:len(p.cfg.Peers)-1] {
			if p.cfg.Peers[i].PublicKey == peer.PublicKey {
				return &Error{File: p.file, Line: peer.Line, Key: "PublicKey",
					Err: fmt.Errorf("same peer as the [Peer] on line %d", p.cfg.Peers[i].Line)}
			}
		}
	}
	return nil
}

// once rejects a second occurrence of a single-valued key.
func (p *parser) once(key string) error {
	if prev, dup := p.seen[key]; dup {
		return p.errf("set twice in this section (first on line %d)", prev)
	}
	p.seen[key] = p.line
	return nil
}

func (p *parser) setKey(key, v string) error {
	switch p.section {
	case "":
		return p.errf("key outside a section")
	case "interface":
		return p.setInterface(key, v)
	default:
		return p.setPeer(&p.cfg.Peers[len(p.cfg.Peers)-1], key, v)
	}
}

func (p *parser) setInterface(key, v string) error {
	ifc := &p.cfg.Interface
	switch key {
	case "privatekey":
		if err := p.once(key); err != nil {
			return err
		}
		k, err := noise.ParsePrivateKey(v)
		if err != nil {
			return p.wrap(err)
		}
		ifc.PrivateKey = k
	case "address":
		return p.list(v, func(s string) error {
			pfx, err := parsePrefix(s, false)
			if err != nil {
				return err
			}
			ifc.Addresses = append(ifc.Addresses, pfx)
			return nil
		})
	case "dns":
		return p.list(v, func(s string) error {
			if a, err := netip.ParseAddr(s); err == nil {
				ifc.DNS = append(ifc.DNS, a.Unmap())
				return nil
			}
			if !dnsname.Valid(s) {
				return fmt.Errorf("%q is neither an IP address nor a search domain", clip(s))
			}
			ifc.DNSSearch = append(ifc.DNSSearch, s)
			return nil
		})
	case "mtu":
		if err := p.once(key); err != nil {
			return err
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 576 || n > 65535 {
			return p.errf("%q is not an MTU between 576 and 65535", clip(v))
		}
		ifc.MTU = n
	case "listenport":
		if err := p.once(key); err != nil {
			return err
		}
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return p.errf("%q is not a port number (0 to 65535)", clip(v))
		}
		port := uint16(n)
		ifc.ListenPort = &port
	case "fwmark":
		if err := p.once(key); err != nil {
			return err
		}
		var m uint64
		var err error
		if v == "off" {
			m = 0
		} else {
			m, err = strconv.ParseUint(v, 0, 32)
		}
		if err != nil {
			return p.errf("%q is not a 32-bit mark or \"off\"", clip(v))
		}
		mark := uint32(m)
		ifc.FirewallMark = &mark
	default:
		if wgQuickOnly[key] {
			p.cfg.Ignored = append(p.cfg.Ignored, fmt.Sprintf("line %d: %s", p.line, p.key))
			return nil
		}
		return p.errf("unknown key in [Interface]")
	}
	return nil
}

func (p *parser) setPeer(peer *Peer, key, v string) error {
	switch key {
	case "publickey":
		if err := p.once(key); err != nil {
			return err
		}
		k, err := noise.ParsePublicKey(v)
		if err != nil {
			return p.wrap(err)
		}
		peer.PublicKey = k
	case "presharedkey":
		if err := p.once(key); err != nil {
			return err
		}
		k, err := noise.ParsePresharedKey(v)
		if err != nil {
			return p.wrap(err)
		}
		peer.PresharedKey = &k
	case "endpoint":
		if err := p.once(key); err != nil {
			return err
		}
		host, port, err := net.SplitHostPort(v)
		if err != nil {
			return p.errf("%q is not host:port (IPv6 in brackets): %w", clip(v), err)
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil || port == "0" {
			return p.errf("%q: port must be 1 to 65535", clip(v))
		}
		if _, err := netip.ParseAddr(host); err != nil && !dnsname.Valid(host) {
			return p.errf("%q: host is neither an IP address nor a host name", clip(v))
		}
		peer.Endpoint = v
		peer.endpointLine = p.line
	case "allowedips":
		return p.list(v, func(s string) error {
			pfx, err := parsePrefix(s, true)
			if err != nil {
				return err
			}
			peer.AllowedIPs = append(peer.AllowedIPs, pfx)
			return nil
		})
	case "persistentkeepalive":
		if err := p.once(key); err != nil {
			return err
		}
		if v == "off" {
			peer.PersistentKeepalive = 0
			return nil
		}
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return p.errf("%q is not a number of seconds (0 to 65535) or \"off\"", clip(v))
		}
		peer.PersistentKeepalive = time.Duration(n) * time.Second
	case "daitamachine", "daitamaxdecoyfrac", "daitamaxdelayfrac", "daitamaxdelayedpackets", "daitamindelaycapacity":
		return p.setDAITA(peer, key, v)
	default:
		return p.errf("unknown key in [Peer]")
	}
	return nil
}

func (p *parser) setDAITA(peer *Peer, key, v string) error {
	if peer.DAITA == nil {
		cfg := daita.DefaultConfig()
		peer.DAITA = &cfg
	}
	cfg := peer.DAITA
	if key == "daitamachine" {
		if len(cfg.Machines) >= daita.MaxMachines {
			return p.errf("more than %d machines", daita.MaxMachines)
		}
		one := daita.Config{Machines: []string{v}, MaxDelayedPackets: 1}
		if err := one.Validate(); err != nil {
			return p.wrap(err)
		}
		cfg.Machines = append(cfg.Machines, v)
		return nil
	}
	if err := p.once(key); err != nil {
		return err
	}
	switch key {
	case "daitamaxdecoyfrac", "daitamaxdelayfrac":
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return p.errf("%q is not a decimal number", clip(v))
		}
		if err := daita.CheckFrac(p.key, f); err != nil {
			return p.wrap(err)
		}
		if key == "daitamaxdecoyfrac" {
			cfg.MaxDecoyFrac = f
		} else {
			cfg.MaxDelayFrac = f
		}
	case "daitamaxdelayedpackets":
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n < 1 || n > daita.MaxDelayedPacketsLimit {
			return p.errf("%q is not a number from 1 to %d", clip(v), daita.MaxDelayedPacketsLimit)
		}
		cfg.MaxDelayedPackets = int(n)
	case "daitamindelaycapacity":
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n > daita.MaxDelayedPacketsLimit {
			return p.errf("%q is not a number from 0 to %d", clip(v), daita.MaxDelayedPacketsLimit)
		}
		cfg.MinDelayCapacity = int(n)
	}
	return nil
}

// list calls f for each comma-separated element of v, naming the element
// in errors. An empty element is an error.
func (p *parser) list(v string, f func(string) error) error {
	for s := range strings.SplitSeq(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			return p.errf("empty element in list %q", clip(v))
		}
		if err := f(s); err != nil {
			return p.wrap(err)
		}
	}
	return nil
}

// parsePrefix parses an address with an optional prefix length. For
// routes (AllowedIPs) host bits must be clear, as wg(8) would clear them
// silently and a typo would go unnoticed.
func parsePrefix(s string, route bool) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or prefix", clip(s))
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP prefix", clip(s))
	}
	if route && pfx.Masked() != pfx {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set (did you mean %v?)", clip(s), pfx.Masked())
	}
	return pfx, nil
}

// clip shortens user text quoted in an error.
func clip(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

// Resolver looks up endpoint host names; *net.Resolver implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// DeviceConfig converts the file into a device configuration that
// replaces every peer. Endpoint host names are looked up with r (nil is
// net.DefaultResolver); an IPv4 address is preferred.
func (c *Config) DeviceConfig(ctx context.Context, r Resolver) (device.Config, error) {
	if r == nil {
		r = net.DefaultResolver
	}
	priv := c.Interface.PrivateKey
	dc := device.Config{
		PrivateKey:   &priv,
		ListenPort:   c.Interface.ListenPort,
		FirewallMark: c.Interface.FirewallMark,
		ReplacePeers: true,
	}
	for i := range c.Peers {
		p := &c.Peers[i]
		pc := device.PeerConfig{
			PublicKey:         p.PublicKey,
			PresharedKey:      p.PresharedKey,
			ReplaceAllowedIPs: true,
			AllowedIPs:        p.AllowedIPs,
		}
		ka := p.PersistentKeepalive
		pc.PersistentKeepalive = &ka
		if p.Endpoint != "" {
			ep, err := resolveEndpoint(ctx, r, p.Endpoint)
			if err != nil {
				return device.Config{}, &Error{File: c.File, Line: p.endpointLine, Key: "Endpoint", Err: err}
			}
			pc.Endpoint = &ep
		}
		if p.DAITA != nil {
			cfg := p.DAITA.Clone()
			if err := cfg.Validate(); err != nil {
				return device.Config{}, &Error{File: c.File, Line: p.Line, Key: "Daita", Err: err}
			}
			pc.DAITA = &cfg
		}
		dc.Peers = append(dc.Peers, pc)
	}
	return dc, nil
}

func resolveEndpoint(ctx context.Context, r Resolver, s string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, err
	}
	pn, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad port in %q", s)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(a.Unmap(), uint16(pn)), nil
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("looking up %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("looking up %s: no addresses", host)
	}
	best := addrs[0].Unmap()
	for _, a := range addrs {
		if a.Unmap().Is4() {
			best = a.Unmap()
			break
		}
	}
	return netip.AddrPortFrom(best, uint16(pn)), nil
}
