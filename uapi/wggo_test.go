package uapi

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/conn"
	wgdevice "golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"
)

// reference is a wireguard-go device on a bind without sockets, used to
// check that a transaction is accepted or refused, and
// with which errno, exactly as wireguard-go decides.
type reference struct {
	dev *wgdevice.Device
}

func newReference(tb testing.TB) *reference {
	tb.Helper()
	tn := tuntest.NewChannelTUN()
	d := wgdevice.NewDevice(tn.TUN(), noSocketBind{conn.NewStdNetBind()}, wgdevice.NewLogger(wgdevice.LogLevelSilent, ""))
	tb.Cleanup(d.Close)
	return &reference{dev: d}
}

// noSocketBind parses endpoints as wireguard-go's default bind does but
// opens no socket, so a listen_port line never fails for a reason outside
// the transaction.
type noSocketBind struct{ conn.Bind }

func (noSocketBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	if port == 0 {
		port = 1
	}
	return nil, port, nil
}
func (noSocketBind) Close() error                       { return nil }
func (noSocketBind) SetMark(uint32) error               { return nil }
func (noSocketBind) Send([][]byte, conn.Endpoint) error { return nil }
func (noSocketBind) BatchSize() int                     { return 1 }

// errno returns the positive errno wireguard-go answers for body (0 for
// success) and resets the reference device's peers.
func (r *reference) errno(body string) int64 {
	err := r.dev.IpcSet(body)
	r.dev.IpcSet("replace_peers=true\n")
	if err == nil {
		return 0
	}
	var ie *wgdevice.IPCError
	if errors.As(err, &ie) {
		return -ie.ErrorCode()
	}
	return -1
}

// comparable reports whether body is inside the part of the protocol where
// this package and wireguard-go are meant to agree: wireguard-go limits
// lines at a different length.
func comparable(body []byte) bool {
	for line := range bytes.SplitSeq(body, []byte("\n")) {
		if len(line) > MaxLineLength {
			return false
		}
	}
	return true
}

// transaction returns the part of body ParseSet reads: up to the first
// blank line.
func transaction(body string) string {
	for i := 0; i < len(body); {
		j := strings.IndexByte(body[i:], '\n')
		if j < 0 {
			return body
		}
		line := strings.TrimSuffix(body[i:i+j], "\r")
		if line == "" {
			return body[:i+j+1]
		}
		i += j + 1
	}
	return body
}

func TestAcceptsExactlyWhatWireguardGoAccepts(t *testing.T) {
	ref := newReference(t)
	peer := "public_key=" + hexPub1 + "\n"
	bodies := []string{
		"",
		"private_key=" + hexPriv + "\nlisten_port=0\nfwmark=0\nreplace_peers=true\n",
		"private_key=" + strings.Repeat("0", 64) + "\n",
		"private_key=" + strings.ToUpper(hexPriv) + "\n",
		"listen_port=65535\n", "listen_port=65536\n", "listen_port=+1\n", "listen_port= 1\n", "listen_port=0051820\n",
		"fwmark=4294967295\n", "fwmark=4294967296\n", "fwmark=\n",
		"replace_peers=true\n", "replace_peers=True\n", "replace_peers=\n",
		"nonsense=1\n", "=\n", "novalue\n", "listen_port=1\r\n",
		"endpoint=1.2.3.4:1\n", "allowed_ip=1.2.3.4/32\n", "protocol_version=1\n",
		peer, peer + peer, peer + "listen_port=1\n", peer + "private_key=" + hexPriv + "\n",
		peer + "remove=true\nendpoint=bad\n", peer + "remove=true\nallowed_ip=1.1.1.1/32\n",
		peer + "update_only=true\n", peer + "update_only=false\n", peer + "remove=false\n",
		peer + "preshared_key=" + hexPSK + "\n", peer + "preshared_key=" + hexPSK[:62] + "\n",
		peer + "endpoint=1.2.3.4:51820\n", peer + "endpoint=[::1]:51820\n", peer + "endpoint=[fe80::1%eth0]:1\n",
		peer + "endpoint=[::ffff:1.2.3.4]:9\n", peer + "endpoint=1.2.3.4:0\n", peer + "endpoint=1.2.3.4\n",
		peer + "endpoint=::1:51820\n", peer + "endpoint=host:1\n", peer + "endpoint=1.2.3.4:65536\n", peer + "endpoint=\n",
		peer + "persistent_keepalive_interval=0\n", peer + "persistent_keepalive_interval=65535\n",
		peer + "persistent_keepalive_interval=65536\n", peer + "persistent_keepalive_interval=-1\n",
		peer + "replace_allowed_ips=true\n", peer + "replace_allowed_ips=1\n",
		peer + "allowed_ip=0.0.0.0/0\n", peer + "allowed_ip=::/0\n", peer + "allowed_ip=10.1.2.3/8\n",
		peer + "allowed_ip=10.0.0.1\n", peer + "allowed_ip=10.0.0.0/33\n", peer + "allowed_ip=fe80::1%eth0/64\n",
		peer + "allowed_ip=::ffff:1.2.3.4/128\n", peer + "allowed_ip=01.2.3.4/32\n",
		peer + "allowed_ip=-10.0.0.0/8\n", peer + "allowed_ip=-10.0.0.1\n", peer + "allowed_ip=-\n",
		peer + "allowed_ip=--10.0.0.0/8\n", peer + "allowed_ip=- 10.0.0.0/8\n",
		peer + "protocol_version=1\n", peer + "protocol_version=2\n", peer + "protocol_version=\n", peer + "protocol_version=01\n",
		peer + "bogus=1\n", peer + "bogus\n",
		"public_key=" + hexPub1[:63] + "\n", "public_key=" + strings.Repeat("x", 64) + "\n",
		"listen_port=1\n\nnonsense\n",
	}
	for _, body := range bodies {
		want := ref.errno(body)
		_, err := ParseSet(strings.NewReader(body))
		if got := int64(ErrnoOf(err)); got != want {
			t.Errorf("%q: errno %d, wireguard-go %d (%v)", body, got, want, err)
		}
	}
}

