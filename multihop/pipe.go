// Package multihop puts one WireGuard tunnel inside another in one
// process: the exit device's UDP datagrams become IP/UDP packets on the
// entry device's TUN, so the entry relay sees who but not what, and the
// exit relay sees what but not who.
//
// A Pipe is the joint: its TUN side (Pipe.TUN) is the entry device's
// packet edge and its Bind side (Pipe.Bind) is the exit device's UDP edge.
// Both devices stay plain devices; Client composes them.
//
// Data path: a batch the exit device sends is written, headers and all,
// straight into the entry device's read buffers and handed to the entry
// device's batch handler on the sending goroutine when no other goroutine
// is reading (see pipeTUN.ReadFunc); otherwise, or for a reader without
// ReadFunc, into pooled buffers queued for the entry device's reader. The
// payload is copied once, its checksum summed on the way. A batch the
// entry device writes to its TUN is parsed, and the UDP payloads for the
// entry-tunnel address and the bound port are queued for the exit
// device's receive function, which lends them without a further copy.
// Nothing allocates per packet once the pools are warm.
package multihop

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gotatun/gotatun/transport"
	"github.com/gotatun/gotatun/tun"
)

// Errors returned by a Pipe's sides.
var (
	// ErrNoSource means the pipe has no entry-tunnel address of the
	// destination's family.
	ErrNoSource = errors.New("multihop: no entry-tunnel address of the destination's family")
	// ErrTooBig means a datagram does not fit in the entry MTU once
	// wrapped in its IP and UDP headers.
	ErrTooBig = errors.New("multihop: datagram too big for the entry MTU")
)

const (
	// DefaultMTU is the entry device's MTU when PipeConfig.MTU is 0.
	DefaultMTU = 1420
	// Overhead4 and Overhead6 are what one WireGuard hop adds to a packet
	// over IPv4 and IPv6: outer IP header, UDP header, the 16-byte data
	// message header and the 16-byte tag.
	Overhead4 = 20 + 8 + 32
	Overhead6 = 40 + 8 + 32

	batchCap       = 128 // packets per queued batch
	defaultBatches = 16  // batches in flight each way
	ipv4Header     = 20
	ipv6Header     = 40
	udpHeader      = 8
	minMTU         = 576
	maxMTU         = 65535
	protoUDP       = 17
	protoFragment6 = 44
	fragHeader6    = 8
)

// PipeConfig configures a Pipe.
type PipeConfig struct {
	// Addrs are the client's addresses inside the entry tunnel (those the
	// entry relay assigned): at most one IPv4 and one IPv6 address. They
	// are the source of the exit device's datagrams, and only packets to
	// them are handed back.
	Addrs []netip.Addr
	// MTU is the entry device's TUN MTU: the largest IP packet the pipe
	// hands it. 0 means DefaultMTU.
	MTU int
	// Batches bounds the batches (of up to 128 packets) queued each way;
	// 0 means 16. A full queue makes the writer wait.
	Batches int
	// Name is what the TUN side's Name returns; empty means "multihop".
	Name string
	// Rand draws IPv6 flow labels and random source ports; nil is
	// crypto/rand.
	Rand io.Reader
	// Now is the clock of fragment reassembly; nil is time.Now.
	Now func() time.Time
}

// Stats counts what went through a Pipe and what it dropped.
type Stats struct {
	// Sent counts datagrams of the exit device passed to the entry
	// device as IP/UDP packets, queued or handed over at once; Read
	// counts those the entry device took.
	Sent, Read uint64
	// SendTooBig counts datagrams dropped for not fitting the entry MTU;
	// SendNoSource those to a family without an entry-tunnel address.
	SendTooBig, SendNoSource uint64
	// Received counts datagrams handed to the exit device.
	Received uint64
	// Dropped packets written by the entry device: not IPv4 or IPv6 or
	// shorter than their headers say (Malformed), not UDP (NotUDP), to
	// another address (WrongAddr) or port (WrongPort), or arriving while
	// the exit side was not open (NotOpen). ReadTooBig counts packets
	// dropped for not fitting the entry device's read buffer.
	Malformed, NotUDP, WrongAddr, WrongPort, NotOpen, ReadTooBig uint64
	// Fragments counts IPv4 and IPv6 fragments received, Reassembled the
	// datagrams rebuilt from them, and FragmentsDropped those dropped as
	// invalid, overlapping, evicted to bound memory, or timed out. An IPv6
	// fragment header must come right after the fixed header.
	Fragments, Reassembled, FragmentsDropped uint64
}

