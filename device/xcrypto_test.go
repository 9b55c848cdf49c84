package device

import (
	"net/netip"
	"testing"

	"github.com/gotatun/gotatun/internal/cryptoimpl"
	"github.com/gotatun/gotatun/noise/chachapoly"
	"github.com/gotatun/gotatun/transport"
	"github.com/gotatun/gotatun/tun"
)

// TestOptionsXCrypto checks that Options.XCrypto forces x/crypto and that
// two devices then handshake and carry data with it.
func TestOptionsXCrypto(t *testing.T) {
	old := cryptoimpl.Set(false)
	t.Cleanup(func() { cryptoimpl.Set(old) })
	nw := transport.NewNetwork()
	d, err := New(Options{TUN: tun.NewMemory("xc", 1420, 16), Bind: nw.NewBind(netip.MustParseAddr("192.0.2.9")), XCrypto: true})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if !cryptoimpl.XCrypto() || chachapoly.Implementation() != chachapoly.ImplXCrypto {
		t.Fatalf("Options.XCrypto did not force x/crypto: AEAD %s", chachapoly.Implementation())
	}
	newPair(t).ping(t, "x/crypto")
}
