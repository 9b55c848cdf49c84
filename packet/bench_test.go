package packet

import (
	"testing"
)

func BenchmarkChecksum1500(b *testing.B) {
	buf := payloadBytes(1500, 1)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	var s uint16
	for b.Loop() {
		s += Checksum(buf, 0)
	}
	_ = s
}

func BenchmarkParse(b *testing.B) {
	pkt := build(tcpOpts{payload: payloadBytes(1400, 0), flags: TCPFlagACK})
	b.ReportAllocs()
	for b.Loop() {
		n, ok := TotalLen(pkt)
		d, ok2 := Dst(pkt)
		proto, off, ok3 := Transport(pkt[:n])
		if !ok || !ok2 || !ok3 || proto != ProtoTCP || !d.IsValid() || off != 20 {
			b.Fatal("parse")
		}
	}
}

func benchSplit(b *testing.B, v6, udp bool) {
	o := tcpOpts{v6: v6, udp: udp, flags: TCPFlagACK, payload: payloadBytes(65535-40-20, 0)}
	gso := 1448
	if udp {
		gso = 1472
		o.payload = o.payload[:44*gso-100]
	}
	h, pkt := superPacket(o, gso)
	bufs, sizes := makeBufs(64, 1600)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SplitGSO(h, pkt, bufs, sizes, 16); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSplitGSO splits a 64 KB TSO (or USO) super-packet into ~45
// segments.
func BenchmarkSplitGSO(b *testing.B) {
	b.Run("tcp4", func(b *testing.B) { benchSplit(b, false, false) })
	b.Run("tcp6", func(b *testing.B) { benchSplit(b, true, false) })
	b.Run("udp4", func(b *testing.B) { benchSplit(b, false, true) })
}

// BenchmarkCoalesce merges 64 segments of one TCP flow (about 91 KB, so two
// super-packets).
func BenchmarkCoalesce(b *testing.B) {
	for _, tc := range []struct {
		name  string
		pkts  [][]byte
		udp   bool
		flows int
	}{
		{"tcp4-1flow", flow(tcpOpts{}, 64, 1448), false, 1},
		{"tcp6-4flows", interleave(
			flow(tcpOpts{v6: true, sport: 1}, 16, 1448), flow(tcpOpts{v6: true, sport: 2}, 16, 1448),
			flow(tcpOpts{v6: true, sport: 3}, 16, 1448), flow(tcpOpts{v6: true, sport: 4}, 16, 1448)), false, 4},
		{"udp4-1flow", udpFlow(64, 1200), true, 1},
	} {
		b.Run(tc.name, func(b *testing.B) {
			bufs := toBufs(tc.pkts, 70000)
			lens := make([]int, len(bufs))
			saved := make([][]byte, len(bufs))
			total := 0
			for i := range bufs {
				lens[i] = len(bufs[i])
				saved[i] = append([]byte{}, bufs[i]...)
				total += len(bufs[i]) - testOffset
			}
			var c Coalescer
			b.SetBytes(int64(total))
			b.ReportAllocs()
			for b.Loop() {
				// Restore the headers the previous run rewrote (the
				// payload bytes are not touched by coalescing).
				for i := range bufs {
					bufs[i] = bufs[i][:lens[i]]
					copy(bufs[i][:testOffset+80], saved[i])
				}
				out, err := c.Coalesce(bufs, testOffset, tc.udp)
				if err != nil || len(out) > 2*tc.flows {
					b.Fatalf("%d outputs, %v", len(out), err)
				}
			}
		})
		// CoalesceInto: the packets stay put, merged into 64 KiB slots.
		b.Run(tc.name+"-into", func(b *testing.B) {
			slots := make([][]byte, 2*tc.flows)
			for i := range slots {
				slots[i] = make([]byte, testOffset+maxSuperPacket)
			}
			total := 0
			for _, p := range tc.pkts {
				total += len(p)
			}
			var c Coalescer
			b.SetBytes(int64(total))
			b.ReportAllocs()
			for b.Loop() {
				out, used, err := c.CoalesceInto(tc.pkts, slots, testOffset, tc.udp)
				if err != nil || used != len(tc.pkts) || len(out) > 2*tc.flows {
					b.Fatalf("%d outputs, %d used, %v", len(out), used, err)
				}
			}
		})
	}
}

func interleave(flows ...[][]byte) [][]byte {
	var out [][]byte
	for i := 0; ; i++ {
		added := false
		for _, f := range flows {
			if i < len(f) {
				out = append(out, f[i])
				added = true
			}
		}
		if !added {
			return out
		}
	}
}

func udpFlow(n, size int) [][]byte {
	var pkts [][]byte
	for i := 0; i < n; i++ {
		pkts = append(pkts, build(tcpOpts{udp: true, id: uint16(i), payload: payloadBytes(size, byte(i))}))
	}
	return pkts
}
