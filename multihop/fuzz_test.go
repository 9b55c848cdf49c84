package multihop

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

// FuzzWrite feeds the packet parser and the fragment reassembly with
// arbitrary packets: nothing may panic, every packet is accounted for,
// and reassembly stays within its bounds.
func FuzzWrite(f *testing.F) {
	good := reply(f, relay4, netip.AddrPortFrom(client4, 4000), []byte("payload of some length!!"))
	f.Add(good)
	for _, fr := range fragments(good, 8) {
		f.Add(fr)
	}
	good6 := reply(f, relay6, netip.AddrPortFrom(client6, 4000), []byte("six, and a little longer"))
	f.Add(good6)
	f.Add(bytes.Join(fragments6(good6, 16, 9), []byte{0xff}))
	f.Add([]byte{0x45, 0, 0, 20})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := NewPipe(PipeConfig{Addrs: []netip.Addr{client4, client6}, Now: func() time.Time { return time.Unix(0, 0) }})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if _, _, err := p.Bind().Open(4000); err != nil {
			t.Fatal(err)
		}
		// The input is one packet, and also several: split at 0xff bytes
		// so one input can exercise several fragments of a datagram.
		pkts := append([][]byte{data}, bytes.Split(data, []byte{0xff})...)
		for _, pkt := range pkts {
			var in inbound
			v := p.classify(pkt, &in)
			if v == vDeliver && len(in.payload) > len(pkt)-28 {
				t.Fatalf("payload %d bytes from a %d-byte packet", len(in.payload), len(pkt))
			}
		}
		if _, err := p.TUN().Write(pkts, 0); err != nil {
			t.Fatal(err)
		}
		s := p.Stats()
		queued := 0
		for len(p.in.q) > 0 {
			b := <-p.in.q
			queued += b.n
			p.in.recycle(b)
		}
		got := uint64(queued) + s.Malformed + s.NotUDP + s.WrongAddr + s.WrongPort + s.Fragments - s.Reassembled
		if s.Fragments < s.Reassembled || got != uint64(len(pkts)) {
			t.Fatalf("%d packets written, %d accounted for: %+v (%d queued)", len(pkts), got, s, queued)
		}
		if n, b := p.frag.pending(); n > fragMaxPackets || b > fragMaxBytes {
			t.Fatalf("%d datagrams, %d bytes pending", n, b)
		}
	})
}