// TestLongestLineLikeWireguardGo: a line of MaxLineLength characters is
// read whole by both implementations, one character more is refused by both.
func TestLongestLineLikeWireguardGo(t *testing.T) {
	ref := newReference(t)
	line := func(n int) string {
		return "listen_port=" + strings.Repeat("0", n-len("listen_port=")-1) + "1\n"
	}
	if got, want := errnoOf(t, line(MaxLineLength)), ref.errno(line(MaxLineLength)); got != 0 || want != 0 {
		t.Fatalf("line of %d characters: errno %d, wireguard-go %d", MaxLineLength, got, want)
	}
	if got, want := errnoOf(t, line(MaxLineLength+1)), ref.errno(line(MaxLineLength+1)); got == 0 || want == 0 {
		t.Fatalf("line of %d characters: errno %d, wireguard-go %d", MaxLineLength+1, got, want)
	}
}

func errnoOf(t *testing.T, body string) int64 {
	t.Helper()
	_, err := ParseSet(strings.NewReader(body))
	return int64(ErrnoOf(err))
}

// FuzzParseSet feeds arbitrary bytes to ParseSet. It must not panic; what
// it accepts must survive AppendSet and ParseSet unchanged; and it must
// accept or refuse, with the same errno, exactly what wireguard-go does.
func FuzzParseSet(f *testing.F) {
	peer := "public_key=" + hexPub1 + "\n"
	for _, s := range []string{
		"", "\n", "listen_port=1\n\n",
		"private_key=" + hexPriv + "\nlisten_port=51820\nfwmark=1\nreplace_peers=true\n" + peer +
			"preshared_key=" + hexPSK + "\nendpoint=[::1]:1\npersistent_keepalive_interval=25\n" +
			"replace_allowed_ips=true\nallowed_ip=10.0.0.0/8\nprotocol_version=1\n\n",
		peer + "remove=true\n", peer + "update_only=true\nendpoint=1.2.3.4:5\n\n",
		peer + "allowed_ip=fd00::/64\nallowed_ip=1.2.3.4/32\n",
		peer + "allowed_ip=1.2.3.4/32\nallowed_ip=-1.2.3.4/32\nallowed_ip=-fd00::/8\n",
		"listen_port=x\n\nlisten_port=1\n\n", "novalue\n", "get=1\n\n",
	} {
		f.Add([]byte(s))
	}
	ref := newReference(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseSet(bytes.NewReader(data))
		if err != nil {
			var ue *Error
			if !errors.As(err, &ue) || ue.Errno == 0 || ue.Err == nil {
				t.Fatalf("error without errno: %v", err)
			}
			_ = err.Error()
		} else {
			again, err := ParseSet(bytes.NewReader(AppendSet(nil, cfg)))
			if err != nil {
				t.Fatalf("AppendSet output refused: %v\n%s", err, AppendSet(nil, cfg))
			}
			if !reflect.DeepEqual(cfg, again) {
				t.Fatalf("round trip changed the config:\n%+v\n%+v", cfg, again)
			}
		}
		body := transaction(string(data))
		if !comparable([]byte(body)) {
			return
		}
		if got, want := int64(ErrnoOf(err)), ref.errno(body); got != want {
			t.Fatalf("%q: errno %d, wireguard-go %d (%v)", body, got, want, err)
		}
	})
}
