package packet

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func makeBufs(n, size int) ([][]byte, []int) {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, size)
	}
	return bufs, make([]int, n)
}

// superPacket builds a super-packet as a TUN device with TSO/USO hands it
// over: headers of the first segment, the whole payload, the transport
// checksum field holding the pseudo-header partial sum, and a GSO header.
func superPacket(o tcpOpts, gsoSize int) (VirtioNetHdr, []byte) {
	pkt := build(o)
	l4 := 20 + len(o.ipOptions)
	if o.v6 {
		l4 = 40
	}
	h := VirtioNetHdr{Flags: VirtioNetHdrFNeedsCsum, GSOSize: uint16(gsoSize), CsumStart: uint16(l4)}
	var src, dst []byte
	if o.v6 {
		src, dst = pkt[8:24], pkt[24:40]
	} else {
		src, dst = pkt[12:16], pkt[16:20]
	}
	proto := uint8(ProtoTCP)
	if o.udp {
		proto = ProtoUDP
		h.GSOType = GSOUDPL4
		h.CsumOffset = 6
		h.HdrLen = uint16(l4 + 8)
	} else {
		h.GSOType = GSOTCPv4
		if o.v6 {
			h.GSOType = GSOTCPv6
		}
		h.CsumOffset = 16
		h.HdrLen = uint16(l4 + 20 + len(o.options))
	}
	be.PutUint16(pkt[l4+int(h.CsumOffset):], Checksum(nil, PseudoHeaderSum(proto, src, dst, len(pkt)-l4)))
	return h, pkt
}

func TestSplitGSO(t *testing.T) {
	for _, tc := range []struct {
		v6, udp   bool
		ipOptions []byte
	}{
		{false, false, nil}, {true, false, nil}, {false, true, nil}, {true, true, nil},
		{false, false, []byte{1, 1, 1, 0}},
	} {
		t.Run(fmt.Sprintf("v6=%v,udp=%v,opts=%d", tc.v6, tc.udp, len(tc.ipOptions)), func(t *testing.T) {
			const gso = 1000
			payload := payloadBytes(4500, 3)
			o := tcpOpts{v6: tc.v6, udp: tc.udp, ipOptions: tc.ipOptions, seq: 0xfffffc00, ack: 99, id: 0xfffe,
				flags: TCPFlagACK | TCPFlagPSH | TCPFlagFIN | TCPFlagCWR | TCPFlagECE, window: 1000,
				options: []byte{1, 1, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8}, payload: payload}
			if tc.udp {
				o.options = nil
			}
			h, pkt := superPacket(o, gso)
			h.GSOType |= GSOECNBit
			orig := append([]byte{}, pkt...)
			bufs, sizes := makeBufs(8, 2000)
			n, err := SplitGSO(h, pkt, bufs, sizes, 16)
			if err != nil {
				t.Fatal(err)
			}
			if n != 5 {
				t.Fatalf("n = %d, want 5", n)
			}
			if !bytes.Equal(pkt, orig) {
				t.Fatal("input modified")
			}
			for i := 0; i < n; i++ {
				seg := bufs[i][16 : 16+sizes[i]]
				segLen := min(gso, len(payload)-i*gso)
				oi := o
				oi.payload = payload[i*gso : i*gso+segLen]
				oi.seq = o.seq + uint32(i*gso)
				oi.id = o.id + uint16(i)
				if i != n-1 {
					oi.flags &^= TCPFlagPSH | TCPFlagFIN
				}
				if i != 0 {
					oi.flags &^= TCPFlagCWR
				}
				want := build(oi)
				if !bytes.Equal(seg, want) {
					t.Fatalf("segment %d:\n got %x\nwant %x", i, seg, want)
				}
				if !validL4(seg) || (!tc.v6 && !validIPv4Header(seg)) {
					t.Fatalf("segment %d checksums invalid", i)
				}
			}
		})
	}
}

