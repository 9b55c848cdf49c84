package mobile

import (
	"fmt"
	"log/slog"

	"golang.org/x/sys/unix"

	"github.com/gotatun/gotatun/device"
	"github.com/gotatun/gotatun/transport"
	"github.com/gotatun/gotatun/tun"
)

// TurnOn starts a tunnel on tunFD, an open TUN descriptor without
// virtio-net headers (or any descriptor that keeps packet boundaries),
// configured by config (see ParseConfig). The tunnel owns tunFD from the
// call on: it is closed when the tunnel is closed, and at once if TurnOn
// fails. A nil log discards.
func TurnOn(config string, tunFD int, log *slog.Logger) (*Tunnel, error) {
	cfg, err := ParseConfig(config)
	if err != nil {
		if tunFD >= 0 {
			unix.Close(tunFD)
		}
		return nil, err
	}
	td, err := tun.CreateTUNFromFD(tunFD, 0)
	if err != nil {
		return nil, fmt.Errorf("mobile: TUN descriptor: %w", err)
	}
	bind := transport.NewLinuxBind(transport.LinuxBindConfig{})
	dev, err := device.New(device.Options{TUN: td, Bind: bind, Logger: log})
	if err != nil {
		td.Close()
		return nil, fmt.Errorf("mobile: starting device: %w", err)
	}
	if err := dev.Apply(cfg); err != nil {
		dev.Close()
		return nil, fmt.Errorf("mobile: applying configuration: %w", err)
	}
	return &Tunnel{dev: dev, sockets: bind.SocketFDs}, nil
}
