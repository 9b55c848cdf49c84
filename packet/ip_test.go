package packet

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
)

func TestChecksumKnown(t *testing.T) {
	// RFC 1071 section 3 example.
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := Checksum(b, 0); got != 0xddf2 {
		t.Fatalf("Checksum = %#04x, want 0xddf2", got)
	}
	if got := Checksum(nil, 0); got != 0 {
		t.Fatalf("Checksum(nil) = %#x", got)
	}
	if got := Checksum([]byte{0xab}, 0); got != 0xab00 {
		t.Fatalf("odd byte: %#x", got)
	}
	// A header with its checksum filled in sums to 0xffff.
	h := []byte{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7}
	c := ^Checksum(h, 0)
	if c != 0xb861 {
		t.Fatalf("IPv4 header checksum = %#04x, want 0xb861", c)
	}
	h[10], h[11] = byte(c>>8), byte(c)
	if Checksum(h, 0) != 0xffff || !IPv4(h).ChecksumValid() {
		t.Fatal("filled-in header does not verify")
	}
}

func TestChecksumMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	buf := make([]byte, 2000)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	// All-0xff data stresses the carries.
	ones := make([]byte, 300)
	for i := range ones {
		ones[i] = 0xff
	}
	for n := 0; n <= 300; n++ {
		for _, data := range [][]byte{buf[:n], buf[1 : n+1], ones[:n]} {
			init := uint32(r.Uint32() & 0xffff)
			got := Checksum(data, uint64(init))
			want := naiveChecksum(data, init)
			if got != want {
				t.Fatalf("len %d init %#x: Checksum = %#x, naive = %#x", n, init, got, want)
			}
		}
	}
	// Large initial values (unfolded sums) fold correctly.
	for i := 0; i < 1000; i++ {
		init := r.Uint64()
		data := buf[:r.IntN(200)]
		wantInit := uint32(fold(init))
		if got, want := Checksum(data, init), naiveChecksum(data, wantInit); got != want {
			t.Fatalf("init %#x: %#x != %#x", init, got, want)
		}
	}
}

func TestPseudoHeaderSum(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		o := tcpOpts{v6: v6}
		defaults(&o)
		var s, d []byte
		if v6 {
			a, b := o.src.As16(), o.dst.As16()
			s, d = a[:], b[:]
		} else {
			a, b := o.src.As4(), o.dst.As4()
			s, d = a[:], b[:]
		}
		for _, n := range []int{0, 20, 1480, 65535, 70000} {
			got := Checksum(nil, PseudoHeaderSum(ProtoTCP, s, d, n))
			want := uint16(naivePseudo(s, d, ProtoTCP, n))
			if !v6 && n > 0xffff {
				continue // IPv4 lengths are 16 bits
			}
			if got != want {
				t.Fatalf("v6=%v len %d: %#x != %#x", v6, n, got, want)
			}
		}
	}
}

func TestIPv4View(t *testing.T) {
	pkt := build(tcpOpts{id: 77, ttl: 9, tos: 0xb8, seq: 1000, ack: 2000, flags: TCPFlagACK | TCPFlagPSH, window: 512,
		options: []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}, payload: []byte("hello"), extraIPTrailer: 3})
	if Version(pkt) != 4 {
		t.Fatal("version")
	}
	n, ok := TotalLen(pkt)
	if !ok || n != len(pkt)-3 {
		t.Fatalf("TotalLen = %d, %v", n, ok)
	}
	p, err := ParseIPv4(pkt)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != n || p.HeaderLen() != 20 || p.TotalLen() != n || p.ID() != 77 || p.TTL() != 9 || p.TOS() != 0xb8 ||
		!p.DontFragment() || p.MoreFragments() || p.IsFragment() || p.FragmentOffset() != 0 || p.Protocol() != ProtoTCP || !p.ChecksumValid() {
		t.Fatal("IPv4 fields wrong")
	}
	if p.Src() != netip.MustParseAddr("10.0.0.1") || p.Dst() != netip.MustParseAddr("10.0.0.2") {
		t.Fatal("addresses")
	}
	if a, ok := Src(pkt); !ok || a != p.Src() {
		t.Fatal("Src")
	}
	if a, ok := Dst(pkt); !ok || a != p.Dst() {
		t.Fatal("Dst")
	}
	proto, off, ok := Transport(p)
	if !ok || proto != ProtoTCP || off != 20 {
		t.Fatalf("Transport = %d %d %v", proto, off, ok)
	}
	tcp, err := ParseTCP(p.Payload())
	if err != nil {
		t.Fatal(err)
	}
	if tcp.SrcPort() != 40000 || tcp.DstPort() != 443 || tcp.Seq() != 1000 || tcp.Ack() != 2000 || tcp.HeaderLen() != 32 ||
		tcp.Flags() != TCPFlagACK|TCPFlagPSH || tcp.Window() != 512 || tcp.Urgent() != 0 || len(tcp.Options()) != 12 ||
		string(tcp.Payload()) != "hello" || tcp.Checksum() == 0 {
		t.Fatal("TCP fields wrong")
	}
	if !validL4(p) {
		t.Fatal("built packet invalid")
	}
	p[10] ^= 1
	if p.ChecksumValid() {
		t.Fatal("corrupt header verified")
	}
	p.SetChecksum()
	if !p.ChecksumValid() {
		t.Fatal("SetChecksum")
	}
}

