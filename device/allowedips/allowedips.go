// Package allowedips is WireGuard's cryptokey routing table: a map from IP
// prefixes to peers with longest-prefix-match lookup.
//
// Lookups run on the per-packet path of every peer, from many goroutines at
// once, so they take no lock and allocate nothing: the table publishes an
// immutable snapshot (a path-compressed binary trie per address family)
// through an atomic pointer, and a lookup walks whichever snapshot it loaded.
// Writers are serialised by a mutex and build the next snapshot by copying
// only the trie nodes on the path they change (persistent trie); nodes created
// inside one transaction are mutated in place, so a batch of many changes in
// one Update costs about one node per prefix rather than one path per prefix.
package allowedips

import (
	"math/bits"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
)

// node is one trie node. A node stands for the prefix (hi, lo)/bits; it holds
// an entry when has is set, and otherwise exists only to branch. Its children
// extend its prefix with a 0 bit (child[0]) or a 1 bit (child[1]) at position
// bits. Nodes reachable from a published snapshot are never modified.
type node[P comparable] struct {
	child [2]*node[P]
	hi    uint64 // address bits 0..63 (IPv4 uses the top 32 bits of hi)
	lo    uint64 // address bits 64..127
	gen   uint64 // transaction that created the node; mutable while it is current
	bits  uint8  // prefix length
	has   bool   // the node holds an entry for peer
	peer  P
}

// snapshot is an immutable state of the table.
type snapshot[P comparable] struct {
	v4, v6 *node[P]
	n      int
}

// Table maps prefixes to peers of type P. The zero value is an empty table
// ready to use. A Table must not be copied after first use.
type Table[P comparable] struct {
	snap atomic.Pointer[snapshot[P]]

	mu    sync.Mutex // serialises writers; lookups never take it
	gen   uint64     // last transaction number handed out
	index map[P][]netip.Prefix
}

// New returns an empty table. It is the same as a zero Table.
func New[P comparable]() *Table[P] { return &Table[P]{} }

// Lookup returns the peer owning the longest prefix that contains addr. The
// table is chosen by the address's family, as the kernel does: an
// IPv4-mapped IPv6 address (::ffff:a.b.c.d, the source or destination of an
// IPv6 packet) is an IPv6 address, matched only by IPv6 prefixes such as
// ::ffff:0:0/96, never by IPv4 ones. It takes no lock and does not allocate.
func (t *Table[P]) Lookup(addr netip.Addr) (p P, ok bool) {
	s := t.snap.Load()
	if s == nil {
		return p, false
	}
	var n *node[P]
	var hi, lo uint64
	var maxBits uint8
	if addr.Is4() {
		a := addr.As4()
		hi = uint64(a[0])<<56 | uint64(a[1])<<48 | uint64(a[2])<<40 | uint64(a[3])<<32
		n, maxBits = s.v4, 32
	} else if addr.Is6() {
		hi, lo = split128(addr.As16())
		n, maxBits = s.v6, 128
	} else {
		return p, false
	}
	var best *node[P]
	for n != nil && matches(hi, lo, n.hi, n.lo, n.bits) {
		if n.has {
			best = n
		}
		if n.bits >= maxBits {
			break
		}
		n = n.child[bitAt(hi, lo, n.bits)]
	}
	if best == nil {
		return p, false
	}
	return best.peer, true
}

// Len returns the number of prefixes in the table.
func (t *Table[P]) Len() int {
	if s := t.snap.Load(); s != nil {
		return s.n
	}
	return 0
}

// Prefixes returns the prefixes owned by p, sorted (IPv4 first, then by
// address and length). The slice is the caller's.
func (t *Table[P]) Prefixes(p P) []netip.Prefix {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.index[p]
	if len(l) == 0 {
		return nil
	}
	out := slices.Clone(l)
	slices.SortFunc(out, netip.Prefix.Compare)
	return out
}

// Insert maps prefix (masked to its length) to p. A prefix already in the
// table moves to p. An invalid prefix is ignored.
func (t *Table[P]) Insert(prefix netip.Prefix, p P) {
	t.Update(func(tx *Txn[P]) { tx.Insert(prefix, p) })
}

// Remove deletes prefix if p owns it and reports whether it did.
func (t *Table[P]) Remove(prefix netip.Prefix, p P) bool {
	var ok bool
	t.Update(func(tx *Txn[P]) { ok = tx.Remove(prefix, p) })
	return ok
}

