package uapi

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gotatun/gotatun/device"
	"github.com/gotatun/gotatun/noise"
)

// ParseSet reads the body of a `set=1` transaction from r: key=value lines
// up to a blank line (or the end of r), and returns it as one
// device.Config. With replace_peers=true the peers the transaction names
// are removed first (entries with Remove set, ahead of the others), so
// they start afresh as the protocol wants. The device keys (private_key, listen_port, fwmark,
// replace_peers) come first; each public_key line starts a peer section
// holding the peer keys (remove, update_only, preshared_key, endpoint,
// persistent_keepalive_interval, replace_allowed_ips, allowed_ip,
// protocol_version). Keys are hex.
//
// On a bad line ParseSet still reads up to the blank line, so a stream
// carrying further transactions stays in step, and returns an *Error for
// the first bad line and an empty Config. If r is not a *bufio.Reader it is
// wrapped in one, which may read past the blank line.
func ParseSet(r io.Reader) (device.Config, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReader(r)
	}
	cfg, _, err := parseSet(br)
	return cfg, err
}

// parseSet parses one transaction and also reports whether it ended at a
// blank line (true) or at the end of the stream (false).
func parseSet(br *bufio.Reader) (device.Config, bool, error) {
	var p setParser
	var buf []byte
	for {
		line, tooLong, rerr := readLine(br, buf[:0])
		buf = line[:0]
		if rerr != nil && rerr != io.EOF {
			if p.err == nil {
				p.err = &Error{Errno: ErrnoIO, Err: fmt.Errorf("reading transaction: %w", rerr)}
			}
			return device.Config{}, false, p.err
		}
		if rerr == io.EOF && len(line) == 0 && !tooLong {
			break
		}
		p.line++
		if len(line) == 0 && !tooLong {
			if p.err != nil {
				return device.Config{}, true, p.err
			}
			freshPeers(&p.cfg)
			return p.cfg, true, nil
		}
		if p.err == nil {
			if tooLong {
				p.err = &Error{Errno: ErrnoProtocol, Line: p.line, Err: ErrLineTooLong}
			} else {
				p.handleLine(string(line))
			}
		}
		if rerr == io.EOF {
			break
		}
	}
	if p.err != nil {
		return device.Config{}, false, p.err
	}
	freshPeers(&p.cfg)
	return p.cfg, false, nil
}

// freshPeers gives replace_peers the protocol's meaning: every peer is
// removed, so those the transaction names start afresh (no preshared key,
// endpoint, keepalive or session from before), as with wireguard-go and
// the kernel. device.Config.ReplacePeers keeps the peers it names, so each
// named peer whose first entry is not already a removal gets one in front.
func freshPeers(cfg *device.Config) {
	if !cfg.ReplacePeers || len(cfg.Peers) == 0 {
		return
	}
	seen := make(map[noise.PublicKey]bool, len(cfg.Peers))
	var removals []device.PeerConfig
	for _, pc := range cfg.Peers {
		if seen[pc.PublicKey] {
			continue
		}
		seen[pc.PublicKey] = true
		if !pc.Remove {
			removals = append(removals, device.PeerConfig{PublicKey: pc.PublicKey, Remove: true})
		}
	}
	if len(removals) > 0 {
		cfg.Peers = append(removals, cfg.Peers...)
	}
}

// readLine reads one line into buf without its "\n" (or "\r\n"). A line
// longer than MaxLineLength is consumed whole and reported as tooLong. At
// the end of the stream it returns what it has with io.EOF.
func readLine(br *bufio.Reader, buf []byte) (line []byte, tooLong bool, err error) {
	line = buf
	for {
		frag, e := br.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(frag) > MaxLineLength+2 {
				tooLong = true
				line = line[:0]
			} else {
				line = append(line, frag...)
			}
		}
		if e == bufio.ErrBufferFull {
			continue
		}
		if e != nil {
			err = e
		}
		break
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if tooLong || len(line) > MaxLineLength {
		return line[:0], true, err
	}
	return line, false, err
}

type setParser struct {
	cfg  device.Config
	peer int  // index of the current peer section in cfg.Peers
	in   bool // whether a public_key line has started a peer section
	// daitaOn: daita_enable=1 came in this peer section.
	daitaOn bool
	line    int
	err     *Error
}

func (p *setParser) fail(errno syscall.Errno, key, value string, err error) {
	p.err = &Error{Errno: errno, Line: p.line, Key: quotable("", key), Value: quotable(key, value), Err: scrubError(err)}
}

func (p *setParser) handleLine(line string) {
	key, value, ok := strings.Cut(line, "=")
	if !ok {
		p.fail(ErrnoProtocol, "", "", fmt.Errorf("%w: %q", ErrSyntax, quotable("", line)))
		return
	}
	if key == "public_key" {
		k, err := parseHexKey(value)
		if err != nil {
			p.fail(ErrnoInvalid, key, value, err)
			return
		}
		p.cfg.Peers = append(p.cfg.Peers, device.PeerConfig{PublicKey: noise.PublicKey(k)})
		p.peer = len(p.cfg.Peers) - 1
		p.in = true
		p.daitaOn = false
		return
	}
	if !p.in {
		p.deviceLine(key, value)
		return
	}
	p.peerLine(&p.cfg.Peers[p.peer], key, value)
}

