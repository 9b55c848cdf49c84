// Package mobile runs a tunnel the way an app embeds one: configured with
// the text of a UAPI set=1 transaction, on a TUN descriptor the app opened
// (Android's VpnService hands one over), with suspend and resume for
// power management and the UDP socket descriptors for VpnService.protect.
// The C library in capi/ is a thin layer over it.
package mobile

import (
	"bufio"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"

	"github.com/gotatun/gotatun/device"
	"github.com/gotatun/gotatun/uapi"
)

// ErrClosed is returned by the methods of a tunnel turned off.
var ErrClosed = errors.New("mobile: tunnel turned off")

// ParseConfig parses the body of a UAPI set=1 transaction (keys in hex, as
// the configuration socket takes them), with or without the leading set=1
// line. The text ends at its end or at a blank line; anything after a
// blank line is an error.
func ParseConfig(text string) (device.Config, error) {
	body := strings.TrimPrefix(text, "\ufeff")
	if first, rest, _ := strings.Cut(body, "\n"); strings.TrimSpace(first) == "set=1" {
		body = rest
	}
	br := bufio.NewReader(strings.NewReader(body))
	cfg, err := uapi.ParseSet(br)
	if err != nil {
		return device.Config{}, fmt.Errorf("mobile: configuration: %w", err)
	}
	if rest, _ := br.ReadString(0); strings.TrimSpace(rest) != "" {
		return device.Config{}, fmt.Errorf("mobile: configuration: text after the blank line ending the transaction: %w",
			&uapi.Error{Errno: uapi.ErrnoProtocol, Err: uapi.ErrSyntax})
	}
	return cfg, nil
}

// Errno is the errno value a C caller gets for err (positive; 0 for nil):
// the one a UAPI error carries, else the first syscall.Errno in the
// chain, else EINVAL; EBADF for a turned-off tunnel.
func Errno(err error) syscall.Errno {
	if errors.Is(err, ErrClosed) || errors.Is(err, device.ErrClosed) {
		return syscall.EBADF
	}
	return uapi.ErrnoOf(err)
}

// Tunnel is a running device with its TUN descriptor and sockets.
type Tunnel struct {
	mu     sync.Mutex // serialises configuration changes and Close
	dev    *device.Device
	closed bool
	// sockets returns the UDP socket descriptors, -1 each if none.
	sockets func() (v4, v6 int)
}

// SetConfig applies the text of a set=1 transaction (see ParseConfig) as
// a whole: on error nothing changed.
func (t *Tunnel) SetConfig(text string) error {
	cfg, err := ParseConfig(text)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrClosed
	}
	if err := t.dev.Apply(cfg); err != nil {
		return fmt.Errorf("mobile: applying configuration: %w", err)
	}
	return nil
}

// Config returns the configuration and counters as the body of a UAPI
// get=1 answer, without the errno line.
func (t *Tunnel) Config() (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return "", ErrClosed
	}
	return string(uapi.AppendGet(nil, t.dev.State())), nil
}

// Sockets returns the descriptors of the IPv4 and IPv6 UDP sockets, -1
// for one that is not open (both while suspended). They change at Resume
// and NetworkChanged.
func (t *Tunnel) Sockets() (v4, v6 int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || t.sockets == nil {
		return -1, -1
	}
	return t.sockets()
}

// Suspend closes the sockets and stops the timers, keeping the
// configuration (device.Device.Suspend).
func (t *Tunnel) Suspend() error { return t.do((*device.Device).Suspend) }

// Resume opens the sockets again; the next packet starts a handshake
// (device.Device.Resume).
func (t *Tunnel) Resume() error { return t.do((*device.Device).Resume) }

// NetworkChanged rebinds the sockets after the network changed
// (device.Device.NetworkChanged).
func (t *Tunnel) NetworkChanged() error { return t.do((*device.Device).NetworkChanged) }

func (t *Tunnel) do(fn func(*device.Device) error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrClosed
	}
	return fn(t.dev)
}

// Device returns the underlying device.
func (t *Tunnel) Device() *device.Device { return t.dev }

// Close turns the tunnel off: it stops the device, closes its sockets and
// the TUN descriptor, and returns once every goroutine it started has
// ended.
func (t *Tunnel) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	return t.dev.Close()
}