type counters struct {
	sent, read, sendTooBig, sendNoSource                  atomic.Uint64
	received, malformed, notUDP, wrongAddr, wrongPort     atomic.Uint64
	notOpen, readTooBig, fragments, reassembled, fragDrop atomic.Uint64
}

// pktBatch is a queued batch of packets in pooled buffers.
type pktBatch struct {
	bufs [][]byte             // bufs[i] is packet i, its length the packet's
	eps  []transport.Endpoint // where the datagrams came from (inbound)
	n    int                  // packets queued
	pos  int                  // packets taken
}

// batchQueue is a bounded queue of batches with a free list, so a batch's
// buffers are reused once its reader is done with them.
type batchQueue struct {
	q, free chan *pktBatch
	bufSize int
}

func newBatchQueue(batches, bufSize int, eps bool) *batchQueue {
	bq := &batchQueue{q: make(chan *pktBatch, batches), free: make(chan *pktBatch, batches), bufSize: bufSize}
	for range batches {
		b := &pktBatch{bufs: make([][]byte, batchCap)}
		if eps {
			b.eps = make([]transport.Endpoint, batchCap)
		}
		bq.free <- b
	}
	return bq
}

// slot returns buffer i of b, allocating it on first use.
func (bq *batchQueue) slot(b *pktBatch, i int) []byte {
	if b.bufs[i] == nil {
		b.bufs[i] = make([]byte, bq.bufSize)
	}
	return b.bufs[i][:bq.bufSize]
}

// advance is called once a reader has filled its buffers or used up
// *cur. A used-up batch is recycled, or kept in *keep if its packets were
// lent; then, if the reader has room, the next queued batch becomes *cur
// without waiting. It reports whether there is more to read.
func (bq *batchQueue) advance(cur **pktBatch, room bool, keep *[]*pktBatch) bool {
	if b := *cur; b.pos < b.n {
		return false
	} else if keep != nil {
		*keep = append(*keep, b)
	} else {
		bq.recycle(b)
	}
	*cur = nil
	if !room {
		return false
	}
	select {
	case *cur = <-bq.q:
		return true
	default:
		return false
	}
}

func (bq *batchQueue) recycle(b *pktBatch) {
	b.n, b.pos = 0, 0
	bq.free <- b // never blocks: as many slots as batches
}

// readWait is the entry device's reader waiting for packets on an empty
// queue. The Send that takes it either writes packets into bufs (n of
// them) or hands over a batch, then signals filled.
type readWait struct {
	bufs   [][]byte
	sizes  []int
	offset int
	n      int
	batch  *pktBatch
	filled chan struct{}
}

// batchHandler is what the entry device passes to ReadFunc: its read
// buffers and the function that takes a batch read into them.
type batchHandler struct {
	bufs   [][]byte
	sizes  []int
	offset int
	handle func(n int)
}

// Pipe joins an exit device's UDP side to an entry device's TUN side.
// It is safe for concurrent use.
type Pipe struct {
	name  string
	mtu   int
	src4  netip.Addr
	src6  netip.Addr
	rand  io.Reader
	randM sync.Mutex

	out *batchQueue // exit → entry: IP/UDP packets
	in  *batchQueue // entry → exit: datagram payloads

	ipID atomic.Uint32 // last IPv4 identification used

	readMu  sync.Mutex // entry-side reader state
	cur     *pktBatch
	rw      readWait
	handler batchHandler  // the entry device's, from its last ReadFunc
	notify  chan struct{} // a batch was queued, for ReadFunc

	// waitMu orders batches queued with a waiting reader: waiter is set
	// only while the out queue is empty, and a sender that finds it set
	// fills it instead of queueing.
	waitMu sync.Mutex
	waiter *readWait

	frag *reassembler

	bind   pipeBind
	tunDev pipeTUN
	events chan tun.Event

	closed    chan struct{}
	closeOnce sync.Once

	stats counters
}

