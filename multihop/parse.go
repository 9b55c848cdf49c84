package multihop

import (
	"encoding/binary"
	"net/netip"

	"github.com/gotatun/gotatun/transport"
)

// verdict is what becomes of a packet the entry device wrote.
type verdict int

const (
	vDeliver   verdict = iota // a whole UDP datagram for the pipe's address
	vFragment                 // a fragment for the pipe's address
	vMalformed                // not IPv4/IPv6, or shorter than its headers say
	vNotUDP                   // another protocol, or IPv6 extension headers
	vWrongAddr                // to an address other than the pipe's
)

// inbound is a parsed packet: for vDeliver the datagram, for vFragment
// the fragment.
type inbound struct {
	src     netip.AddrPort
	dport   uint16
	payload []byte
	frag    fragment
}

// classify parses an IP packet written by the entry device into in. Checksums are
// not checked: the packet was authenticated by the entry tunnel's AEAD,
// and the exit tunnel's AEAD authenticates the payload again.
func (p *Pipe) classify(pkt []byte, in *inbound) verdict {
	if len(pkt) == 0 {
		return vMalformed
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < ipv4Header {
			return vMalformed
		}
		hl := int(pkt[0]&0x0f) * 4
		tl := int(binary.BigEndian.Uint16(pkt[2:4]))
		if hl < ipv4Header || tl < hl || tl > len(pkt) {
			return vMalformed
		}
		pkt = pkt[:tl]
		if pkt[9] != protoUDP {
			return vNotUDP
		}
		dst := netip.AddrFrom4([4]byte(pkt[16:20]))
		if dst != p.src4 {
			return vWrongAddr
		}
		if ff := binary.BigEndian.Uint16(pkt[6:8]); ff&0x3fff != 0 { // MF or an offset
			in.frag = fragment{
				key:  fragKey{src: netip.AddrFrom4([4]byte(pkt[12:16])), dst: dst, id: uint32(binary.BigEndian.Uint16(pkt[4:6]))},
				off:  int(ff&0x1fff) * 8,
				more: ff&0x2000 != 0,
				data: pkt[hl:],
				max:  maxIPLen - hl,
			}
			return vFragment
		}
		return parseUDP(pkt[hl:], netip.AddrFrom4([4]byte(pkt[12:16])), in)
	case 6:
		if len(pkt) < ipv6Header {
			return vMalformed
		}
		tl := ipv6Header + int(binary.BigEndian.Uint16(pkt[4:6]))
		if tl > len(pkt) {
			return vMalformed
		}
		pkt = pkt[:tl]
		if pkt[6] != protoUDP && pkt[6] != protoFragment6 {
			return vNotUDP
		}
		dst := netip.AddrFrom16([16]byte(pkt[24:40]))
		if dst != p.src6 {
			return vWrongAddr
		}
		src := netip.AddrFrom16([16]byte(pkt[8:24]))
		if pkt[6] == protoUDP {
			return parseUDP(pkt[ipv6Header:], src, in)
		}
		// A fragment header right after the fixed one; other extension
		// headers before it are not supported.
		if len(pkt) < ipv6Header+fragHeader6 {
			return vMalformed
		}
		fh := pkt[ipv6Header : ipv6Header+fragHeader6]
		if fh[0] != protoUDP {
			return vNotUDP
		}
		of := binary.BigEndian.Uint16(fh[2:4])
		if of&^7 == 0 && of&1 == 0 { // an atomic fragment: a whole datagram
			return parseUDP(pkt[ipv6Header+fragHeader6:], src, in)
		}
		in.frag = fragment{
			key:  fragKey{src: src, dst: dst, id: binary.BigEndian.Uint32(fh[4:8])},
			off:  int(of &^ 7),
			more: of&1 != 0,
			data: pkt[ipv6Header+fragHeader6:],
			max:  maxIPLen,
		}
		return vFragment
	}
	return vMalformed
}

// parseUDP parses a UDP header and payload from src.
func parseUDP(u []byte, src netip.Addr, in *inbound) verdict {
	if len(u) < udpHeader {
		return vMalformed
	}
	ulen := int(binary.BigEndian.Uint16(u[4:6]))
	if ulen < udpHeader || ulen > len(u) {
		return vMalformed
	}
	in.src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(u[0:2]))
	in.dport = binary.BigEndian.Uint16(u[2:4])
	in.payload = u[udpHeader:ulen]
	return vDeliver
}

// deliver queues the UDP payloads among bufs[i][offset:] addressed to the
// pipe for the exit device, and counts and drops everything else.
func (p *Pipe) deliver(bufs [][]byte, offset int) {
	st := p.bind.open.Load()
	var (
		batch *pktBatch
		in    inbound // filled in place: large, and copied for nothing if returned
	)
	for _, b := range bufs {
		v := p.classify(b[offset:], &in)
		var reasm *fragEntry
		if v == vFragment {
			p.stats.fragments.Add(1)
			p.frag.mu.Lock()
			reasm = p.frag.add(in.frag)
			if reasm == nil {
				p.frag.mu.Unlock()
				continue
			}
			v = parseUDP(reasm.data[:reasm.total], reasm.key.src, &in)
			p.stats.reassembled.Add(1)
		}
		switch {
		case v == vDeliver && st == nil:
			p.stats.notOpen.Add(1)
		case v == vDeliver && in.dport != st.port:
			p.stats.wrongPort.Add(1)
		case v == vDeliver && len(in.payload) > p.in.bufSize:
			p.stats.fragDrop.Add(1)
		case v == vDeliver:
			if batch == nil {
				batch = p.takeIn(st)
			}
			if batch != nil {
				buf := p.in.slot(batch, batch.n)
				batch.bufs[batch.n] = buf[:copy(buf, in.payload)]
				batch.eps[batch.n] = transport.Endpoint{Dst: in.src}
				batch.n++
			} else {
				p.stats.notOpen.Add(1)
			}
		case v == vMalformed:
			p.stats.malformed.Add(1)
		case v == vNotUDP:
			p.stats.notUDP.Add(1)
		case v == vWrongAddr:
			p.stats.wrongAddr.Add(1)
		}
		if reasm != nil {
			p.frag.release(reasm)
			p.frag.mu.Unlock()
		}
		if batch != nil && batch.n == batchCap {
			p.queueIn(batch, st)
			batch = nil
		}
	}
	if batch != nil {
		p.queueIn(batch, st)
	}
}

// takeIn returns a free inbound batch, waiting for one, or nil if the
// pipe or the opening st closed.
func (p *Pipe) takeIn(st *bindState) *pktBatch {
	select {
	case b := <-p.in.free:
		return b
	case <-p.closed:
	case <-st.done:
	}
	return nil
}

// queueIn queues batch for the exit device's receive function, waiting
// while the queue is full; if the pipe or the opening closes first, the
// batch is dropped and counted.
func (p *Pipe) queueIn(batch *pktBatch, st *bindState) {
	select {
	case p.in.q <- batch:
		return
	case <-p.closed:
	case <-st.done:
	}
	p.stats.notOpen.Add(uint64(batch.n))
	p.in.recycle(batch)
}
