package device

import (
	"net/netip"
	"time"

	"github.com/gotatun/gotatun/daita"
	"github.com/gotatun/gotatun/noise"
)

// Config is a change to a device's configuration, the typed form of a
// `wg set` / UAPI `set=1` transaction. Nil pointer fields are left as they
// are. Apply validates the whole change before touching anything, so a
// Config that fails changes nothing.
type Config struct {
	// PrivateKey sets the device's private key; the zero key removes it.
	PrivateKey *noise.PrivateKey
	// ListenPort sets the UDP port; 0 picks a free one.
	ListenPort *uint16
	// FirewallMark sets SO_MARK on outgoing packets; 0 clears it.
	FirewallMark *uint32
	// ReplacePeers removes every peer not named in Peers first.
	ReplacePeers bool
	// Peers are changes to individual peers, applied in order.
	Peers []PeerConfig
}

// PeerConfig is a change to one peer, identified by its public key.
type PeerConfig struct {
	PublicKey noise.PublicKey
	// Remove deletes the peer; the other fields are ignored.
	Remove bool
	// UpdateOnly applies the change only if the peer already exists.
	UpdateOnly bool
	// PresharedKey sets the preshared key; the zero key removes it.
	PresharedKey *noise.PresharedKey
	// Endpoint sets the peer's address.
	Endpoint *netip.AddrPort
	// PersistentKeepalive sets the keepalive interval; 0 turns it off.
	// It is whole seconds, at most 65535.
	PersistentKeepalive *time.Duration
	// ReplaceAllowedIPs clears the peer's allowed IPs before adding these.
	ReplaceAllowedIPs bool
	// RemoveAllowedIPs are taken from the peer, after ReplaceAllowedIPs
	// and before AllowedIPs; a prefix the peer does not have is ignored.
	RemoveAllowedIPs []netip.Prefix
	// AllowedIPs are added to the peer (and taken from any other peer that
	// had them).
	AllowedIPs []netip.Prefix
	// DAITA, if set, turns DAITA on for the peer with these settings (or
	// changes them), keeping its sessions; nil leaves DAITA as it is.
	// Start from daita.DefaultConfig.
	DAITA *daita.Config
	// DisableDAITA turns DAITA off for the peer; its delay queue is sent
	// first.
	DisableDAITA bool
}

// State is a snapshot of a device's configuration and counters, the typed
// form of a UAPI `get=1` answer.
type State struct {
	PrivateKey   noise.PrivateKey // zero if unset
	PublicKey    noise.PublicKey  // zero if no private key
	ListenPort   uint16
	FirewallMark uint32
	Peers        []PeerState
}

// PeerState is one peer's configuration and counters.
type PeerState struct {
	PublicKey           noise.PublicKey
	PresharedKey        noise.PresharedKey
	Endpoint            netip.AddrPort // invalid if unknown
	PersistentKeepalive time.Duration
	AllowedIPs          []netip.Prefix
	LastHandshake       time.Time // zero if never
	RxBytes             uint64
	TxBytes             uint64
	ProtocolVersion     int // 1
	// DAITA holds the peer's DAITA settings and DAITAStats its counters
	// (since DAITA was last started or changed); both nil while off.
	DAITA      *daita.Config
	DAITAStats *daita.Stats
}
