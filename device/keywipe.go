package device

// wipeSecrets zeroes the peer's keys and the static secrets of its
// handshake (shared secret and preshared key), for a peer that has been
// removed or a device that has stopped. Best effort, as noise.Handshake.Wipe
// explains.
func (p *Peer) wipeSecrets() {
	p.zeroKeys()
	p.hsMu.Lock()
	if p.hs != nil {
		p.hs.Wipe()
	}
	clear(p.psk[:])
	p.hsMu.Unlock()
}

// wipeKeys zeroes, once Close has stopped everything, the secrets the
// device holds: every peer's (wipeSecrets) and the private key.
func (d *Device) wipeKeys() {
	d.peersMu.RLock()
	for _, p := range d.peers {
		p.wipeSecrets()
	}
	d.peersMu.RUnlock()
	if id := d.ident.Load(); id != nil {
		clear(id.priv[:])
		if id.id != nil {
			id.id.Wipe()
		}
	}
}
