package device

import (
	"context"
	"log/slog"
	"net/netip"
)

// dropDisallowed counts a packet from p whose inner source address is not
// among p's allowed IPs and, when debug logging is on, logs it as
// wireguard-go does at its verbose level.
func (d *Device) dropDisallowed(p *Peer, src netip.Addr) {
	d.stats.disallowedSrc.Add(1)
	if d.log.Enabled(context.Background(), slog.LevelDebug) {
		d.log.Debug("packet with disallowed source address dropped", "peer", p.short(), "src", src)
	}
}