// RemovePeer deletes every prefix owned by p.
func (t *Table[P]) RemovePeer(p P) {
	t.Update(func(tx *Txn[P]) { tx.RemovePeer(p) })
}

// Update runs fn with a transaction and then publishes all its changes at
// once: concurrent lookups see either none or all of them. Applying many
// changes in one Update is much cheaper than one call each. Update calls are
// serialised; fn must not call methods of t other than through tx, and tx must
// not be used after fn returns.
func (t *Table[P]) Update(fn func(tx *Txn[P])) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	tx := Txn[P]{t: t, gen: t.gen}
	if s := t.snap.Load(); s != nil {
		tx.s = *s
	}
	fn(&tx)
	tx.t = nil
	if !tx.dirty {
		return
	}
	s := tx.s
	t.snap.Store(&s)
}

// Txn is a set of changes made inside Table.Update.
type Txn[P comparable] struct {
	t     *Table[P]
	gen   uint64
	s     snapshot[P]
	dirty bool
}

// Insert maps prefix (masked to its length) to p; see Table.Insert.
func (tx *Txn[P]) Insert(prefix netip.Prefix, p P) {
	k, ok := makeKey(prefix)
	if !ok {
		return
	}
	root := tx.root(k.v6)
	var old P
	var had bool
	*root = tx.insert(*root, k, p, &old, &had)
	tx.dirty = true
	prefix = k.prefix
	if had {
		if old == p {
			return
		}
		tx.unindex(old, prefix)
	} else {
		tx.s.n++
	}
	if tx.t.index == nil {
		tx.t.index = make(map[P][]netip.Prefix)
	}
	tx.t.index[p] = append(tx.t.index[p], prefix)
}

// Remove deletes prefix if p owns it; see Table.Remove.
func (tx *Txn[P]) Remove(prefix netip.Prefix, p P) bool {
	k, ok := makeKey(prefix)
	if !ok {
		return false
	}
	root := tx.root(k.v6)
	n, removed := tx.remove(*root, k, p)
	if !removed {
		return false
	}
	*root = n
	tx.dirty = true
	tx.s.n--
	tx.unindex(p, k.prefix)
	return true
}

// RemovePeer deletes every prefix owned by p; see Table.RemovePeer.
func (tx *Txn[P]) RemovePeer(p P) {
	l := tx.t.index[p]
	if len(l) == 0 {
		return
	}
	delete(tx.t.index, p)
	for _, prefix := range l {
		k, _ := makeKey(prefix)
		root := tx.root(k.v6)
		if n, removed := tx.remove(*root, k, p); removed {
			*root = n
			tx.s.n--
		}
	}
	tx.dirty = true
}

func (tx *Txn[P]) unindex(p P, prefix netip.Prefix) {
	l := tx.t.index[p]
	if i := slices.Index(l, prefix); i >= 0 {
		l[i] = l[len(l)-1]
		l = l[:len(l)-1]
	}
	if len(l) == 0 {
		delete(tx.t.index, p)
	} else {
		tx.t.index[p] = l
	}
}

func (tx *Txn[P]) root(v6 bool) **node[P] {
	if v6 {
		return &tx.s.v6
	}
	return &tx.s.v4
}

// key is a masked prefix in trie form.
type key struct {
	hi, lo uint64
	bits   uint8
	v6     bool
	prefix netip.Prefix
}

func makeKey(prefix netip.Prefix) (key, bool) {
	if !prefix.IsValid() {
		return key{}, false
	}
	prefix = prefix.Masked()
	a := prefix.Addr()
	k := key{bits: uint8(prefix.Bits()), prefix: prefix}
	if a.Is4() {
		b := a.As4()
		k.hi = uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32
	} else {
		k.hi, k.lo = split128(a.As16())
		k.v6 = true
	}
	return k, true
}

func split128(b [16]byte) (hi, lo uint64) {
	for i := 0; i < 8; i++ {
		hi = hi<<8 | uint64(b[i])
		lo = lo<<8 | uint64(b[8+i])
	}
	return hi, lo
}

// matches reports whether (hi, lo) lies in the prefix (khi, klo)/bits.
// Shifts by 64 or more yield 0 in Go, which makes bits == 0 match everything.
func matches(hi, lo, khi, klo uint64, bits uint8) bool {
	if bits <= 64 {
		return (hi^khi)>>(64-bits) == 0
	}
	return hi == khi && (lo^klo)>>(128-bits) == 0
}

