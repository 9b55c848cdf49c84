package device_test

import (
	"log/slog"
	"net/netip"
	"os"
	"os/signal"

	"github.com/gotatun/gotatun/device"
	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/transport"
	"github.com/gotatun/gotatun/tun"
)

// A device on a Linux TUN interface and real UDP sockets, as the daemon
// runs one (needs root or CAP_NET_ADMIN). Give wg0 an address and bring it
// up with ip(8) as for any interface.
func Example_linuxTUN() {
	t, err := tun.CreateTUN("wg0", 1420)
	if err != nil {
		panic(err)
	}
	d, err := device.New(device.Options{
		TUN:    t,
		Bind:   transport.NewDefaultBind(),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		panic(err)
	}
	defer d.Close() // closes the TUN too

	key, _ := noise.ParsePrivateKey(os.Getenv("WG_PRIVATE_KEY")) // base64, as wg genkey prints
	peer, _ := noise.ParsePublicKey("hvD2gu6k3ZiC7D5ezUMJRqCsWxqz7gr6dQh8uJs9BnQ=")
	port := uint16(51820)
	endpoint := netip.MustParseAddrPort("203.0.113.1:51820")
	if err := d.Apply(device.Config{
		PrivateKey: &key,
		ListenPort: &port,
		Peers: []device.PeerConfig{{
			PublicKey:  peer,
			Endpoint:   &endpoint,
			AllowedIPs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")},
		}},
	}); err != nil {
		panic(err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	<-sig
}