func TestIPv6View(t *testing.T) {
	pkt := build(tcpOpts{v6: true, udp: true, ttl: 33, tos: 0x2e, flowLabel: 0xabcde, payload: []byte("data!"), extraIPTrailer: 16})
	p, err := ParseIPv6(pkt)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != len(pkt)-16 || p.PayloadLen() != 13 || p.NextHeader() != ProtoUDP || p.HopLimit() != 33 ||
		p.TrafficClass() != 0x2e || p.FlowLabel() != 0xabcde {
		t.Fatal("IPv6 fields")
	}
	if n, ok := TotalLen(pkt); !ok || n != len(p) {
		t.Fatalf("TotalLen = %d %v", n, ok)
	}
	if p.Src() != netip.MustParseAddr("fd00::1") || p.Dst() != netip.MustParseAddr("fd00::2") {
		t.Fatal("addresses")
	}
	if hl, ok := HeaderLen(pkt); !ok || hl != 40 {
		t.Fatal("HeaderLen")
	}
	u, err := ParseUDP(p.Payload())
	if err != nil {
		t.Fatal(err)
	}
	if u.SrcPort() != 40000 || u.DstPort() != 443 || u.Length() != 13 || string(u.Payload()) != "data!" || u.Checksum() == 0 {
		t.Fatal("UDP fields")
	}
	if !validL4(p) {
		t.Fatal("checksum")
	}
}

func TestTransportExtensionHeaders(t *testing.T) {
	base := build(tcpOpts{v6: true, payload: []byte("x")})
	l4 := base[40:]
	// hop-by-hop (8 bytes) → destination options (16 bytes) → fragment
	// (first, offset 0) → TCP.
	ext := []byte{
		protoDestOpts, 0, 1, 4, 0, 0, 0, 0,
		protoFragment, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		ProtoTCP, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef, // offset 0, M=1
	}
	pkt := append(append(append([]byte{}, base[:40]...), ext...), l4...)
	pkt[6] = protoHopByHop
	be.PutUint16(pkt[4:], uint16(len(pkt)-40))
	proto, off, ok := Transport(pkt)
	if !ok || proto != ProtoTCP || off != 40+len(ext) {
		t.Fatalf("Transport = %d %d %v", proto, off, ok)
	}
	// A later fragment has no transport header.
	pkt[40+24+2] = 0x01
	if _, _, ok := Transport(pkt); ok {
		t.Fatal("later fragment found a transport header")
	}
	// Truncated extension header.
	if _, _, ok := Transport(pkt[:45]); ok {
		t.Fatal("truncated extension accepted")
	}
	// An extension header claiming more bytes than there are.
	pkt[40+1] = 200
	if _, _, ok := Transport(pkt); ok {
		t.Fatal("overlong extension accepted")
	}
	// A long chain is cut off rather than walked forever.
	chain := append([]byte{}, base[:40]...)
	chain[6] = protoDestOpts
	for i := 0; i < 20; i++ {
		chain = append(chain, protoDestOpts, 0, 0, 0, 0, 0, 0, 0)
	}
	if _, _, ok := Transport(chain); ok {
		t.Fatal("20 extension headers accepted")
	}
	// IPv4 fragments.
	frag := build(tcpOpts{fragmentOffset: 10, payload: []byte("x")})
	if _, _, ok := Transport(frag); ok {
		t.Fatal("IPv4 later fragment found a transport header")
	}
}

