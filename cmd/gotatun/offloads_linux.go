package main

import (
	"fmt"
	"os"

	"github.com/gotatun/gotatun/transport"
	"github.com/gotatun/gotatun/tun"
)

// envOffloads turns the kernel offloads off when set to "off": the TUN
// interface is created without virtio-net headers (no TSO/USO super-packets
// and no coalesced writes), and the UDP sockets use neither UDP_SEGMENT nor
// UDP_GRO. For comparing and debugging; the default uses every offload the
// kernel has.
const envOffloads = "GOTATUN_OFFLOADS"

// offloadsOff reads envOffloads.
func offloadsOff() (bool, error) {
	switch v := os.Getenv(envOffloads); v {
	case "", "on":
		return false, nil
	case "off":
		return true, nil
	default:
		return false, fmt.Errorf("%s=%q: want on or off", envOffloads, v)
	}
}

// createTUN is tun.CreateTUN honouring envOffloads.
func createTUN(ifname string, mtu int) (tun.Device, error) {
	off, err := offloadsOff()
	if err != nil {
		return nil, err
	}
	d, err := tun.CreateLinuxTUN(ifname, mtu, tun.LinuxOptions{DisableOffloads: off})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// newBind is transport.NewDefaultBind honouring envOffloads.
func newBind() transport.Bind {
	if off, _ := offloadsOff(); off {
		return transport.NewLinuxBind(transport.LinuxBindConfig{DisableGSO: true, DisableGRO: true})
	}
	return transport.NewDefaultBind()
}