// NewPipe returns a Pipe for cfg.
func NewPipe(cfg PipeConfig) (*Pipe, error) {
	p := &Pipe{name: cfg.Name, mtu: cfg.MTU, rand: cfg.Rand, closed: make(chan struct{})}
	if p.name == "" {
		p.name = "multihop"
	}
	if p.mtu == 0 {
		p.mtu = DefaultMTU
	}
	if p.mtu < minMTU || p.mtu > maxMTU {
		return nil, fmt.Errorf("multihop: entry MTU %d outside %d…%d", p.mtu, minMTU, maxMTU)
	}
	if p.rand == nil {
		p.rand = rand.Reader
	}
	for _, a := range cfg.Addrs {
		a = a.Unmap()
		switch {
		case !a.IsValid() || a.IsUnspecified() || a.IsMulticast():
			return nil, fmt.Errorf("multihop: entry-tunnel address %v is not a unicast address", a)
		case a.Is4() && p.src4.IsValid(), a.Is6() && p.src6.IsValid():
			return nil, fmt.Errorf("multihop: more than one entry-tunnel address of the family of %v", a)
		case a.Is4():
			p.src4 = a
		default:
			p.src6 = a.WithZone("")
		}
	}
	if !p.src4.IsValid() && !p.src6.IsValid() {
		return nil, errors.New("multihop: no entry-tunnel address")
	}
	batches := cfg.Batches
	if batches <= 0 {
		batches = defaultBatches
	}
	p.out = newBatchQueue(batches, p.mtu, false)
	p.in = newBatchQueue(batches, p.mtu, true)
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	p.frag = newReassembler(now, &p.stats.fragDrop)
	p.bind.p = p
	p.tunDev.p = p
	p.rw.filled = make(chan struct{}, 1)
	p.notify = make(chan struct{}, 1)
	p.events = make(chan tun.Event, 1)
	p.events <- tun.EventUp
	return p, nil
}

// TUN returns the side to give the entry device as its TUN. Closing it
// closes the Pipe.
func (p *Pipe) TUN() tun.Device { return &p.tunDev }

// Bind returns the side to give the exit device as its Bind. It may be
// closed and opened again (the device does so to change its port); that
// leaves the Pipe open.
func (p *Pipe) Bind() transport.Bind { return &p.bind }

// MTU returns the entry MTU.
func (p *Pipe) MTU() int { return p.mtu }

// Done is closed when the Pipe is closed.
func (p *Pipe) Done() <-chan struct{} { return p.closed }

// Close closes both sides: reads and sends on either return ErrClosed.
func (p *Pipe) Close() error {
	p.closeOnce.Do(func() {
		close(p.closed)
		close(p.events)
		p.bind.Close()
		// A Send may be running the entry device's handler: let it
		// finish, so the device, once its TUN is closed, sees no more
		// packets. No new one starts: sendDirect checks closed under
		// the lock.
		p.readMu.Lock()
		//lint:ignore SA2001 the lock is a barrier: taking it waits for a running handler.
		p.readMu.Unlock()
	})
	return nil
}

// Stats returns the Pipe's counters.
func (p *Pipe) Stats() Stats {
	c := &p.stats
	return Stats{
		Sent: c.sent.Load(), Read: c.read.Load(),
		SendTooBig: c.sendTooBig.Load(), SendNoSource: c.sendNoSource.Load(),
		Received: c.received.Load(), Malformed: c.malformed.Load(), NotUDP: c.notUDP.Load(),
		WrongAddr: c.wrongAddr.Load(), WrongPort: c.wrongPort.Load(), NotOpen: c.notOpen.Load(),
		ReadTooBig: c.readTooBig.Load(),
		Fragments:  c.fragments.Load(), Reassembled: c.reassembled.Load(), FragmentsDropped: c.fragDrop.Load(),
	}
}

func (p *Pipe) randUint32() uint32 {
	var b [4]byte
	p.randM.Lock()
	_, err := io.ReadFull(p.rand, b[:])
	p.randM.Unlock()
	if err != nil {
		// A broken random source still gives a working pipe; the value
		// only needs to differ between binds.
		return uint32(time.Now().UnixNano())
	}
	return binary.BigEndian.Uint32(b[:])
}

// pipeTUN is the entry device's TUN.
type pipeTUN struct{ p *Pipe }

// Read implements tun.Device: it waits for the exit device's packets.
func (t *pipeTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	p := t.p
	p.readMu.Lock()
	defer p.readMu.Unlock()
	if len(bufs) == 0 {
		return 0, nil
	}
	n := 0
	for n == 0 {
		if p.cur == nil {
			k, err := p.next(bufs, sizes, offset)
			if err != nil {
				return 0, err
			}
			if n = k; p.cur == nil {
				continue
			}
		}
		for {
			b := p.cur
			for b.pos < b.n && n < len(bufs) {
				pkt := b.bufs[b.pos] // its length is the packet's
				b.pos++
				if len(pkt) > len(bufs[n])-offset {
					p.stats.readTooBig.Add(1)
					continue
				}
				sizes[n] = copy(bufs[n][offset:], pkt)
				n++
			}
			if !p.out.advance(&p.cur, n < len(bufs), nil) {
				break
			}
		}
	}
	p.stats.read.Add(uint64(n))
	return n, nil
}