func (p *setParser) deviceLine(key, value string) {
	switch key {
	case "private_key":
		k, err := parseHexKey(value)
		if err != nil {
			p.fail(ErrnoInvalid, key, "", err)
			return
		}
		pk := noise.PrivateKey(k)
		p.cfg.PrivateKey = &pk
	case "listen_port":
		n, err := parseUint(value, 16)
		if err != nil {
			p.fail(ErrnoInvalid, key, value, err)
			return
		}
		port := uint16(n)
		p.cfg.ListenPort = &port
	case "fwmark":
		n, err := parseUint(value, 32)
		if err != nil {
			p.fail(ErrnoInvalid, key, value, err)
			return
		}
		mark := uint32(n)
		p.cfg.FirewallMark = &mark
	case "replace_peers":
		if err := parseTrue(value); err != nil {
			p.fail(ErrnoInvalid, key, value, err)
			return
		}
		p.cfg.ReplacePeers = true
	default:
		if isPeerKey(key) {
			p.fail(ErrnoInvalid, key, value, ErrNoPeer)
			return
		}
		p.fail(ErrnoInvalid, key, value, fmt.Errorf("%w for the device", ErrUnknownKey))
	}
}

func isPeerKey(key string) bool {
	switch key {
	case "remove", "update_only", "preshared_key", "endpoint",
		"persistent_keepalive_interval", "replace_allowed_ips", "allowed_ip",
		"protocol_version":
		return true
	}
	return isDAITAKey(key)
}

func (p *setParser) peerLine(pc *device.PeerConfig, key, value string) {
	switch key {
	case "remove":
		if err := parseTrue(value); err != nil {
			p.fail(ErrnoInvalid, key, value, err)
			return
		}
		pc.Remove = true
	case "update_only":
		if err := parseTrue(value); err != nil {
			p.fail(ErrnoInvalid, key, value, err)
			return
		}
		pc.UpdateOnly = true
	case "preshared_key":
		k, err := parseHexKey(value)
		if err != nil {
			p.fail(ErrnoInvalid, key, "", err)
			return
		}
		psk := noise.PresharedKey(k)
		pc.PresharedKey = &psk
	case "endpoint":
		ap, err := parseEndpoint(value)
		if err != nil {
			p.fail(ErrnoInvalid, key, value, err)
			return
		}
		pc.Endpoint = &ap
	case "persistent_keepalive_interval":
		n, err := parseUint(value, 16)
		if err != nil {
			p.fail(ErrnoInvalid, key, value, err)
			return
		}
		d := time.Duration(n) * time.Second
		pc.PersistentKeepalive = &d
	case "replace_allowed_ips":
		if err := parseTrue(value); err != nil {
			p.fail(ErrnoInvalid, key, value, err)
			return
		}
		// Lines apply in order: what this section added so far goes too.
		pc.ReplaceAllowedIPs = true
		pc.AllowedIPs = nil
		pc.RemoveAllowedIPs = nil
	case "allowed_ip":
		// "-PREFIX" removes the prefix from this peer. The device removes
		// before it adds, so each line cancels an earlier opposite one to
		// keep the order of lines.
		text, remove := strings.CutPrefix(value, "-")
		pfx, err := netip.ParsePrefix(text)
		if err != nil {
			p.fail(ErrnoInvalid, key, value, fmt.Errorf("not an IP prefix like 10.0.0.0/24 or fd00::/64 (or -PREFIX to remove one): %w", err))
			return
		}
		pfx = pfx.Masked()
		if remove {
			pc.AllowedIPs = withoutPrefix(pc.AllowedIPs, pfx)
			pc.RemoveAllowedIPs = append(pc.RemoveAllowedIPs, pfx)
		} else {
			pc.RemoveAllowedIPs = withoutPrefix(pc.RemoveAllowedIPs, pfx)
			pc.AllowedIPs = append(pc.AllowedIPs, pfx)
		}
	case "protocol_version":
		if value != "1" {
			p.fail(ErrnoInvalid, key, value, errors.New("only protocol version 1 exists"))
			return
		}
	default:
		if isDAITAKey(key) {
			p.daitaLine(pc, key, value)
			return
		}
		if key == "private_key" || key == "listen_port" || key == "fwmark" || key == "replace_peers" {
			p.fail(ErrnoInvalid, key, value, errors.New("device key after a public_key line"))
			return
		}
		p.fail(ErrnoInvalid, key, value, fmt.Errorf("%w for a peer", ErrUnknownKey))
	}
}

// withoutPrefix deletes every pfx from list; an emptied list is nil.
func withoutPrefix(list []netip.Prefix, pfx netip.Prefix) []netip.Prefix {
	list = slices.DeleteFunc(list, func(q netip.Prefix) bool { return q == pfx })
	if len(list) == 0 {
		return nil
	}
	return list
}

// parseHexKey decodes exactly 64 hex digits.
func parseHexKey(s string) ([noise.KeySize]byte, error) {
	var k [noise.KeySize]byte
	if len(s) != 2*noise.KeySize {
		return k, fmt.Errorf("key must be %d hex digits, got %d characters", 2*noise.KeySize, len(s))
	}
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		// hex's error quotes the bad character: a piece of the key.
		for i := 0; i < len(s); i++ {
			if _, err := strconv.ParseUint(s[i:i+1], 16, 8); err != nil {
				return k, fmt.Errorf("key is not hex: character %d is not a hex digit", i+1)
			}
		}
		return k, errors.New("key is not hex")
	}
	return k, nil
}

// parseUint parses a decimal number of at most bits bits.
func parseUint(s string, bits int) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return 0, fmt.Errorf("out of range: at most %d", uint64(1)<<bits-1)
		}
		return 0, errors.New("not a decimal number")
	}
	return n, nil
}

func parseTrue(s string) error {
	if s != "true" {
		return errors.New(`the only valid value is "true"`)
	}
	return nil
}

// parseEndpoint parses 1.2.3.4:51820 or [2001:db8::1]:51820 (a zone is
// allowed on IPv6: [fe80::1%eth0]:51820).
func parseEndpoint(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("not IP:port (IPv6 as [addr]:port): %w", err)
	}
	return ap, nil
}
