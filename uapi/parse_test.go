package uapi

import (
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gotatun/gotatun/device"
	"github.com/gotatun/gotatun/noise"
)

// Keys used throughout the tests, in the protocol's hex form.
const (
	hexPriv = "e84b5a6d2717c1003a13b431570353dbaca9146cf150c5f8575680feba52027a"
	hexPub1 = "b85996fecc9c7f1fc6d2572a76eda11d59bcd20be8e543b15ce4bd85a8e75a33"
	hexPSK  = "188515093e952f5f22e865cef3012e72f8b5f0b598ac0309d5dacce3b70fcf52"
	hexPub2 = "58402e695ba1772b1cc9309755f043251ea77fdcf10fbe63989ceb7e19321376"
	hexPub3 = "662e14fd594556f522604703340351258903b64f35553763f19426ab2a515c58"
)

func mustKey(t testing.TB, s string) [32]byte {
	t.Helper()
	k, err := parseHexKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ptr[T any](v T) *T { return &v }

func TestParseSetEveryKey(t *testing.T) {
	in := strings.Join([]string{
		"private_key=" + hexPriv,
		"listen_port=51820",
		"fwmark=4294967295",
		"replace_peers=true",
		"public_key=" + hexPub1,
		"preshared_key=" + hexPSK,
		"endpoint=1.2.3.4:51820",
		"persistent_keepalive_interval=25",
		"replace_allowed_ips=true",
		"allowed_ip=10.0.0.0/24",
		"allowed_ip=fd00::1/128",
		"protocol_version=1",
		"public_key=" + hexPub2,
		"update_only=true",
		"endpoint=[::1]:65535",
		"allowed_ip=192.168.1.77/24", // host bits are cleared
		"persistent_keepalive_interval=0",
		"public_key=" + hexPub3,
		"remove=true",
		"public_key=" + hexPub1,
		"endpoint=[fe80::1%eth0]:1",
		"", "",
	}, "\n")
	got, err := ParseSet(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := device.Config{
		PrivateKey:   ptr(noise.PrivateKey(mustKey(t, hexPriv))),
		ListenPort:   ptr(uint16(51820)),
		FirewallMark: ptr(uint32(4294967295)),
		ReplacePeers: true,
		Peers: []device.PeerConfig{
			// replace_peers: the named peers start afresh.
			{PublicKey: noise.PublicKey(mustKey(t, hexPub1)), Remove: true},
			{PublicKey: noise.PublicKey(mustKey(t, hexPub2)), Remove: true},
			{
				PublicKey:           noise.PublicKey(mustKey(t, hexPub1)),
				PresharedKey:        ptr(noise.PresharedKey(mustKey(t, hexPSK))),
				Endpoint:            ptr(netip.MustParseAddrPort("1.2.3.4:51820")),
				PersistentKeepalive: ptr(25 * time.Second),
				ReplaceAllowedIPs:   true,
				AllowedIPs:          []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("fd00::1/128")},
			},
			{
				PublicKey:           noise.PublicKey(mustKey(t, hexPub2)),
				UpdateOnly:          true,
				Endpoint:            ptr(netip.MustParseAddrPort("[::1]:65535")),
				AllowedIPs:          []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")},
				PersistentKeepalive: ptr(time.Duration(0)),
			},
			{PublicKey: noise.PublicKey(mustKey(t, hexPub3)), Remove: true},
			{
				PublicKey: noise.PublicKey(mustKey(t, hexPub1)),
				Endpoint:  ptr(netip.MustParseAddrPort("[fe80::1%eth0]:1")),
			},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseSet:\n got %+v\nwant %+v", got, want)
	}
	// And back: AppendSet is the inverse.
	again, err := ParseSet(strings.NewReader(string(AppendSet(nil, got)) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", again, want)
	}
}

func TestParseSetEmptyAndEOF(t *testing.T) {
	for _, in := range []string{"", "\n", "listen_port=1"} {
		if _, err := ParseSet(strings.NewReader(in)); err != nil {
			t.Errorf("ParseSet(%q): %v", in, err)
		}
	}
	// Whatever follows the blank line is not read as part of it.
	cfg, err := ParseSet(strings.NewReader("listen_port=7\n\nbogus\n"))
	if err != nil || *cfg.ListenPort != 7 {
		t.Fatalf("got %+v, %v", cfg, err)
	}
	// Windows line ends are accepted, as wireguard-go accepts them.
	cfg, err = ParseSet(strings.NewReader("listen_port=8\r\n\r\n"))
	if err != nil || *cfg.ListenPort != 8 {
		t.Fatalf("CRLF: got %+v, %v", cfg, err)
	}
}

func TestParseSetReplaceAllowedIPsClearsEarlierLines(t *testing.T) {
	in := "public_key=" + hexPub1 + "\nallowed_ip=10.0.0.1/32\nreplace_allowed_ips=true\nallowed_ip=10.0.0.2/32\n\n"
	cfg, err := ParseSet(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Peers[0]
	if !p.ReplaceAllowedIPs || len(p.AllowedIPs) != 1 || p.AllowedIPs[0] != netip.MustParsePrefix("10.0.0.2/32") {
		t.Fatalf("got %+v", p)
	}
}

// allowed_ip=-PREFIX removes; later lines win over earlier opposite ones.
func TestParseSetAllowedIPRemoval(t *testing.T) {
	in := "public_key=" + hexPub1 + "\n" +
		"allowed_ip=10.0.0.1/32\nallowed_ip=-10.0.0.1/32\n" + // added, then removed
		"allowed_ip=-10.0.0.2/32\nallowed_ip=10.0.0.2/32\n" + // removed, then added
		"allowed_ip=-10.9.9.9/8\n\n" // masked like additions
	cfg, err := ParseSet(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Peers[0]
	wantAdd := []netip.Prefix{netip.MustParsePrefix("10.0.0.2/32")}
	wantRemove := []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}
	if !slices.Equal(p.AllowedIPs, wantAdd) || !slices.Equal(p.RemoveAllowedIPs, wantRemove) {
		t.Fatalf("add %v remove %v; want %v and %v", p.AllowedIPs, p.RemoveAllowedIPs, wantAdd, wantRemove)
	}
	if got := string(AppendSet(nil, cfg)); !strings.Contains(got, "allowed_ip=-10.0.0.1/32\nallowed_ip=-10.0.0.0/8\nallowed_ip=10.0.0.2/32\n") {
		t.Fatalf("AppendSet wrote:\n%s", got)
	}
}

func TestParseSetErrors(t *testing.T) {
	peer := "public_key=" + hexPub1 + "\n"
	tests := []struct {
		name  string
		in    string
		errno syscall.Errno
		line  int
		key   string
		msg   string // in the error text
	}{
		{"no equals", "listen_port\n", ErrnoProtocol, 1, "", "not key=value"},
		{"unknown device key", "listen_prot=1\n", ErrnoInvalid, 1, "listen_prot", "unknown key"},
		{"unknown peer key", peer + "keepalive=1\n", ErrnoInvalid, 2, "keepalive", "unknown key"},
		{"peer key before public_key", "endpoint=1.2.3.4:5\n", ErrnoInvalid, 1, "endpoint", "before any public_key"},
		{"device key in peer", peer + "listen_port=1\n", ErrnoInvalid, 2, "listen_port", "after a public_key"},
		{"private key short", "private_key=" + hexPriv[:63] + "\n", ErrnoInvalid, 1, "private_key", "64 hex digits, got 63"},
		{"private key not hex", "private_key=" + strings.Repeat("zz", 32) + "\n", ErrnoInvalid, 1, "private_key", "not hex"},
		{"private key base64", "private_key=6EtabScXwQA6E7QxVwNT26ypFGzxUMX4V1aA/rpSAno=\n", ErrnoInvalid, 1, "private_key", "64 hex digits"},
		{"public key bad", "public_key=abc\n", ErrnoInvalid, 1, "public_key", "64 hex digits"},
		{"psk bad", peer + "preshared_key=" + strings.Repeat("g", 64) + "\n", ErrnoInvalid, 2, "preshared_key", "not hex"},
		{"listen port too big", "listen_port=65536\n", ErrnoInvalid, 1, "listen_port", "at most 65535"},
		{"listen port negative", "listen_port=-1\n", ErrnoInvalid, 1, "listen_port", "not a decimal"},
		{"listen port empty", "listen_port=\n", ErrnoInvalid, 1, "listen_port", "not a decimal"},
		{"fwmark too big", "fwmark=4294967296\n", ErrnoInvalid, 1, "fwmark", "at most 4294967295"},
		{"fwmark hex", "fwmark=0x10\n", ErrnoInvalid, 1, "fwmark", "not a decimal"},
		{"replace_peers false", "replace_peers=false\n", ErrnoInvalid, 1, "replace_peers", `"true"`},
		{"remove 1", peer + "remove=1\n", ErrnoInvalid, 2, "remove", `"true"`},
		{"update_only yes", peer + "update_only=yes\n", ErrnoInvalid, 2, "update_only", `"true"`},
		{"replace_allowed_ips TRUE", peer + "replace_allowed_ips=TRUE\n", ErrnoInvalid, 2, "replace_allowed_ips", `"true"`},
		{"endpoint no port", peer + "endpoint=1.2.3.4\n", ErrnoInvalid, 2, "endpoint", "not IP:port"},
		{"endpoint v6 no brackets", peer + "endpoint=::1:51820\n", ErrnoInvalid, 2, "endpoint", "not IP:port"},
		{"endpoint hostname", peer + "endpoint=example.com:51820\n", ErrnoInvalid, 2, "endpoint", "not IP:port"},
		{"endpoint port too big", peer + "endpoint=1.2.3.4:65536\n", ErrnoInvalid, 2, "endpoint", "not IP:port"},
		{"keepalive too big", peer + "persistent_keepalive_interval=65536\n", ErrnoInvalid, 2, "persistent_keepalive_interval", "at most 65535"},
		{"keepalive negative", peer + "persistent_keepalive_interval=-5\n", ErrnoInvalid, 2, "persistent_keepalive_interval", "not a decimal"},
		{"prefix no bits", peer + "allowed_ip=10.0.0.1\n", ErrnoInvalid, 2, "allowed_ip", "not an IP prefix"},
		{"prefix too long", peer + "allowed_ip=10.0.0.0/33\n", ErrnoInvalid, 2, "allowed_ip", "not an IP prefix"},
		{"prefix v6 too long", peer + "allowed_ip=::/129\n", ErrnoInvalid, 2, "allowed_ip", "not an IP prefix"},
		{"prefix garbage", peer + "allowed_ip=banana/8\n", ErrnoInvalid, 2, "allowed_ip", "not an IP prefix"},
		{"prefix removal garbage", peer + "allowed_ip=-banana/8\n", ErrnoInvalid, 2, "allowed_ip", "not an IP prefix"},
		{"prefix removal twice negated", peer + "allowed_ip=--10.0.0.0/8\n", ErrnoInvalid, 2, "allowed_ip", "not an IP prefix"},
		{"protocol version 2", peer + "protocol_version=2\n", ErrnoInvalid, 2, "protocol_version", "only protocol version 1"},
		{"protocol version 01", peer + "protocol_version=01\n", ErrnoInvalid, 2, "protocol_version", "only protocol version 1"},
		{"line too long", "listen_port=" + strings.Repeat("1", MaxLineLength) + "\n", ErrnoProtocol, 1, "", "line longer"},
		{"first error wins", "listen_port=x\nfwmark=y\n", ErrnoInvalid, 1, "listen_port", "not a decimal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := ParseSet(strings.NewReader(tt.in + "\n"))
			var ue *Error
			if !errors.As(err, &ue) {
				t.Fatalf("want *Error, got %v", err)
			}
			if ue.Errno != tt.errno || ue.Line != tt.line || ue.Key != tt.key {
				t.Errorf("got errno %d line %d key %q, want %d %d %q", ue.Errno, ue.Line, ue.Key, tt.errno, tt.line, tt.key)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not mention %q", err, tt.msg)
			}
			if ErrnoOf(err) != tt.errno {
				t.Errorf("ErrnoOf = %d", ErrnoOf(err))
			}
			if !reflect.DeepEqual(cfg, device.Config{}) {
				t.Errorf("config not empty on error: %+v", cfg)
			}
		})
	}
}

func TestParseSetErrorHidesSecrets(t *testing.T) {
	secret := strings.Repeat("ab", 31) + "zz"
	for _, in := range []string{
		"private_key=" + secret + "\n",
		"public_key=" + hexPub1 + "\npreshared_key=" + secret + "\n",
	} {
		_, err := ParseSet(strings.NewReader(in))
		if err == nil || strings.Contains(err.Error(), secret[:20]) {
			t.Errorf("error %v reveals the key", err)
		}
	}
}

func TestParseSetDrainsAfterError(t *testing.T) {
	r := newLineReader("listen_port=bad\nfwmark=1\nprivate_key=nothex\n\nlisten_port=9\n\n")
	if _, err := ParseSet(r); err == nil {
		t.Fatal("want error")
	}
	cfg, err := ParseSet(r)
	if err != nil || cfg.ListenPort == nil || *cfg.ListenPort != 9 || cfg.FirewallMark != nil {
		t.Fatalf("second transaction: %+v, %v", cfg, err)
	}
}

func TestParseSetLongLinesDrain(t *testing.T) {
	// A line far longer than any buffer is consumed whole.
	in := "listen_port=" + strings.Repeat("9", 100000) + "\n\nfwmark=3\n\n"
	r := newLineReader(in)
	if _, err := ParseSet(r); ErrnoOf(err) != ErrnoProtocol {
		t.Fatalf("got %v", err)
	}
	cfg, err := ParseSet(r)
	if err != nil || *cfg.FirewallMark != 3 {
		t.Fatalf("next transaction: %+v, %v", cfg, err)
	}
}

func TestParseSetReadError(t *testing.T) {
	_, err := ParseSet(errReader{})
	if ErrnoOf(err) != ErrnoIO {
		t.Fatalf("got %v", err)
	}
}

func TestErrnoOf(t *testing.T) {
	if ErrnoOf(nil) != 0 {
		t.Error("nil")
	}
	if ErrnoOf(errors.New("x")) != ErrnoInvalid {
		t.Error("plain error")
	}
	wrapped := &wrapErr{syscall.EADDRINUSE}
	if ErrnoOf(wrapped) != syscall.EADDRINUSE {
		t.Error("wrapped errno")
	}
}

type wrapErr struct{ err error }

func (e *wrapErr) Error() string { return "bind: " + e.err.Error() }
func (e *wrapErr) Unwrap() error { return e.err }

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, syscall.ECONNRESET }