func TestMalformed(t *testing.T) {
	v4 := build(tcpOpts{payload: []byte("abc")})
	v6 := build(tcpOpts{v6: true, payload: []byte("abc")})
	cases := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"v4 short", v4[:19]},
		{"v6 short", v6[:39]},
		{"v5", append([]byte{0x50}, v4[1:]...)},
	}
	for _, c := range cases {
		if _, ok := Src(c.b); ok {
			t.Errorf("%s: Src ok", c.name)
		}
		if _, ok := Dst(c.b); ok {
			t.Errorf("%s: Dst ok", c.name)
		}
		if _, ok := TotalLen(c.b); ok {
			t.Errorf("%s: TotalLen ok", c.name)
		}
		if _, ok := HeaderLen(c.b); ok {
			t.Errorf("%s: HeaderLen ok", c.name)
		}
		if _, _, ok := Transport(c.b); ok {
			t.Errorf("%s: Transport ok", c.name)
		}
	}
	// Claimed length beyond the buffer, or below the header.
	if _, ok := TotalLen(v4[:len(v4)-1]); ok {
		t.Error("v4 truncated TotalLen ok")
	}
	if _, err := ParseIPv4(v4[:len(v4)-1]); !errors.Is(err, ErrTruncated) {
		t.Errorf("ParseIPv4 truncated: %v", err)
	}
	if _, err := ParseIPv6(v6[:len(v6)-1]); !errors.Is(err, ErrTruncated) {
		t.Errorf("ParseIPv6 truncated: %v", err)
	}
	bad := append([]byte{}, v4...)
	be.PutUint16(bad[2:], 10)
	if _, ok := TotalLen(bad); ok {
		t.Error("total length below header accepted")
	}
	if _, err := ParseIPv4(bad); !errors.Is(err, ErrMalformed) {
		t.Errorf("ParseIPv4 short total: %v", err)
	}
	bad = append([]byte{}, v4...)
	bad[0] = 0x44 // IHL 4
	if _, err := ParseIPv4(bad); !errors.Is(err, ErrMalformed) {
		t.Errorf("IHL 4: %v", err)
	}
	if _, ok := HeaderLen(bad); ok {
		t.Error("HeaderLen with IHL 4")
	}
	if _, err := ParseIPv4(v6); !errors.Is(err, ErrMalformed) {
		t.Errorf("ParseIPv4 of v6: %v", err)
	}
	if _, err := ParseIPv6(v4); !errors.Is(err, ErrMalformed) {
		t.Errorf("ParseIPv6 of v4: %v", err)
	}
	if _, err := ParseTCP(make([]byte, 19)); !errors.Is(err, ErrTruncated) {
		t.Errorf("short TCP: %v", err)
	}
	tcp := append([]byte{}, v4[20:]...)
	tcp[12] = 0x40
	if _, err := ParseTCP(tcp); !errors.Is(err, ErrMalformed) {
		t.Errorf("TCP offset 4: %v", err)
	}
	tcp[12] = 0xf0
	if _, err := ParseTCP(tcp); !errors.Is(err, ErrTruncated) {
		t.Errorf("TCP offset 15 in short segment: %v", err)
	}
	if _, err := ParseUDP(make([]byte, 7)); !errors.Is(err, ErrTruncated) {
		t.Errorf("short UDP: %v", err)
	}
	u := make([]byte, 8)
	u[5] = 7
	if _, err := ParseUDP(u); !errors.Is(err, ErrMalformed) {
		t.Errorf("UDP length 7: %v", err)
	}
	u[5] = 9
	if _, err := ParseUDP(u); !errors.Is(err, ErrTruncated) {
		t.Errorf("UDP length 9 of 8: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(build(tcpOpts{payload: []byte("hello")}))
	f.Add(build(tcpOpts{v6: true, udp: true, payload: []byte("hello")}))
	f.Add(build(tcpOpts{ipOptions: []byte{1, 1, 1, 0}, options: []byte{2, 4, 5, 0xb4}}))
	f.Add([]byte{0x60, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		Version(b)
		Src(b)
		Dst(b)
		if n, ok := TotalLen(b); ok && (n > len(b) || n < 20) {
			t.Fatalf("TotalLen %d of %d bytes", n, len(b))
		}
		if n, ok := HeaderLen(b); ok && n > len(b) {
			t.Fatalf("HeaderLen %d of %d bytes", n, len(b))
		}
		proto, off, ok := Transport(b)
		if ok {
			if off > len(b) {
				t.Fatalf("Transport offset %d of %d bytes", off, len(b))
			}
			switch proto {
			case ProtoTCP:
				if tcp, err := ParseTCP(b[off:]); err == nil {
					_ = tcp.SrcPort() + tcp.DstPort() + tcp.Window() + tcp.Checksum() + tcp.Urgent()
					_, _, _, _ = tcp.Seq(), tcp.Ack(), tcp.Flags(), len(tcp.Options())+len(tcp.Payload())
				}
			case ProtoUDP:
				if u, err := ParseUDP(b[off:]); err == nil {
					if u.Length() != len(u) {
						t.Fatal("UDP view length")
					}
					_ = u.SrcPort() + u.DstPort() + u.Checksum()
					_ = u.Payload()
				}
			}
		}
		if p, err := ParseIPv4(b); err == nil {
			if len(p) != p.TotalLen() {
				t.Fatal("IPv4 view length")
			}
			_, _, _ = p.Src(), p.Dst(), p.Payload()
			_, _, _, _ = p.ID(), p.TTL(), p.TOS(), p.FragmentOffset()
			_, _ = p.ChecksumValid(), p.IsFragment()
		}
		if p, err := ParseIPv6(b); err == nil {
			if len(p) != 40+p.PayloadLen() {
				t.Fatal("IPv6 view length")
			}
			_, _, _ = p.Src(), p.Dst(), p.Payload()
			_, _, _ = p.FlowLabel(), p.TrafficClass(), p.HopLimit()
		}
		var h VirtioNetHdr
		if err := h.Decode(b); err == nil {
			var out [VirtioNetHdrLen]byte
			if err := h.Encode(out[:]); err != nil || string(out[:]) != string(b[:VirtioNetHdrLen]) {
				t.Fatal("virtio header round trip")
			}
		}
	})
}
