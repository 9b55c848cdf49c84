package uapi

import (
	"bufio"
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gotatun/gotatun/device"
	"github.com/gotatun/gotatun/noise"
)

// newLineReader reads s through the smallest buffer bufio allows, so long
// lines cross buffer boundaries.
func newLineReader(s string) *bufio.Reader {
	return bufio.NewReaderSize(strings.NewReader(s), 16)
}

func sampleState(t testing.TB) device.State {
	priv := noise.PrivateKey(mustKey(t, hexPriv))
	return device.State{
		PrivateKey:   priv,
		PublicKey:    priv.PublicKey(),
		ListenPort:   12912,
		FirewallMark: 0,
		Peers: []device.PeerState{
			{
				PublicKey:           noise.PublicKey(mustKey(t, hexPub1)),
				PresharedKey:        noise.PresharedKey(mustKey(t, hexPSK)),
				Endpoint:            netip.MustParseAddrPort("[abcd:23::33%2]:51820"),
				PersistentKeepalive: 111 * time.Second,
				AllowedIPs:          []netip.Prefix{netip.MustParsePrefix("192.168.4.4/32")},
				LastHandshake:       time.Unix(1700000000, 123456789),
				RxBytes:             2224,
				TxBytes:             38333,
				ProtocolVersion:     1,
			},
			{
				PublicKey:       noise.PublicKey(mustKey(t, hexPub2)),
				AllowedIPs:      []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/64")},
				ProtocolVersion: 1,
			},
		},
	}
}

func TestWriteGetExact(t *testing.T) {
	want := "private_key=" + hexPriv + "\n" +
		"listen_port=12912\n" +
		"public_key=" + hexPub1 + "\n" +
		"preshared_key=" + hexPSK + "\n" +
		"protocol_version=1\n" +
		"endpoint=[abcd:23::33%2]:51820\n" +
		"last_handshake_time_sec=1700000000\n" +
		"last_handshake_time_nsec=123456789\n" +
		"tx_bytes=38333\n" +
		"rx_bytes=2224\n" +
		"persistent_keepalive_interval=111\n" +
		"allowed_ip=192.168.4.4/32\n" +
		"public_key=" + hexPub2 + "\n" +
		"preshared_key=" + strings.Repeat("0", 64) + "\n" +
		"protocol_version=1\n" +
		"last_handshake_time_sec=0\n" +
		"last_handshake_time_nsec=0\n" +
		"tx_bytes=0\n" +
		"rx_bytes=0\n" +
		"persistent_keepalive_interval=0\n" +
		"allowed_ip=10.0.0.0/8\n" +
		"allowed_ip=fd00::/64\n"
	var buf bytes.Buffer
	if err := WriteGet(&buf, sampleState(t)); err != nil {
		t.Fatal(err)
	}
	if buf.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestWriteGetEmptyDevice(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteGet(&buf, device.State{}); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Fatalf("empty device wrote %q", buf.String())
	}
	buf.Reset()
	WriteGet(&buf, device.State{FirewallMark: 7})
	if buf.String() != "fwmark=7\n" {
		t.Fatalf("got %q", buf.String())
	}
}

func TestWriteGetWriteError(t *testing.T) {
	err := WriteGet(failWriter{}, sampleState(t))
	if ErrnoOf(err) != ErrnoIO {
		t.Fatalf("got %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken") }

func BenchmarkAppendGet(b *testing.B) {
	s := sampleState(b)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendGet(buf[:0], s)
	}
}

func BenchmarkParseSet(b *testing.B) {
	in := []byte("private_key=" + hexPriv + "\nlisten_port=51820\nreplace_peers=true\n" +
		"public_key=" + hexPub1 + "\npreshared_key=" + hexPSK + "\nendpoint=1.2.3.4:51820\n" +
		"persistent_keepalive_interval=25\nreplace_allowed_ips=true\nallowed_ip=10.0.0.0/24\nallowed_ip=fd00::/64\n\n")
	r := bytes.NewReader(in)
	br := bufio.NewReader(r)
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(in)
		br.Reset(r)
		if _, err := ParseSet(br); err != nil {
			b.Fatal(err)
		}
	}
}
