package device

import (
	"fmt"
	"time"
)

// Suspend puts the device to sleep, for a phone going into power saving:
// it closes the UDP sockets, stops every peer's timers and forgets the
// session keys, while keeping the private key, the peers and their
// configuration. Packets read from the TUN device in the meantime are
// dropped. Suspending a suspended device does nothing.
func (d *Device) Suspend() error {
	d.cfgMu.Lock()
	defer d.cfgMu.Unlock()
	if d.closing.Load() {
		return ErrClosed
	}
	if d.suspended.Load() {
		return nil
	}
	// Set first, so no handshake starts on a peer already put to sleep.
	d.suspended.Store(true)
	err := d.bind.Close()
	d.recvWG.Wait()
	for _, p := range d.peerList() {
		p.sleep()
	}
	d.log.Info("device suspended")
	if err != nil {
		return fmt.Errorf("device: closing UDP bind: %w", err)
	}
	return nil
}

// Resume wakes a suspended device: it opens the UDP sockets again (on the
// configured port if it is still free, on another otherwise, since the
// network may have changed) and restarts the timers. The first packet
// for a peer then starts a fresh handshake; peers with a persistent
// keepalive start one at once. Resuming a device that is not suspended
// does nothing.
func (d *Device) Resume() error {
	d.cfgMu.Lock()
	defer d.cfgMu.Unlock()
	if d.closing.Load() {
		return ErrClosed
	}
	if !d.suspended.Load() {
		return nil
	}
	if err := d.bind.SetMark(d.fwmark); err != nil {
		return fmt.Errorf("device: setting firewall mark %d: %w", d.fwmark, err)
	}
	fns, port, err := d.bind.Open(d.listenPort)
	if err != nil && d.listenPort != 0 {
		d.log.Warn("listen port taken while suspended; picking another", "port", d.listenPort, "err", err)
		fns, port, err = d.bind.Open(0)
	}
	if err != nil {
		return fmt.Errorf("device: opening UDP bind on resume: %w", err)
	}
	d.listenPort = port
	d.startReceivers(fns)
	peers := d.peerList()
	for _, p := range peers {
		p.wake()
	}
	d.suspended.Store(false)
	d.log.Info("device resumed", "port", port)
	for _, p := range peers {
		if p.keepalive.Load() > 0 && !p.removed.Load() {
			p.sendKeepalive()
		}
	}
	return nil
}

// Suspended reports whether the device is suspended.
func (d *Device) Suspended() bool { return d.suspended.Load() }

// NetworkChanged tells the device that the host's network changed (a new
// Wi-Fi, mobile data): it opens its UDP sockets again on the same port and
// forgets each peer's sticky source address, and peers with a persistent
// keepalive send one at once so that they learn the new address. Sessions
// are kept. On a suspended device it does nothing: Resume rebinds anyway.
func (d *Device) NetworkChanged() error {
	d.cfgMu.Lock()
	defer d.cfgMu.Unlock()
	if d.closing.Load() {
		return ErrClosed
	}
	if d.suspended.Load() {
		return nil
	}
	if err := d.rebind(d.listenPort, d.fwmark); err != nil {
		return err
	}
	for _, p := range d.peerList() {
		p.clearEndpointSrc()
		if p.keepalive.Load() > 0 && !p.removed.Load() {
			p.sendKeepalive()
		}
	}
	return nil
}

// peerList returns the current peers in no particular order.
func (d *Device) peerList() []*Peer {
	d.peersMu.RLock()
	defer d.peersMu.RUnlock()
	peers := make([]*Peer, 0, len(d.peers))
	for _, p := range d.peers {
		peers = append(peers, p)
	}
	return peers
}

// sleep stops the peer's timers and forgets its sessions, handshake in
// flight and staged packets, keeping its configuration.
func (p *Peer) sleep() {
	p.stopTimers()
	p.zeroKeys()
	p.dropStaged()
}

// wake restarts the peer's timers after sleep, with nothing due, and
// allows a handshake initiation at once.
func (p *Peer) wake() {
	p.timers.mu.Lock()
	p.timers.stopped = false
	p.timers.firstAttempt = time.Time{}
	p.timers.needAnotherKeepalive = false
	p.timers.sentLastMinuteHandshake = false
	p.timers.mu.Unlock()
	p.hsMu.Lock()
	p.lastInitSent = time.Time{}
	p.hsMu.Unlock()
	p.clearEndpointSrc()
}