func TestSplitGSOSmallAndExact(t *testing.T) {
	// Payload that fits one segment, payload an exact multiple, no payload.
	for _, plen := range []int{0, 1, 999, 1000, 3000} {
		h, pkt := superPacket(tcpOpts{payload: payloadBytes(plen, 1), flags: TCPFlagACK}, 1000)
		bufs, sizes := makeBufs(4, 1100)
		n, err := SplitGSO(h, pkt, bufs, sizes, 0)
		if err != nil {
			t.Fatalf("len %d: %v", plen, err)
		}
		want := max(1, (plen+999)/1000)
		if n != want {
			t.Fatalf("len %d: n = %d, want %d", plen, n, want)
		}
		total := 0
		for i := 0; i < n; i++ {
			seg := bufs[i][:sizes[i]]
			if !validL4(seg) || !validIPv4Header(seg) {
				t.Fatalf("len %d seg %d invalid", plen, i)
			}
			total += sizes[i] - 40
		}
		if total != plen {
			t.Fatalf("len %d: payload total %d", plen, total)
		}
	}
}

func TestSplitNoGSO(t *testing.T) {
	pkt := build(tcpOpts{payload: []byte("hello world"), flags: TCPFlagACK})
	want := append([]byte{}, pkt...)
	// Replace the full checksum with the partial pseudo-header sum, as the
	// kernel hands over a CHECKSUM_PARTIAL packet.
	be.PutUint16(pkt[36:], Checksum(nil, PseudoHeaderSum(ProtoTCP, pkt[12:16], pkt[16:20], len(pkt)-20)))
	h := VirtioNetHdr{Flags: VirtioNetHdrFNeedsCsum, CsumStart: 20, CsumOffset: 16}
	bufs, sizes := makeBufs(1, 200)
	n, err := SplitGSO(h, pkt, bufs, sizes, 10)
	if err != nil || n != 1 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	if got := bufs[0][10 : 10+sizes[0]]; !bytes.Equal(got, want) {
		t.Fatalf("got %x\nwant %x", got, want)
	}
	// In place: pkt is the output buffer itself.
	buf := make([]byte, 10+len(pkt))
	copy(buf[10:], pkt)
	n, err = SplitGSO(h, buf[10:], [][]byte{buf}, sizes, 10)
	if err != nil || n != 1 || !bytes.Equal(buf[10:], want) {
		t.Fatalf("in place: n=%d err=%v", n, err)
	}
	// Without NEEDS_CSUM the packet is copied untouched.
	n, err = SplitGSO(VirtioNetHdr{}, pkt, bufs, sizes, 0)
	if err != nil || n != 1 || !bytes.Equal(bufs[0][:sizes[0]], pkt) {
		t.Fatalf("plain copy: n=%d err=%v", n, err)
	}
}

func TestSplitGSOErrors(t *testing.T) {
	h4, p4 := superPacket(tcpOpts{payload: payloadBytes(3000, 0), flags: TCPFlagACK}, 1000)
	h6, p6 := superPacket(tcpOpts{v6: true, payload: payloadBytes(3000, 0), flags: TCPFlagACK}, 1000)
	hu, pu := superPacket(tcpOpts{udp: true, payload: payloadBytes(3000, 0)}, 1000)
	mod := func(p []byte, f func([]byte)) []byte { c := append([]byte{}, p...); f(c); return c }
	with := func(h VirtioNetHdr, f func(*VirtioNetHdr)) VirtioNetHdr { f(&h); return h }
	bufs, sizes := makeBufs(4, 1100)
	cases := []struct {
		name  string
		h     VirtioNetHdr
		pkt   []byte
		bufs  [][]byte
		sizes []int
		off   int
		want  error
	}{
		{"too many segments", h4, p4, bufs[:2], sizes, 0, ErrTooManySegments},
		{"no buffers", h4, p4, nil, nil, 0, ErrTooManySegments},
		{"buffer too small", h4, p4, bufs, sizes, 100, ErrBufferTooSmall},
		{"negative offset", h4, p4, bufs, sizes, -1, ErrMalformed},
		{"gso size 0", with(h4, func(h *VirtioNetHdr) { h.GSOSize = 0 }), p4, bufs, sizes, 0, ErrMalformed},
		{"unknown gso type", with(h4, func(h *VirtioNetHdr) { h.GSOType = 9 }), p4, bufs, sizes, 0, ErrMalformed},
		{"UFO", with(h4, func(h *VirtioNetHdr) { h.GSOType = GSOUDP }), pu, bufs, sizes, 0, ErrUnsupported},
		{"v4 type on v6", h4, p6, bufs, sizes, 0, ErrMalformed},
		{"v6 type on v4", h6, p4, bufs, sizes, 0, ErrMalformed},
		{"tcp type on udp", h4, pu, bufs, sizes, 0, ErrMalformed},
		{"udp type on tcp", hu, p4, bufs, sizes, 0, ErrMalformed},
		{"empty", h4, nil, bufs, sizes, 0, ErrMalformed},
		{"truncated ip", h4, p4[:19], bufs, sizes, 0, ErrMalformed},
		{"truncated tcp", h4, p4[:30], bufs, sizes, 0, ErrTruncated},
		{"truncated tcp options", h4, mod(p4[:45], func(p []byte) { p[32] = 0xf0 }), bufs, sizes, 0, ErrTruncated},
		{"tcp data offset 1", h4, mod(p4, func(p []byte) { p[32] = 0x10 }), bufs, sizes, 0, ErrMalformed},
		{"fragment", h4, mod(p4, func(p []byte) { p[6] |= 0x20 }), bufs, sizes, 0, ErrMalformed},
		{"truncated udp", hu, pu[:25], bufs, sizes, 0, ErrTruncated},
		{"csum outside", VirtioNetHdr{Flags: VirtioNetHdrFNeedsCsum, CsumStart: 20, CsumOffset: 5000}, p4[:100], bufs, sizes, 0, ErrMalformed},
		{"plain too big", VirtioNetHdr{}, p4, bufs, sizes, 0, ErrBufferTooSmall},
	}
	for _, c := range cases {
		n, err := SplitGSO(c.h, c.pkt, c.bufs, c.sizes, c.off)
		if !errors.Is(err, c.want) || n != 0 {
			t.Errorf("%s: n=%d err=%v, want %v", c.name, n, err, c.want)
		}
	}
}

