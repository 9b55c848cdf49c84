package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/gotatun/gotatun/device"
	"github.com/gotatun/gotatun/multihop"
	"github.com/gotatun/gotatun/tun"
	"github.com/gotatun/gotatun/uapi"
)

// entryHop is the daemon's multihop half: the client whose exit device
// runs on IFNAME, and the entry device's configuration socket.
type entryHop struct {
	log    *slog.Logger
	client *multihop.Client
	ln     net.Listener
	served chan error
	failed chan struct{} // closed when the socket or the client stops
	cause  error
}

// startEntryHop builds the multihop client on the exit TUN t and serves
// the entry device's socket. The caller serves the exit device's.
func startEntryHop(a daemonArgs, t tun.Device, capture device.Capture, log *slog.Logger, stderr io.Writer) (*entryHop, error) {
	ln, err := uapi.Listen(a.entry.name)
	if err != nil {
		return nil, fmt.Errorf("configuration socket of the entry device %s: %w%s", a.entry.name, err, privilegeHint(err))
	}
	c, err := multihop.New(multihop.Config{
		Entry:    device.Options{Bind: newBind(), Logger: newLogger(stderr, a, a.entry.name)},
		Exit:     device.Options{TUN: t, Logger: log, Capture: capture},
		Addrs:    a.entry.list(),
		EntryMTU: a.entry.mtu,
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	h := &entryHop{log: log, client: c, ln: ln, served: make(chan error, 1), failed: make(chan struct{})}
	go func() { h.served <- uapi.Serve(ln, c.Entry, log.With("interface", a.entry.name)) }()
	go h.watch()
	log.Info("multihop entry device started", "entry", a.entry.name, "socket", ln.Addr().String(),
		"entry_mtu", c.Pipe().MTU(), "addresses", a.entry.list())
	return h, nil
}

// watch notes the first of the entry socket failing and the client
// stopping.
func (h *entryHop) watch() {
	select {
	case err := <-h.served:
		h.served <- err
		h.cause = fmt.Errorf("entry configuration socket: %w", err)
	case <-h.client.Done():
		h.cause = errors.New("the entry device stopped")
	}
	close(h.failed)
}

// stopped is closed when the entry hop fails; nil (never) for no hop.
func (h *entryHop) stopped() <-chan struct{} {
	if h == nil {
		return nil
	}
	return h.failed
}

func (h *entryHop) err() error { return h.cause }

// close stops both devices and removes the entry socket.
func (h *entryHop) close() {
	if h == nil {
		return
	}
	h.ln.Close()
	h.client.Close()
	<-h.failed
	s := h.client.Pipe().Stats()
	h.log.Info("multihop stopped", "sent", s.Sent, "received", s.Received,
		"too_big", s.SendTooBig, "no_source", s.SendNoSource, "malformed", s.Malformed, "not_udp", s.NotUDP,
		"wrong_addr", s.WrongAddr, "wrong_port", s.WrongPort, "not_open", s.NotOpen,
		"fragments", s.Fragments, "reassembled", s.Reassembled, "fragments_dropped", s.FragmentsDropped)
}
