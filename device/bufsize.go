package device

import "github.com/gotatun/gotatun/noise"

// Packet buffers follow the TUN MTU. The size is read from the TUN device
// at start and again on every MTU event; from then on the pool hands out
// buffers of the new size, drops buffers of the old size as they come
// back, and the TUN reader and the UDP receivers swap theirs between
// batches. Between the change and the swap a packet too large for an old
// buffer is dropped by the TUN device or the Bind, which then returns
// with nothing, so the swap follows at once. A steady MTU allocates
// nothing per packet.

const (
	// maxMTU is the largest MTU the TUN device accepts (an IP packet's
	// total length field).
	maxMTU = 65535
)

// bufSizeFor sizes packet buffers: headroom, the MTU (at least minBufMTU,
// so datagrams from peers with the common 1500-byte MTU fit), padding
// slack and the tag, rounded up to 64 bytes.
func bufSizeFor(mtu int) int {
	n := headroom + min(max(mtu, minBufMTU), maxMTU) + 16 + tagSize
	return (n + 63) &^ 63
}

// setMTU records the TUN MTU: padding follows it at once, buffers as
// they are next taken.
func (d *Device) setMTU(mtu int) {
	mtu = min(mtu, maxMTU)
	d.mtu.Store(int32(mtu))
	d.bufSize.Store(int32(bufSizeFor(mtu)))
}

// newBuf is the pool's constructor.
func (d *Device) newBuf() any {
	return &buffer{b: make([]byte, d.bufSize.Load())}
}

func (d *Device) getBuf() *buffer {
	size := int(d.bufSize.Load())
	for {
		b := d.bufPool.Get().(*buffer)
		if len(b.b) == size {
			return b
		}
		// Sized for an MTU no longer in use: left to the collector.
	}
}

func (d *Device) putBuf(b *buffer) {
	if b != nil && len(b.b) == int(d.bufSize.Load()) {
		d.bufPool.Put(b)
	}
}

// tunReadSlice is the part of b a TUN read may fill: all but the room
// for padding and the tag.
func tunReadSlice(b *buffer) []byte {
	return b.b[:len(b.b)-noise.MessageTransportOverhead]
}

// resize swaps the reader's buffers for ones of the current size if the
// size changed. It runs where the reader's buffers are handled (under
// the TUN device's read lock, or on the only reading goroutine).
func (tr *tunReader) resize(d *Device) {
	size := int(d.bufSize.Load())
	if tr.size == size {
		return
	}
	for i, h := range tr.holders {
		if len(h.b) != size {
			d.putBuf(h)
			tr.holders[i] = d.getBuf()
			tr.bufs[i] = tunReadSlice(tr.holders[i])
		}
	}
	tr.size = size
}

// resize is tunReader.resize for a receiver's buffers, run by its
// goroutine between receive calls.
func (r *receiver) resize() {
	size := int(r.d.bufSize.Load())
	if r.size == size {
		return
	}
	for i, h := range r.holders {
		if len(h.b) != size {
			r.d.putBuf(h)
			r.holders[i] = r.d.getBuf()
			r.bufs[i] = r.holders[i].b
		}
	}
	r.size = size
}