func FuzzSplitGSO(f *testing.F) {
	for _, o := range []tcpOpts{
		{payload: payloadBytes(300, 1), flags: TCPFlagACK},
		{v6: true, payload: payloadBytes(300, 1), flags: TCPFlagACK | TCPFlagPSH},
		{udp: true, payload: payloadBytes(300, 1)},
		{v6: true, udp: true, payload: payloadBytes(100, 1)},
	} {
		h, pkt := superPacket(o, 64)
		var hb [VirtioNetHdrLen]byte
		h.Encode(hb[:])
		f.Add(append(hb[:], pkt...))
	}
	bufs, sizes := makeBufs(8, 600)
	f.Fuzz(func(t *testing.T, data []byte) {
		var h VirtioNetHdr
		if h.Decode(data) != nil {
			return
		}
		pkt := data[VirtioNetHdrLen:]
		const off = 4
		n, err := SplitGSO(h, pkt, bufs, sizes, off)
		if err != nil {
			if n != 0 {
				t.Fatalf("n = %d with error %v", n, err)
			}
			return
		}
		if n < 1 || n > len(bufs) {
			t.Fatalf("n = %d", n)
		}
		total := 0
		for i := 0; i < n; i++ {
			if sizes[i] < 0 || off+sizes[i] > len(bufs[i]) {
				t.Fatalf("size %d out of range", sizes[i])
			}
			total += sizes[i]
		}
		if h.GSOType&^GSOECNBit == GSONone {
			if sizes[0] != len(pkt) {
				t.Fatalf("plain packet size %d, want %d", sizes[0], len(pkt))
			}
			return
		}
		// Every segment is a well-formed packet with valid checksums.
		for i := 0; i < n; i++ {
			seg := bufs[i][off : off+sizes[i]]
			if tl, ok := TotalLen(seg); !ok || tl != len(seg) {
				t.Fatalf("segment %d: IP length %d, %v; size %d", i, tl, ok, len(seg))
			}
			proto, l4, ok := Transport(seg)
			if !ok {
				t.Fatalf("segment %d: transport not found", i)
			}
			if Version(seg) == 4 && !IPv4(seg).ChecksumValid() {
				t.Fatalf("segment %d: bad IPv4 header checksum", i)
			}
			var src, dst []byte
			if Version(seg) == 4 {
				src, dst = seg[12:16], seg[16:20]
			} else {
				src, dst = seg[8:24], seg[24:40]
			}
			if Checksum(seg[l4:], PseudoHeaderSum(proto, src, dst, len(seg)-l4)) != 0xffff {
				t.Fatalf("segment %d: bad transport checksum", i)
			}
			if proto == ProtoUDP && int(be.Uint16(seg[l4+4:])) != len(seg)-l4 {
				t.Fatalf("segment %d: UDP length", i)
			}
		}
	})
}
