package allowedips

import (
	"net/netip"
	"slices"
	"testing"
)

// reference is the obviously correct model: a list of entries searched
// linearly.
type reference struct {
	entries []refEntry
}

type refEntry struct {
	prefix netip.Prefix
	peer   uint8
}

func (r *reference) insert(p netip.Prefix, peer uint8) {
	p = p.Masked()
	for i := range r.entries {
		if r.entries[i].prefix == p {
			r.entries[i].peer = peer
			return
		}
	}
	r.entries = append(r.entries, refEntry{p, peer})
}

func (r *reference) remove(p netip.Prefix, peer uint8) bool {
	p = p.Masked()
	for i, e := range r.entries {
		if e.prefix == p && e.peer == peer {
			r.entries = slices.Delete(r.entries, i, i+1)
			return true
		}
	}
	return false
}

func (r *reference) removePeer(peer uint8) {
	r.entries = slices.DeleteFunc(r.entries, func(e refEntry) bool { return e.peer == peer })
}

func (r *reference) lookup(a netip.Addr) (uint8, bool) {
	best := -1
	var peer uint8
	for _, e := range r.entries {
		if e.prefix.Contains(a) && e.prefix.Bits() > best {
			best, peer = e.prefix.Bits(), e.peer
		}
	}
	return peer, best >= 0
}

func (r *reference) prefixes(peer uint8) []netip.Prefix {
	var out []netip.Prefix
	for _, e := range r.entries {
		if e.peer == peer {
			out = append(out, e.prefix)
		}
	}
	slices.SortFunc(out, netip.Prefix.Compare)
	return out
}

// opReader decodes a fuzz input into operations. Addresses are drawn from a
// small space so that prefixes overlap often.
type opReader struct{ b []byte }

func (r *opReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

var interesting = [...]byte{0, 1, 0x0a, 0x7f, 0x80, 0xc0, 0xfe, 0xff}

func (r *opReader) octet() byte {
	c := r.byte()
	if c&0x80 != 0 {
		return c // raw value
	}
	return interesting[c&7]
}

func (r *opReader) addr() netip.Addr {
	if r.byte()&1 == 0 {
		return netip.AddrFrom4([4]byte{r.octet(), r.octet(), r.octet(), r.octet()})
	}
	var a [16]byte
	// Spread the interesting bytes over both halves of the address.
	for _, i := range [...]int{0, 1, 7, 8, 9, 15} {
		a[i] = r.octet()
	}
	return netip.AddrFrom16(a)
}

func (r *opReader) prefix() netip.Prefix {
	a := r.addr()
	return netip.PrefixFrom(a, int(r.byte())%(a.BitLen()+1))
}

func FuzzTable(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0x0a, 0, 0, 0, 8, 0, 1, 0, 0x0a, 0x01, 0, 0, 16, 4, 0, 0x0a, 0x01, 0x02, 0x03})
	f.Add([]byte{0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 1, 0, 0, 0, 0, 0, 0, 128, 4, 1, 1, 1, 1, 1, 1, 1})
	f.Add([]byte{0, 2, 0, 0x80, 0x81, 0x82, 0x83, 32, 1, 2, 0, 0x80, 0x81, 0x82, 0x83, 32, 2, 2, 0, 1})
	f.Add([]byte{3, 5, 0, 0, 0, 0, 0, 10, 0, 1, 2, 3, 4, 30, 1, 0, 1, 1, 1, 1, 1, 1, 77})
	f.Fuzz(func(t *testing.T, data []byte) {
		var tb Table[uint8]
		var ref reference
		r := &opReader{b: data}
		var probes []netip.Addr
		for steps := 0; len(r.b) > 0 && steps < 200; steps++ {
			op := r.byte()
			peer := (op >> 4) & 3
			switch op & 7 {
			case 0, 1:
				p := r.prefix()
				tb.Insert(p, peer)
				ref.insert(p, peer)
				probes = append(probes, p.Addr(), lastAddr(p))
			case 2:
				p := r.prefix()
				got, want := tb.Remove(p, peer), ref.remove(p, peer)
				if got != want {
					t.Fatalf("Remove(%v, %d) = %v, want %v", p, peer, got, want)
				}
			case 3:
				tb.RemovePeer(peer)
				ref.removePeer(peer)
			case 4:
				probes = append(probes, r.addr())
			case 5:
				// A batch of operations published at once.
				n := int(r.byte() & 7)
				tb.Update(func(tx *Txn[uint8]) {
					for i := 0; i < n; i++ {
						c := r.byte()
						p, pe := r.prefix(), c&3
						switch (c >> 2) & 3 {
						case 0, 1:
							tx.Insert(p, pe)
							ref.insert(p, pe)
						case 2:
							if got, want := tx.Remove(p, pe), ref.remove(p, pe); got != want {
								t.Fatalf("Txn.Remove(%v, %d) = %v, want %v", p, pe, got, want)
							}
						case 3:
							tx.RemovePeer(pe)
							ref.removePeer(pe)
						}
						probes = append(probes, p.Addr())
					}
				})
			default:
				a := r.addr()
				probes = append(probes, a, netip.AddrFrom16(a.As16()))
			}
			if tb.Len() != len(ref.entries) {
				t.Fatalf("Len = %d, want %d", tb.Len(), len(ref.entries))
			}
		}
		for _, e := range ref.entries {
			probes = append(probes, e.prefix.Addr(), lastAddr(e.prefix))
		}
		for _, a := range probes {
			gp, gok := tb.Lookup(a)
			wp, wok := ref.lookup(a)
			if gp != wp || gok != wok {
				t.Fatalf("Lookup(%v) = %d, %v; want %d, %v", a, gp, gok, wp, wok)
			}
		}
		for peer := uint8(0); peer < 4; peer++ {
			if got, want := tb.Prefixes(peer), ref.prefixes(peer); !slices.Equal(got, want) {
				t.Fatalf("Prefixes(%d) = %v, want %v", peer, got, want)
			}
		}
	})
}

// lastAddr returns the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	p = p.Masked()
	a := p.Addr()
	if a.Is4() {
		b := a.As4()
		for i := p.Bits(); i < 32; i++ {
			b[i/8] |= 0x80 >> (i % 8)
		}
		return netip.AddrFrom4(b)
	}
	b := a.As16()
	for i := p.Bits(); i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom16(b)
}