// ReadFunc implements tun.BatchReader. It waits without holding the read
// lock, so that a Send that finds the lock free writes its packets into
// the entry device's buffers and calls handle itself, on the exit
// device's goroutine: no queue, no second copy, no wake-up. Batches are
// queued only when another call holds the lock, and ReadFunc (or
// whichever call takes the lock next) hands them on in order.
func (t *pipeTUN) ReadFunc(bufs [][]byte, sizes []int, offset int, handle func(n int)) error {
	p := t.p
	if len(bufs) == 0 {
		return nil
	}
	for {
		select {
		case <-p.closed:
			return tun.ErrClosed
		default:
		}
		p.readMu.Lock()
		p.handler = batchHandler{bufs: bufs, sizes: sizes, offset: offset, handle: handle}
		handled := p.drainLocked()
		p.readMu.Unlock()
		if handled {
			return nil
		}
		select {
		case <-p.notify:
		case <-p.closed:
			return tun.ErrClosed
		}
	}
}

// PollFunc implements tun.BatchReader.
func (t *pipeTUN) PollFunc(bufs [][]byte, sizes []int, offset int, handle func(n int)) bool {
	p := t.p
	if len(bufs) == 0 || !p.readMu.TryLock() {
		return false
	}
	defer p.readMu.Unlock()
	p.handler = batchHandler{bufs: bufs, sizes: sizes, offset: offset, handle: handle}
	return p.drainLocked()
}

// drainLocked hands every queued packet to the handler, a buffer-full at
// a time, and reports whether it handled any. The caller holds readMu.
func (p *Pipe) drainLocked() bool {
	h := &p.handler
	handled := false
	for {
		if p.cur == nil {
			select {
			case p.cur = <-p.out.q:
			default:
				return handled
			}
		}
		n, took := 0, false
		for {
			b := p.cur
			for b.pos < b.n && n < len(h.bufs) {
				pkt := b.bufs[b.pos]
				b.pos++
				took = true
				if len(pkt) > len(h.bufs[n])-h.offset {
					p.stats.readTooBig.Add(1)
					continue
				}
				h.sizes[n] = copy(h.bufs[n][h.offset:], pkt)
				n++
			}
			if !p.out.advance(&p.cur, n < len(h.bufs), nil) {
				break
			}
		}
		if took {
			p.stats.read.Add(uint64(n))
			h.handle(n) // 0 when nothing fitted: the device may grow its buffers
			handled = true
		}
	}
}

// next makes the next queued batch p.cur or, with none queued, waits for
// a Send, which either hands over a batch the same way or writes packets
// into bufs; it returns how many. The caller holds readMu.
func (p *Pipe) next(bufs [][]byte, sizes []int, offset int) (int, error) {
	p.waitMu.Lock()
	select {
	case p.cur = <-p.out.q:
		p.waitMu.Unlock()
		return 0, nil
	default:
	}
	w := &p.rw
	w.bufs, w.sizes, w.offset, w.n, w.batch = bufs, sizes, offset, 0, nil
	p.waiter = w
	p.waitMu.Unlock()
	select {
	case <-w.filled:
	case <-p.closed:
		p.waitMu.Lock()
		mine := p.waiter == w
		if mine {
			p.waiter = nil
		}
		p.waitMu.Unlock()
		if mine {
			return 0, tun.ErrClosed
		}
		<-w.filled // a Send took it: never blocks for long
	}
	n := w.n
	p.cur, w.bufs, w.sizes, w.batch = w.batch, nil, nil, nil
	return n, nil
}

// Write implements tun.Device: it hands the UDP payloads for the pipe's
// address and port to the exit device and drops the rest.
func (t *pipeTUN) Write(bufs [][]byte, offset int) (int, error) {
	p := t.p
	select {
	case <-p.closed:
		return 0, tun.ErrClosed
	default:
	}
	for i, b := range bufs {
		if len(b) < offset {
			return i, fmt.Errorf("multihop: buffer %d shorter than offset %d", i, offset)
		}
	}
	p.deliver(bufs, offset)
	return len(bufs), nil
}

// MTU implements tun.Device.
func (t *pipeTUN) MTU() (int, error) { return t.p.mtu, nil }

// Name implements tun.Device.
func (t *pipeTUN) Name() (string, error) { return t.p.name, nil }

// Events implements tun.Device.
func (t *pipeTUN) Events() <-chan tun.Event { return t.p.events }

// BatchSize implements tun.Device.
func (t *pipeTUN) BatchSize() int { return batchCap }

// Close implements tun.Device; it closes the Pipe.
func (t *pipeTUN) Close() error { return t.p.Close() }
