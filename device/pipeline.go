package device

import (
	"sync"
	"sync/atomic"

	"github.com/gotatun/gotatun/daita"
	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/transport"
)

// headroom is the space reserved in front of every plaintext packet for
// the transport header, so packets are sealed and opened in place.
const headroom = noise.MessageTransportHeaderSize

// tagSize is the size of the authentication tag after the ciphertext.
const tagSize = noise.MessageTransportOverhead - noise.MessageTransportHeaderSize

// buffer is one pooled packet buffer, of Device.bufSize bytes when taken.
type buffer struct {
	b []byte
}

// elem is one packet moving through a pipeline.
type elem struct {
	buf *buffer
	// n is the plaintext length (outbound, at buf.b[headroom:]) or the
	// datagram length (inbound, at buf.b[0:]).
	n int
	// plen is the decrypted length (inbound), at buf.b[headroom:].
	plen    int
	counter uint64
	// src is an inbound datagram still in the bind's memory (lent by the
	// receive function), decrypted from there into buf; nil once in buf.
	src []byte
	kp  *noise.Keypair     // inbound: the keypair the packet names
	ep  transport.Endpoint // inbound: where it came from
	ok  bool               // crypto succeeded
	// dt is the DAITA instance that counted this outbound packet in
	// flight, nil if none.
	dt *daita.Peer
}

// batch is a vector of packets of one peer in one direction. It sits on the
// peer's ordered queue and on the shared work queue at once; a worker does
// its crypto, marks it done, and whoever then finds it at the head of the
// peer's queue finishes it (send or TUN write), so per-peer order holds
// without a reorder buffer and without a goroutine per peer.
type batch struct {
	peer  *Peer
	kp    *noise.Keypair // outbound: the keypair sealing every packet
	out   bool
	elems []elem
	bufs  [][]byte // scratch for Send / Write
	done  atomic.Bool
	next  *batch // peer queue link
	link  *batch // scratch link for the producer
}

// peerQueue is a peer's ordered queue of batches in one direction.
type peerQueue struct {
	mu         sync.Mutex
	head, tail *batch
	running    atomic.Bool // someone is finishing batches
}

func (q *peerQueue) push(b *batch) {
	q.mu.Lock()
	if q.tail == nil {
		q.head = b
	} else {
		q.tail.next = b
	}
	q.tail = b
	q.mu.Unlock()
}

// popDone removes and returns the head if its crypto is done.
func (q *peerQueue) popDone() *batch {
	q.mu.Lock()
	defer q.mu.Unlock()
	h := q.head
	if h == nil || !h.done.Load() {
		return nil
	}
	q.head = h.next
	if q.head == nil {
		q.tail = nil
	}
	h.next = nil
	return h
}

func (q *peerQueue) headDone() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.head != nil && q.head.done.Load()
}

// drain finishes batches at the head of q in order. Only one goroutine
// drains a queue at a time; one that finds the queue busy leaves, and the
// busy one looks again after letting go, so no finished batch is stranded.
func (q *peerQueue) drain(finish func(*batch)) {
	for {
		if !q.running.CompareAndSwap(false, true) {
			return
		}
		for {
			b := q.popDone()
			if b == nil {
				break
			}
			finish(b)
		}
		q.running.Store(false)
		if !q.headDone() {
			return
		}
	}
}

func (d *Device) getBatch() *batch {
	return d.batchPool.Get().(*batch)
}

// putBatch recycles b; its buffers must already be recycled or handed on.
func (d *Device) putBatch(b *batch) {
	clear(b.elems)
	b.elems = b.elems[:0]
	clear(b.bufs)
	b.bufs = b.bufs[:0]
	b.peer, b.kp, b.out, b.next, b.link = nil, nil, false, nil, nil
	b.done.Store(false)
	d.batchPool.Put(b)
}

// dispatch hands a batch already on its peer's queue to the workers, or
// processes it at once when there are none. A worker never blocks on the
// full work queue (every worker could be doing the same); it does the
// crypto itself instead.
func (d *Device) dispatch(b *batch, fromWorker bool) {
	if d.inline {
		d.process(b)
		return
	}
	if fromWorker {
		select {
		case d.workQ <- b:
		default:
			d.process(b)
		}
		return
	}
	select {
	case d.workQ <- b:
	case <-d.done:
	}
}

// worker runs crypto for batches from the work queue.
func (d *Device) worker() {
	defer d.wg.Done()
	for {
		select {
		case b := <-d.workQ:
			d.process(b)
		case <-d.done:
			return
		}
	}
}

func (d *Device) process(b *batch) {
	p := b.peer
	if b.out {
		d.encrypt(b)
		b.done.Store(true)
		p.outQ.drain(d.finishOutbound)
	} else {
		d.decrypt(b)
		b.done.Store(true)
		p.inQ.drain(d.finishInbound)
	}
}