// bitAt returns bit i (0 is the most significant) of (hi, lo).
func bitAt(hi, lo uint64, i uint8) int {
	if i < 64 {
		return int(hi>>(63-i)) & 1
	}
	return int(lo>>(127-i)) & 1
}

// commonBits returns the length of the common prefix of two addresses, at
// most max.
func commonBits(ahi, alo, bhi, blo uint64, max uint8) uint8 {
	var n uint8
	if x := ahi ^ bhi; x != 0 {
		n = uint8(bits.LeadingZeros64(x))
	} else if x := alo ^ blo; x != 0 {
		n = 64 + uint8(bits.LeadingZeros64(x))
	} else {
		n = 128
	}
	if n > max {
		n = max
	}
	return n
}

// mask returns (hi, lo) with every bit from position bits on cleared.
func mask(hi, lo uint64, bits uint8) (uint64, uint64) {
	switch {
	case bits == 0:
		return 0, 0
	case bits < 64:
		return hi &^ (^uint64(0) >> bits), 0
	case bits == 64:
		return hi, 0
	case bits < 128:
		return hi, lo &^ (^uint64(0) >> (bits - 64))
	}
	return hi, lo
}

// mut returns n itself if this transaction created it, or a copy that it may
// modify.
func (tx *Txn[P]) mut(n *node[P]) *node[P] {
	if n.gen == tx.gen {
		return n
	}
	c := *n
	c.gen = tx.gen
	return &c
}

func (tx *Txn[P]) leaf(k key, p P) *node[P] {
	return &node[P]{hi: k.hi, lo: k.lo, bits: k.bits, has: true, peer: p, gen: tx.gen}
}

// insert returns the subtree n with k mapped to p. If k was present, *old and
// *had report its previous owner.
func (tx *Txn[P]) insert(n *node[P], k key, p P, old *P, had *bool) *node[P] {
	if n == nil {
		return tx.leaf(k, p)
	}
	c := commonBits(n.hi, n.lo, k.hi, k.lo, min(n.bits, k.bits))
	switch {
	case c == n.bits && c == k.bits:
		// Same prefix.
		if n.has {
			*old, *had = n.peer, true
			if n.peer == p {
				return n
			}
		}
		m := tx.mut(n)
		m.has, m.peer = true, p
		return m
	case c == n.bits:
		// n is a strict ancestor of k.
		b := bitAt(k.hi, k.lo, n.bits)
		child := tx.insert(n.child[b], k, p, old, had)
		if child == n.child[b] {
			return n
		}
		m := tx.mut(n)
		m.child[b] = child
		return m
	case c == k.bits:
		// k is a strict ancestor of n.
		l := tx.leaf(k, p)
		l.child[bitAt(n.hi, n.lo, k.bits)] = n
		return l
	default:
		// They diverge at bit c: branch there.
		hi, lo := mask(k.hi, k.lo, c)
		br := &node[P]{hi: hi, lo: lo, bits: c, gen: tx.gen}
		br.child[bitAt(k.hi, k.lo, c)] = tx.leaf(k, p)
		br.child[bitAt(n.hi, n.lo, c)] = n
		return br
	}
}

// remove returns the subtree n without k if p owns k, and whether it did.
func (tx *Txn[P]) remove(n *node[P], k key, p P) (*node[P], bool) {
	if n == nil || n.bits > k.bits || !matches(k.hi, k.lo, n.hi, n.lo, n.bits) {
		return n, false
	}
	if n.bits == k.bits {
		if !n.has || n.peer != p {
			return n, false
		}
		return tx.shrink(n, true, 0, nil), true
	}
	b := bitAt(k.hi, k.lo, n.bits)
	child, ok := tx.remove(n.child[b], k, p)
	if !ok {
		return n, false
	}
	return tx.shrink(n, false, b, child), true
}

// shrink returns n with its entry dropped (if drop) or with child b replaced
// (otherwise), collapsing nodes that no longer hold an entry or branch.
func (tx *Txn[P]) shrink(n *node[P], drop bool, b int, child *node[P]) *node[P] {
	c0, c1 := n.child[0], n.child[1]
	if !drop {
		if b == 0 {
			c0 = child
		} else {
			c1 = child
		}
	}
	has := n.has && !drop
	if !has {
		switch {
		case c0 == nil:
			return c1
		case c1 == nil:
			return c0
		}
	}
	m := tx.mut(n)
	m.child[0], m.child[1] = c0, c1
	if drop {
		var zero P
		m.has, m.peer = false, zero
	}
	return m
}
