package device

import (
	"testing"
	"time"

	"github.com/gotatun/gotatun/daita"
	"github.com/gotatun/gotatun/noise"
)

// TestInteropDAITA: our side with DAITA on (padding, a decoy, a delay)
// and wireguard-go without it work together both ways, whoever starts:
// wireguard-go strips the padding by the IP length and drops the decoy.
func TestInteropDAITA(t *testing.T) {
	for _, weStart := range []bool{true, false} {
		name := map[bool]string{true: "we initiate", false: "they initiate"}[weStart]
		t.Run(name, func(t *testing.T) {
			it := newInterop(t, noise.PresharedKey{}, weStart)
			cfg := daita.DefaultConfig()
			cfg.Machines = []string{padAfterSend, delayMachine(t, 30*time.Millisecond, false)}
			if err := it.g.Apply(Config{Peers: []PeerConfig{{PublicKey: it.wPriv.PublicKey(), DAITA: &cfg}}}); err != nil {
				t.Fatal(err)
			}
			if weStart {
				it.exchange("first")
			} else {
				it.toG(ipv4Packet("10.1.0.2", "10.1.0.1", []byte("they start")))
				it.exchange("first")
			}
			dt := it.peer().daita.Load()
			// The decoy (20 ms after the first packet) and the delay (30 ms
			// from then) are due.
			it.clock.Advance(20 * time.Millisecond)
			if s := dt.Stats(); s.TxDecoyBytes != 1420 {
				t.Fatalf("decoy not sent: %+v", s)
			}
			select {
			case got := <-it.wTUN.Inbound:
				t.Fatalf("wireguard-go delivered the decoy: %x", got)
			case <-time.After(100 * time.Millisecond):
			}
			if on, _ := dt.Delaying(); !on {
				t.Fatal("no delay")
			}
			_, n0 := dt.Delaying() // the decoy, when it came during the delay
			held := ipv4Packet("10.1.0.1", "10.1.0.2", []byte("held"))
			if err := it.gTUN.Inject(held); err != nil {
				t.Fatal(err)
			}
			eventually(t, "packet held", func() bool { _, n := dt.Delaying(); return n == n0+1 })
			it.clock.Advance(30 * time.Millisecond)
			it.expectAtW(held)
			it.exchange("after")
			if s := dt.Stats(); s.TxPaddingBytes == 0 || s.RxPaddingBytes != 0 {
				t.Fatalf("padding counters: %+v", s)
			}
		})
	}
}
