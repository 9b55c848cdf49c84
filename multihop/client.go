package multihop

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/gotatun/gotatun/device"
	"github.com/gotatun/gotatun/tun"
)

// Config builds a Client from the options of its two devices.
type Config struct {
	// Entry are the entry device's options. Bind is the real UDP side
	// (toward the entry relay); TUN must be nil: the Pipe is its TUN.
	Entry device.Options
	// Exit are the exit device's options. TUN is the real packet side
	// (what applications use); Bind must be nil: the Pipe is its Bind.
	Exit device.Options
	// Addrs are the client's addresses inside the entry tunnel, at most
	// one per family: the source of the exit device's datagrams.
	Addrs []netip.Addr
	// EntryMTU is the entry device's TUN MTU; 0 means DefaultMTU. Give
	// the exit TUN at most ExitMTU(EntryMTU).
	EntryMTU int
}

// Client is an exit device whose UDP runs through an entry device, joined
// by a Pipe. Configure each device as any other (same private key on both
// is the usual choice): the entry device with the entry relay as its peer
// and the exit relay's address as that peer's allowed IP, the exit device
// with the exit relay as its peer.
type Client struct {
	// Entry is the outer device: it owns the real UDP sockets.
	Entry *device.Device
	// Exit is the inner device: it owns the real TUN.
	Exit *device.Device

	pipe *Pipe
	done chan struct{}
}

// ExitMTU returns the largest exit TUN MTU whose packets, wrapped by the
// exit hop over IPv6 (the worst case), still fit entryMTU.
func ExitMTU(entryMTU int) int {
	if entryMTU == 0 {
		entryMTU = DefaultMTU
	}
	return entryMTU - Overhead6
}

// New builds and starts both devices. Closing either device, or the
// Client, stops both.
func New(cfg Config) (*Client, error) {
	if cfg.Entry.TUN != nil {
		return nil, errors.New("multihop: Config.Entry.TUN must be nil (the entry device's TUN is the pipe)")
	}
	if cfg.Entry.Bind == nil {
		return nil, errors.New("multihop: Config.Entry.Bind is nil")
	}
	if cfg.Exit.TUN == nil {
		return nil, errors.New("multihop: Config.Exit.TUN is nil")
	}
	if cfg.Exit.Bind != nil {
		return nil, errors.New("multihop: Config.Exit.Bind must be nil (the exit device's Bind is the pipe)")
	}
	pipe, err := NewPipe(PipeConfig{Addrs: cfg.Addrs, MTU: cfg.EntryMTU, Rand: cfg.Exit.Rand})
	if err != nil {
		return nil, err
	}
	c := &Client{pipe: pipe, done: make(chan struct{})}
	entry := cfg.Entry
	entry.TUN = pipe.TUN()
	if c.Entry, err = device.New(entry); err != nil {
		pipe.Close()
		return nil, fmt.Errorf("multihop: entry device: %w", err)
	}
	exit := cfg.Exit
	exit.TUN = closeNotifier(exit.TUN, func() { pipe.Close() })
	exit.Bind = pipe.Bind()
	if c.Exit, err = device.New(exit); err != nil {
		c.Entry.Close()
		return nil, fmt.Errorf("multihop: exit device: %w", err)
	}
	go c.stopBoth()
	return c, nil
}

// stopBoth waits for either side to go, then stops the exit device and
// then the entry device.
func (c *Client) stopBoth() {
	<-c.pipe.Done()
	c.Exit.Close()
	c.Entry.Close()
	close(c.done)
}

// Pipe returns the joint between the devices, for its counters.
func (c *Client) Pipe() *Pipe { return c.pipe }

// Done is closed once both devices have stopped.
func (c *Client) Done() <-chan struct{} { return c.done }

// Close stops the exit device, then the entry device, and waits for both.
func (c *Client) Close() error {
	c.Exit.Close()
	c.pipe.Close()
	<-c.done
	return nil
}

// Suspend puts both devices to sleep, the exit device first (see
// device.Device.Suspend): sockets closed, timers stopped, sessions
// forgotten, configuration kept.
func (c *Client) Suspend() error {
	return errors.Join(c.Exit.Suspend(), c.Entry.Suspend())
}

// Resume wakes both devices, the entry device first; the next packet
// starts fresh handshakes on both hops.
func (c *Client) Resume() error {
	if err := c.Entry.Resume(); err != nil {
		return err
	}
	return c.Exit.Resume()
}

// NetworkChanged tells the entry device, the one with real sockets, that
// the host's network changed.
func (c *Client) NetworkChanged() error { return c.Entry.NetworkChanged() }

// notifyTUN calls onClose after closing the TUN.
type notifyTUN struct {
	tun.Device
	onClose func()
}

func (t *notifyTUN) Close() error {
	err := t.Device.Close()
	t.onClose()
	return err
}

// notifyBatchTUN is notifyTUN for a TUN that is a tun.BatchReader.
type notifyBatchTUN struct {
	*notifyTUN
	tun.BatchReader
}

func closeNotifier(t tun.Device, onClose func()) tun.Device {
	n := &notifyTUN{Device: t, onClose: onClose}
	if br, ok := t.(tun.BatchReader); ok {
		return notifyBatchTUN{n, br}
	}
	return n
}
