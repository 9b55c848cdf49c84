package uapi_test

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/gotatun/gotatun/device"
	"github.com/gotatun/gotatun/transport"
	"github.com/gotatun/gotatun/tun"
	"github.com/gotatun/gotatun/uapi"
)

// Configuring a device with the text wg(8) sends (a set=1 transaction's
// body, keys in hex) and reading it back as a get=1 answer.
func ExampleParseSet() {
	d, err := device.New(device.Options{
		TUN:  tun.NewMemory("wg-example", 1420, 16),
		Bind: transport.NewNetwork().NewBind(netip.MustParseAddr("192.0.2.1")),
	})
	if err != nil {
		panic(err)
	}
	defer d.Close()

	cfg, err := uapi.ParseSet(strings.NewReader(`private_key=e84b5a6d2717c1003a13b431570353dbaca9146cf150c5f8575680feba52027a
listen_port=51820
public_key=b85996fecc9c7f1fc6d2572a76eda11d59bcd20be8e543b15ce4bd85a8e75a33
endpoint=192.0.2.2:51820
allowed_ip=10.0.0.2/32
allowed_ip=fd00::2/128

`))
	if err != nil {
		panic(err) // an *uapi.Error naming the line and key
	}
	if err := d.Apply(cfg); err != nil {
		panic(err) // nothing changed
	}
	fmt.Print(string(uapi.AppendGet(nil, d.State())))
	// Output:
	// private_key=e84b5a6d2717c1003a13b431570353dbaca9146cf150c5f8575680feba52027a
	// listen_port=51820
	// public_key=b85996fecc9c7f1fc6d2572a76eda11d59bcd20be8e543b15ce4bd85a8e75a33
	// preshared_key=0000000000000000000000000000000000000000000000000000000000000000
	// protocol_version=1
	// endpoint=192.0.2.2:51820
	// last_handshake_time_sec=0
	// last_handshake_time_nsec=0
	// tx_bytes=0
	// rx_bytes=0
	// persistent_keepalive_interval=0
	// allowed_ip=10.0.0.2/32
	// allowed_ip=fd00::2/128
}
