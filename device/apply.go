package device

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/curve25519"

	"github.com/gotatun/gotatun/daita"
	"github.com/gotatun/gotatun/device/allowedips"
	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/transport"
)

// ErrInvalidConfig is wrapped by every validation error of Apply.
var ErrInvalidConfig = errors.New("device: invalid configuration")

// maxKeepalive is the largest persistent keepalive interval.
const maxKeepalive = 65535 * time.Second

// checkScalar is any scalar: X25519 with it yields zero exactly for the
// low-order points, whatever the private key.
var checkScalar = [32]byte{0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55,
	0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

// validate checks the whole configuration change without touching the
// device.
func validate(cfg *Config) error {
	for i := range cfg.Peers {
		pc := &cfg.Peers[i]
		name := func() string { return fmt.Sprintf("peer %d (%s)", i, pc.PublicKey) }
		if pc.PublicKey.IsZero() {
			return invalid("peer %d: public key is zero", i)
		}
		if pc.Remove {
			continue
		}
		if pc.Endpoint != nil {
			ep := *pc.Endpoint
			if !ep.Addr().IsValid() || ep.Addr().IsUnspecified() {
				return invalid("%s: endpoint %v has no usable address", name(), ep)
			}
			if ep.Port() == 0 {
				return invalid("%s: endpoint %v has port 0", name(), ep)
			}
		}
		if pc.PersistentKeepalive != nil {
			ka := *pc.PersistentKeepalive
			if ka < 0 || ka > maxKeepalive {
				return invalid("%s: persistent keepalive %v is outside 0 to 65535 seconds", name(), ka)
			}
			if ka%time.Second != 0 {
				return invalid("%s: persistent keepalive %v is not whole seconds", name(), ka)
			}
		}
		for j, pfx := range pc.AllowedIPs {
			if !pfx.IsValid() {
				return invalid("%s: allowed IP %d (%v) is not a valid prefix", name(), j, pfx)
			}
		}
		if pc.DAITA != nil && pc.DisableDAITA {
			return invalid("%s: DAITA both set and disabled", name())
		}
		if pc.DAITA != nil {
			if err := pc.DAITA.Validate(); err != nil {
				return invalid("%s: %v", name(), err)
			}
		}
		for j, pfx := range pc.RemoveAllowedIPs {
			if !pfx.IsValid() {
				return invalid("%s: allowed IP to remove %d (%v) is not a valid prefix", name(), j, pfx)
			}
		}
	}
	return nil
}

// Apply validates cfg as a whole and then applies it: on a validation
// error (wrapping ErrInvalidConfig and naming the field) nothing changes.
// Peer entries naming the device's own public key are ignored, as
// wireguard-go does. The only step that can fail after validation is
// re-opening the Bind on a new port; it is done first, so then too nothing
// else changes.
func (d *Device) Apply(cfg Config) error {
	if err := validate(&cfg); err != nil {
		return err
	}
	d.cfgMu.Lock()
	defer d.cfgMu.Unlock()
	if d.closing.Load() {
		return ErrClosed
	}

	// The identity in effect after this change, and the handshakes of the
	// peers it adds, made now because making them checks their keys.
	cur := d.ident.Load()
	next, keyChange := cur, false
	if cfg.PrivateKey != nil && !sameKey(cur, *cfg.PrivateKey) {
		next, keyChange = d.makeIdentity(*cfg.PrivateKey), true
	}
	var own noise.PublicKey
	if next != nil {
		own = next.pub
	}
	prepared := make([]*noise.Handshake, len(cfg.Peers))
	d.peersMu.RLock()
	for i := range cfg.Peers {
		pc := &cfg.Peers[i]
		if pc.Remove || (next != nil && pc.PublicKey == own) || d.peers[pc.PublicKey] != nil {
			continue
		}
		if next == nil {
			if _, err := curve25519.X25519(checkScalar[:], pc.PublicKey[:]); err != nil {
				d.peersMu.RUnlock()
				return invalid("peer %d (%s): public key is a low-order point", i, pc.PublicKey)
			}
			continue
		}
		psk := noise.PresharedKey{}
		if pc.PresharedKey != nil {
			psk = *pc.PresharedKey
		}
		hs, err := noise.NewHandshake(next.id, pc.PublicKey, psk)
		if err != nil {
			d.peersMu.RUnlock()
			return invalid("peer %d (%s): %v", i, pc.PublicKey, err)
		}
		prepared[i] = hs
	}
	d.peersMu.RUnlock()

	// The Bind first: it is the only step that can fail.
	newPort, newMark := d.listenPort, d.fwmark
	if cfg.ListenPort != nil {
		newPort = *cfg.ListenPort
	}
	if cfg.FirewallMark != nil {
		newMark = *cfg.FirewallMark
	}
	if d.suspended.Load() {
		// Resume opens the Bind with these.
		d.listenPort, d.fwmark = newPort, newMark
	} else if newPort != d.listenPort || newMark != d.fwmark {
		if err := d.rebind(newPort, newMark); err != nil {
			return err
		}
	}

	if keyChange {
		d.setIdentity(next)
	}

	var ops []func(tx *allowedips.Txn[*Peer])
	var removed []*Peer
	var keepaliveNow []*Peer
	var daitaPeers []*Peer
	var daitaCfgs []*daita.Config

	if cfg.ReplacePeers {
		keep := make(map[noise.PublicKey]bool, len(cfg.Peers))
		for _, pc := range cfg.Peers {
			if !pc.Remove {
				keep[pc.PublicKey] = true
			}
		}
		d.peersMu.Lock()
		for pub, p := range d.peers {
			if !keep[pub] {
				delete(d.peers, pub)
				removed = append(removed, p)
			}
		}
		d.peersMu.Unlock()
	}

	for i := range cfg.Peers {
		pc := &cfg.Peers[i]
		if !own.IsZero() && pc.PublicKey == own {
			continue
		}
		d.peersMu.Lock()
		p := d.peers[pc.PublicKey]
		if pc.Remove {
			if p != nil {
				delete(d.peers, pc.PublicKey)
				removed = append(removed, p)
			}
			d.peersMu.Unlock()
			continue
		}
		if p == nil {
			if pc.UpdateOnly {
				d.peersMu.Unlock()
				continue
			}
			p = d.newPeer(pc.PublicKey, prepared[i])
			if d.suspended.Load() {
				p.stopTimers() // until Resume
			}
			d.peers[pc.PublicKey] = p
		}
		d.peersMu.Unlock()

		if pc.PresharedKey != nil {
			p.hsMu.Lock()
			p.psk = *pc.PresharedKey
			if p.hs != nil {
				p.hs.SetPresharedKey(p.psk)
			}
			p.hsMu.Unlock()
		}
		if pc.Endpoint != nil {
			p.setEndpoint(transport.Endpoint{Dst: *pc.Endpoint})
		}
		if pc.PersistentKeepalive != nil {
			ka := *pc.PersistentKeepalive
			old := p.keepalive.Swap(int64(ka))
			p.timersPersistentKeepaliveChanged(ka)
			if old == 0 && ka != 0 {
				keepaliveNow = append(keepaliveNow, p)
			}
		}
		if pc.DAITA != nil || pc.DisableDAITA {
			daitaPeers = append(daitaPeers, p)
			daitaCfgs = append(daitaCfgs, pc.DAITA)
		}
		if pc.ReplaceAllowedIPs {
			ops = append(ops, func(tx *allowedips.Txn[*Peer]) { tx.RemovePeer(p) })
		}
		if len(pc.RemoveAllowedIPs) > 0 {
			prefixes := pc.RemoveAllowedIPs
			ops = append(ops, func(tx *allowedips.Txn[*Peer]) {
				for _, pfx := range prefixes {
					tx.Remove(pfx.Masked(), p)
				}
			})
		}
		if len(pc.AllowedIPs) > 0 {
			prefixes := pc.AllowedIPs
			ops = append(ops, func(tx *allowedips.Txn[*Peer]) {
				for _, pfx := range prefixes {
					tx.Insert(pfx.Masked(), p)
				}
			})
		}
	}
	for _, p := range removed {
		ops = append(ops, func(tx *allowedips.Txn[*Peer]) { tx.RemovePeer(p) })
	}
	if len(ops) > 0 {
		d.allowed.Update(func(tx *allowedips.Txn[*Peer]) {
			for _, op := range ops {
				op(tx)
			}
		})
	}
	for i, p := range daitaPeers {
		if err := p.setDAITA(daitaCfgs[i]); err != nil {
			// Validated above; only a broken machine cache gets here.
			d.log.Error("cannot start DAITA", "peer", p.short(), "err", err)
		}
	}
	for _, p := range removed {
		p.stopDAITA()
		p.shutdown()
	}
	for _, p := range keepaliveNow {
		if !p.removed.Load() {
			p.sendKeepalive()
		}
	}
	return nil
}

// rebind moves the Bind to port with mark. A transport.Rebinder moves
// atomically (see rebindAtomic); any other Bind is closed and re-opened,
// and on failure rebind tries to restore the previous port. Either way a
// failure is returned.
func (d *Device) rebind(port uint16, mark uint32) error {
	if rb, ok := d.bind.(transport.Rebinder); ok && d.listenPort != 0 { // 0: no socket open to keep
		return d.rebindAtomic(rb, port, mark)
	}
	oldPort, oldMark := d.listenPort, d.fwmark
	d.bind.Close()
	d.recvWG.Wait()
	if err := d.bind.SetMark(mark); err != nil {
		d.reopen(oldPort, oldMark)
		return fmt.Errorf("device: setting firewall mark %d: %w", mark, err)
	}
	fns, actual, err := d.bind.Open(port)
	if err != nil {
		d.reopen(oldPort, oldMark)
		return fmt.Errorf("device: listening on port %d: %w", port, err)
	}
	d.listenPort, d.fwmark = actual, mark
	d.startReceivers(fns)
	return nil
}

func (d *Device) reopen(port uint16, mark uint32) {
	_ = d.bind.SetMark(mark)
	fns, actual, err := d.bind.Open(port)
	if err != nil {
		fns, actual, err = d.bind.Open(0)
	}
	if err != nil {
		d.log.Error("cannot re-open UDP bind", "err", err)
		d.listenPort = 0
		return
	}
	d.listenPort = actual
	d.startReceivers(fns)
}

func sameKey(cur *identity, priv noise.PrivateKey) bool {
	if cur == nil {
		return priv.IsZero()
	}
	return cur.priv == priv
}

// makeIdentity derives the identity of priv; nil for the zero key.
func (d *Device) makeIdentity(priv noise.PrivateKey) *identity {
	if priv.IsZero() {
		return nil
	}
	nid := noise.NewIdentity(priv)
	return &identity{priv: priv, pub: nid.PublicKey(), id: nid, checker: noise.NewCookieChecker(nid.PublicKey(), d.rand)}
}

// setIdentity switches the device's identity. A peer with the new public
// key is removed; every other peer's handshake moves to the new identity
// and its sessions end.
func (d *Device) setIdentity(ni *identity) {
	d.peersMu.Lock()
	if ni != nil {
		if p := d.peers[ni.pub]; p != nil {
			delete(d.peers, ni.pub)
			d.allowed.RemovePeer(p)
			p.stopDAITA()
			p.shutdown()
		}
	}
	d.ident.Store(ni)
	peers := make([]*Peer, 0, len(d.peers))
	for _, p := range d.peers {
		peers = append(peers, p)
	}
	d.peersMu.Unlock()
	for _, p := range peers {
		p.setIdentity(ni)
	}
}

// newPeer makes a peer for pub under the current identity, with its
// handshake hs if already made.
func (d *Device) newPeer(pub noise.PublicKey, hs *noise.Handshake) *Peer {
	p := &Peer{d: d, pub: pub, cookie: noise.NewCookieGenerator(pub), hs: hs}
	if id := d.ident.Load(); id != nil && hs == nil {
		hs, err := noise.NewHandshake(id.id, pub, noise.PresharedKey{})
		if err != nil {
			d.log.Warn("peer cannot handshake", "peer", p.short(), "err", err)
		} else {
			p.hs = hs
		}
	}
	return p
}

// setIdentity moves the peer to a new device identity (nil: none).
func (p *Peer) setIdentity(ni *identity) {
	p.discard(p.keypairs.Clear())
	p.hsMu.Lock()
	p.dropHandshakeIndexLocked()
	switch {
	case ni == nil:
		if p.hs != nil {
			p.hs.Clear()
		}
		p.hs = nil
	case p.hs == nil:
		hs, err := noise.NewHandshake(ni.id, p.pub, p.psk)
		if err != nil {
			p.d.log.Warn("peer cannot handshake", "peer", p.short(), "err", err)
		} else {
			p.hs = hs
		}
	default:
		if err := p.hs.SetIdentity(ni.id); err != nil {
			p.d.log.Warn("peer cannot handshake", "peer", p.short(), "err", err)
			p.hs = nil
		}
	}
	p.hsMu.Unlock()
}
