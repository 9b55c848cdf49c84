package multihop

import (
	"net/netip"
	"sync"
	"testing"

	"github.com/gotatun/gotatun/daita"
	"github.com/gotatun/gotatun/device"
	"github.com/gotatun/gotatun/noise"
)

// With DAITA on the entry peer, every data message the client sends to
// the entry relay has one size, whatever the size of the inner packets:
// the entry MTU plus the WireGuard overhead.
func TestDAITAOnEntryPeer(t *testing.T) {
	w := newWorld(t, false)
	var mu sync.Mutex
	sizes := make(map[int]int)
	w.nw.Filter = func(from, to netip.AddrPort, pkt []byte) int {
		if from.Addr() == w.clientOuter && len(pkt) > 32 && pkt[0] == noise.MessageTransportType {
			mu.Lock()
			sizes[len(pkt)]++
			mu.Unlock()
		}
		return 1
	}
	cfg := daita.DefaultConfig()
	cfg.Machines = []string{"02eNpjYEAHjOgCAAA0AAI="} // does nothing: padding only
	err := w.client.Entry.Apply(device.Config{Peers: []device.PeerConfig{{PublicKey: w.entryPub, UpdateOnly: true, DAITA: &cfg}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 100, 555, 1000, ExitMTU(0) - 28} {
		out := udpPacket(t, w.inner, w.innerPeer, make([]byte, n))
		w.clientTUN.Inject(out)
		expect(t, w.exTUN, out)
		back := udpPacket(t, w.innerPeer, w.inner, make([]byte, n/2))
		w.exTUN.Inject(back)
		expect(t, w.clientTUN, back)
	}
	mu.Lock()
	defer mu.Unlock()
	want := w.client.Pipe().MTU() + 32
	if len(sizes) != 1 || sizes[want] < 5 {
		t.Fatalf("data message sizes to the entry relay %v, want all %d", sizes, want)
	}
	st, _ := w.client.Entry.PeerState(w.entryPub)
	if st.DAITAStats == nil || st.DAITAStats.TxPaddingBytes == 0 {
		t.Fatalf("DAITA stats %+v", st.DAITAStats)
	}
}
