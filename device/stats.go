package device

// Stats are the device's counters of dropped and notable datagrams and
// packets since it was created.
type Stats struct {
	// BadOutbound counts packets from the TUN device too short or
	// malformed to route.
	BadOutbound uint64
	// NoRoute counts packets from the TUN device to no peer's allowed IPs.
	NoRoute uint64
	// NoEndpoint counts packets for a peer with no known endpoint.
	NoEndpoint uint64
	// StagedDropped counts packets dropped from a peer's full staging queue
	// while it waited for a session.
	StagedDropped uint64
	// BadInbound counts datagrams of unknown type or wrong size.
	BadInbound uint64
	// UnknownIndex counts datagrams for a receiver index not in use.
	UnknownIndex uint64
	// HandshakeDropped counts handshake messages that passed the checks
	// but found the handshake queue full.
	HandshakeDropped uint64
	// HandshakesQueued counts handshake messages accepted for processing.
	HandshakesQueued uint64
	// DecryptFailed counts transport data that did not authenticate.
	DecryptFailed uint64
	// Replayed counts transport data with a counter seen before.
	Replayed uint64
	// BadInner counts decrypted packets that are not valid IP.
	BadInner uint64
	// DisallowedSrc counts decrypted packets from outside the sending
	// peer's allowed IPs.
	DisallowedSrc uint64
	// BadMAC counts handshake messages with a wrong mac1, dropped before
	// the handshake queue.
	BadMAC uint64
	// BadHandshake counts initiations and responses that failed to decrypt
	// or authenticate.
	BadHandshake uint64
	// RateLimited counts handshake messages with a valid mac2 dropped by
	// the per-source rate limit while under load.
	RateLimited uint64
	// CookiesSent counts cookie replies sent.
	CookiesSent uint64
	// CookiesDropped counts messages under load that got no cookie reply
	// because their source had its share of replies or the device-wide
	// reply budget was spent.
	CookiesDropped uint64
	// CookiesReceived counts cookie replies accepted from peers.
	CookiesReceived uint64
	// InitiationsSent counts handshake initiations sent.
	InitiationsSent uint64
	// RxDatagrams counts datagrams read from the Bind.
	RxDatagrams uint64
	// TUNPackets counts packets read from the TUN device.
	TUNPackets uint64
	// DAITAOversized counts DAITA-padded packets sent unpadded because
	// padding would exceed the MTU.
	DAITAOversized uint64
}

// Stats returns the device's counters.
func (d *Device) Stats() Stats {
	s := &d.stats
	return Stats{
		BadOutbound:      s.badOutbound.Load(),
		NoRoute:          s.noRoute.Load(),
		NoEndpoint:       s.noEndpoint.Load(),
		StagedDropped:    s.stagedDropped.Load(),
		BadInbound:       s.badInbound.Load(),
		UnknownIndex:     s.unknownIndex.Load(),
		HandshakeDropped: s.handshakeDropped.Load(),
		HandshakesQueued: s.handshakesQueued.Load(),
		DecryptFailed:    s.decryptFailed.Load(),
		Replayed:         s.replayed.Load(),
		BadInner:         s.badInner.Load(),
		DisallowedSrc:    s.disallowedSrc.Load(),
		BadMAC:           s.badMAC.Load(),
		BadHandshake:     s.badHandshake.Load(),
		RateLimited:      s.rateLimited.Load(),
		CookiesSent:      s.cookiesSent.Load(),
		CookiesDropped:   s.cookiesDropped.Load(),
		CookiesReceived:  s.cookiesReceived.Load(),
		InitiationsSent:  s.initiationsSent.Load(),
		RxDatagrams:      s.rxDatagrams.Load(),
		TUNPackets:       s.tunPackets.Load(),
		DAITAOversized:   s.daitaOversized.Load(),
	}
}
