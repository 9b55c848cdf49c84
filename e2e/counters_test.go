//go:build linux

package e2e

import (
	"strconv"
	"testing"
	"time"
)

// wgMessageLen is the size of the WireGuard data message carrying an IP
// packet of n bytes: 16 bytes of header, the packet padded to a multiple of
// 16 (never past the MTU) and a 16-byte tag.
func wgMessageLen(n, mtu int) int {
	padded := (n + 15) &^ 15
	if padded > mtu {
		padded = max(n, mtu)
	}
	return 16 + padded + 16
}

type counters struct{ aTx, aRx, bTx, bRx uint64 }

func (p *pair) counters(t *testing.T) counters {
	t.Helper()
	pa := p.a.peer(p.b.pub)
	pb := p.b.peer(p.a.pub)
	return counters{aTx: pa.tx, aRx: pa.rx, bTx: pb.tx, bRx: pb.rx}
}

func (c counters) sub(o counters) counters {
	return counters{c.aTx - o.aTx, c.aRx - o.aRx, c.bTx - o.bTx, c.bRx - o.bRx}
}

// TestTransferCounters checks the transfer counters of `wg show` against
// the bytes that crossed the tunnel: exactly, for pings of a known size,
// and within the protocol's overhead for a TCP transfer. Against
// wireguard-go it also shows both count the same way.
func TestTransferCounters(t *testing.T) {
	need(t)
	for _, impls := range [][2]string{{gotatun, gotatun}, {gotatun, wireguardGo}} {
		t.Run(impls[0]+"-"+impls[1], func(t *testing.T) {
			const mtu = 1420
			p := newPair(t, pairOpts{implA: impls[0], implB: impls[1], initiator: 'a', mtu: mtu})
			ping(t, p.na, innerB4, 3)
			time.Sleep(200 * time.Millisecond)

			// Pings: 20 requests and 20 replies of 1000 bytes of data, in
			// IPv4 packets of 20+8+1000 bytes.
			const count, size = 20, 1000
			before := p.counters(t)
			out, err := p.na.try("ping", "-n", "-q", "-c", strconv.Itoa(count), "-s", strconv.Itoa(size), "-i", "0.02", "-W", "2", innerB4.String())
			if err != nil {
				t.Fatalf("ping: %v\n%s", err, out)
			}
			time.Sleep(200 * time.Millisecond)
			d := p.counters(t).sub(before)
			want := uint64(count * wgMessageLen(20+8+size, mtu))
			t.Logf("pings: a tx %d rx %d, b tx %d rx %d; want %d each way", d.aTx, d.aRx, d.bTx, d.bRx, want)
			if d.aTx != d.bRx || d.bTx != d.aRx {
				t.Errorf("the two sides disagree: a sent %d, b received %d; b sent %d, a received %d", d.aTx, d.bRx, d.bTx, d.aRx)
			}
			// A keepalive (32 bytes) may slip in; nothing else may.
			for name, v := range map[string]uint64{"a tx": d.aTx, "a rx": d.aRx, "b tx": d.bTx, "b rx": d.bRx} {
				if v < want || v > want+2*32 || (v-want)%32 != 0 {
					t.Errorf("%s = %d, want %d (plus whole keepalives)", name, v, want)
				}
			}

			// A TCP transfer: every segment costs its payload, at least
			// 40 bytes of IP and TCP headers and 32 of WireGuard, plus at
			// most 12 bytes of TCP options and 15 of padding.
			const n = 50 << 20
			before = p.counters(t)
			transfer(t, p.na, p.nb, innerB4, n, nil)
			time.Sleep(200 * time.Millisecond)
			d = p.counters(t).sub(before)
			maxPayload := uint64(mtu - 40)
			minSegs := (uint64(n) + maxPayload - 1) / maxPayload
			lower := uint64(n) + minSegs*(40+32)
			upper := uint64(n) + uint64(n)/(mtu-40-12)*(40+12+15+32)*11/10 + 1<<20
			t.Logf("TCP %d bytes: a tx %d (%.2f%% overhead), b rx %d; bounds [%d, %d]", n, d.aTx, float64(d.aTx-n)*100/n, d.bRx, lower, upper)
			if d.aTx < lower || d.aTx > upper {
				t.Errorf("a sent %d bytes for %d bytes of TCP payload, want within [%d, %d]", d.aTx, n, lower, upper)
			}
			if d.bRx < lower || d.bRx > d.aTx {
				t.Errorf("b received %d bytes, want within [%d, %d (what a sent)]", d.bRx, lower, d.aTx)
			}
			if d.bTx == 0 || d.bTx > d.aTx/10 {
				t.Errorf("b sent %d bytes of acknowledgements for a's %d", d.bTx, d.aTx)
			}
		})
	}
}
