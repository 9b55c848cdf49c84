package uapi

import (
	"encoding/hex"
	"io"
	"strconv"
	"time"

	"github.com/gotatun/gotatun/device"
	"github.com/gotatun/gotatun/noise"
)

// WriteGet writes s as the body of a `get=1` answer, in the order
// wireguard-go writes it: private_key (if set), listen_port and fwmark (if
// not zero), then for each peer public_key, preshared_key,
// protocol_version, endpoint (if known), last_handshake_time_sec,
// last_handshake_time_nsec, tx_bytes, rx_bytes,
// persistent_keepalive_interval and one allowed_ip line per prefix. It
// writes neither the errno line nor the blank line that close the answer.
func WriteGet(w io.Writer, s device.State) error {
	b := AppendGet(nil, s)
	if _, err := w.Write(b); err != nil {
		return &Error{Errno: ErrnoIO, Err: err}
	}
	return nil
}

// AppendGet appends what WriteGet writes to b.
func AppendGet(b []byte, s device.State) []byte {
	if !s.PrivateKey.IsZero() {
		b = appendKey(b, "private_key", s.PrivateKey)
	}
	if s.ListenPort != 0 {
		b = appendUint(b, "listen_port", uint64(s.ListenPort))
	}
	if s.FirewallMark != 0 {
		b = appendUint(b, "fwmark", uint64(s.FirewallMark))
	}
	for i := range s.Peers {
		p := &s.Peers[i]
		b = appendKey(b, "public_key", p.PublicKey)
		b = appendKey(b, "preshared_key", p.PresharedKey)
		version := p.ProtocolVersion
		if version == 0 {
			version = 1
		}
		b = appendUint(b, "protocol_version", uint64(version))
		if p.Endpoint.IsValid() {
			b = append(b, "endpoint="...)
			b = p.Endpoint.AppendTo(b)
			b = append(b, '\n')
		}
		var sec, nsec int64
		if !p.LastHandshake.IsZero() {
			sec = p.LastHandshake.Unix()
			nsec = int64(p.LastHandshake.Nanosecond())
		}
		b = appendInt(b, "last_handshake_time_sec", sec)
		b = appendInt(b, "last_handshake_time_nsec", nsec)
		b = appendUint(b, "tx_bytes", p.TxBytes)
		b = appendUint(b, "rx_bytes", p.RxBytes)
		b = appendUint(b, "persistent_keepalive_interval", uint64(p.PersistentKeepalive/time.Second))
		b = appendDAITA(b, p.DAITA, p.DAITAStats)
		for _, pfx := range p.AllowedIPs {
			b = append(b, "allowed_ip="...)
			b = pfx.AppendTo(b)
			b = append(b, '\n')
		}
	}
	return b
}

func appendKey[K noise.PrivateKey | noise.PublicKey | noise.PresharedKey](b []byte, name string, k K) []byte {
	b = append(b, name...)
	b = append(b, '=')
	b = hex.AppendEncode(b, k[:])
	return append(b, '\n')
}

func appendUint(b []byte, name string, v uint64) []byte {
	b = append(b, name...)
	b = append(b, '=')
	b = strconv.AppendUint(b, v, 10)
	return append(b, '\n')
}

func appendInt(b []byte, name string, v int64) []byte {
	b = append(b, name...)
	b = append(b, '=')
	b = strconv.AppendInt(b, v, 10)
	return append(b, '\n')
}

// AppendSet appends c as the body of a `set=1` transaction (without the
// operation line and the closing blank line) to b: the inverse of ParseSet.
func AppendSet(b []byte, c device.Config) []byte {
	if c.PrivateKey != nil {
		b = appendKey(b, "private_key", *c.PrivateKey)
	}
	if c.ListenPort != nil {
		b = appendUint(b, "listen_port", uint64(*c.ListenPort))
	}
	if c.FirewallMark != nil {
		b = appendUint(b, "fwmark", uint64(*c.FirewallMark))
	}
	if c.ReplacePeers {
		b = append(b, "replace_peers=true\n"...)
	}
	for i := range c.Peers {
		p := &c.Peers[i]
		b = appendKey(b, "public_key", p.PublicKey)
		if p.Remove {
			b = append(b, "remove=true\n"...)
		}
		if p.UpdateOnly {
			b = append(b, "update_only=true\n"...)
		}
		if p.PresharedKey != nil {
			b = appendKey(b, "preshared_key", *p.PresharedKey)
		}
		if p.Endpoint != nil {
			b = append(b, "endpoint="...)
			b = p.Endpoint.AppendTo(b)
			b = append(b, '\n')
		}
		if p.PersistentKeepalive != nil {
			b = appendUint(b, "persistent_keepalive_interval", uint64(*p.PersistentKeepalive/time.Second))
		}
		b = appendDAITASet(b, p)
		if p.ReplaceAllowedIPs {
			b = append(b, "replace_allowed_ips=true\n"...)
		}
		for _, pfx := range p.RemoveAllowedIPs {
			b = append(b, "allowed_ip=-"...)
			b = pfx.AppendTo(b)
			b = append(b, '\n')
		}
		for _, pfx := range p.AllowedIPs {
			b = append(b, "allowed_ip="...)
			b = pfx.AppendTo(b)
			b = append(b, '\n')
		}
	}
	return b
}
