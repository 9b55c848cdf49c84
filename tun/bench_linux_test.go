package tun

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// tcpSegment builds an IPv4 TCP segment with valid checksums at
// buf[offset:] and returns its length.
func tcpSegment(buf []byte, offset int, src, dst netip.AddrPort, seq uint32, id uint16, payload []byte) int {
	p := buf[offset:]
	total := 20 + 20 + len(payload)
	clear(p[:40])
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(total))
	binary.BigEndian.PutUint16(p[4:], id)
	p[6] = 0x40 // DF
	p[8] = 64
	p[9] = unix.IPPROTO_TCP
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	binary.BigEndian.PutUint16(p[10:], ^fold(sum16(p[:20], 0)))
	tcp := p[20:]
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], seq)
	binary.BigEndian.PutUint32(tcp[8:], 1)
	tcp[12] = 5 << 4
	tcp[13] = 0x10 // ACK
	binary.BigEndian.PutUint16(tcp[14:], 65535)
	copy(tcp[20:], payload)
	l4 := tcp[:20+len(payload)]
	binary.BigEndian.PutUint16(tcp[16:], ^fold(sum16(l4, pseudoSum(p, 20, unix.IPPROTO_TCP, len(l4)))))
	return total
}

func benchDevice(b *testing.B, opts LinuxOptions) (*netns, *LinuxDevice) {
	ns := newNetns(b)
	d := ns.createTUN("gtt0", 1500, opts)
	setupAddrs(ns, "gtt0")
	return ns, d
}

// BenchmarkTUNWriteTCP writes a batch of 64 in-order TCP segments of one
// flow (1400-byte payloads), which offloads coalesce into super-packets.
func BenchmarkTUNWriteTCP(b *testing.B) {
	for _, m := range tunModes {
		b.Run(m.name, func(b *testing.B) {
			_, d := benchDevice(b, m.opts)
			const offset, batch, size = 16, 64, 1400
			src := netip.MustParseAddrPort("10.77.0.2:40000")
			dst := netip.MustParseAddrPort("10.77.0.1:5001") // no listener: the kernel drops them
			bufs := make([][]byte, batch)
			payload := make([]byte, size)
			for i := range bufs {
				buf := make([]byte, offset+1500)
				n := tcpSegment(buf, offset, src, dst, uint32(1000+i*size), uint16(i), payload)
				bufs[i] = buf[:offset+n]
			}
			b.SetBytes(batch * size)
			b.ReportAllocs()
			for b.Loop() {
				if n, err := d.Write(bufs, offset); err != nil || n != batch {
					b.Fatalf("Write: %d, %v", n, err)
				}
			}
		})
	}
}

// BenchmarkTUNReadUDP reads batches of 64 UDP datagrams of 1400 bytes that
// a socket sends into the TUN (the socket's sends are part of the cost).
func BenchmarkTUNReadUDP(b *testing.B) {
	for _, m := range tunModes {
		b.Run(m.name, func(b *testing.B) {
			ns, d := benchDevice(b, m.opts)
			var c *net.UDPConn
			var err error
			ns.do(func() {
				c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("10.77.0.1:7000")))
			})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			const offset, batch, size = 16, 64, 1400
			remote := netip.MustParseAddrPort("10.77.0.2:9999")
			payload := make([]byte, size)
			bufs := make([][]byte, 128)
			for i := range bufs {
				bufs[i] = make([]byte, offset+1500)
			}
			sizes := make([]int, len(bufs))
			b.SetBytes(batch * size)
			b.ReportAllocs()
			for b.Loop() {
				for range batch {
					if _, err := c.WriteToUDPAddrPort(payload, remote); err != nil {
						b.Fatal(err)
					}
				}
				for got := 0; got < batch; {
					n, err := d.Read(bufs, sizes, offset)
					if err != nil {
						b.Fatal(err)
					}
					for i := range n {
						if sizes[i] == 20+8+size {
							got++
						}
					}
				}
			}
		})
	}
}
