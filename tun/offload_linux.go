package tun

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gotatun/gotatun/packet"
)

const (
	// writeWindow is how many super-packets (or lone packets) one round
	// of coalescing builds; each needs a buffer that can grow to 64 KiB.
	// A batch with more outputs takes several rounds.
	writeWindow = 16
	// slotSize holds a virtio-net header and the largest super-packet.
	slotSize = virtioHdrLen + maxPacket
	// maxSplitArena bounds the memory used to split a super-packet with
	// more segments than the caller has buffers.
	maxSplitArena = 1 << 20
)

// vnetReader is the read scratch with virtio-net headers: one packet (or
// super-packet) read from the kernel, and segments split from it that did
// not fit the caller's buffers yet.
type vnetReader struct {
	buf  []byte // virtio-net header and packet as read
	plen int    // bytes in buf
	have bool   // buf holds a packet not yet split

	// segments waiting to be handed out
	segs       [][]byte
	segSizes   []int
	next, segN int
	arena      []byte

	// dropped: a packet did not fit the caller's buffer since the last
	// readVnet
	dropped bool
	// retried: the packet (or segment) next in line did not fit the
	// buffers of the last call and was kept for one more try, in case
	// the caller grows them (its MTU grew)
	retried bool
}

func (r *vnetReader) init() {
	r.buf = make([]byte, virtioHdrLen+maxPacket)
}

// pending reports whether a packet read or segments split wait in r.
func (r *vnetReader) pending() bool { return r.have || r.next < r.segN }

// readRaw reads one packet into vr.buf without waiting; it reports false
// when nothing is queued.
func (d *LinuxDevice) readRaw(fd uintptr) (bool, error) {
	r := &d.vr
	for {
		// RawSyscall: the descriptor is non-blocking, so the call returns at once;
		// skipping the scheduler's syscall bookkeeping keeps sysmon from handing
		// this P to another thread during long kernel work (a 64 KiB GSO write).
		n, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&r.buf[0])), uintptr(len(r.buf)))
		switch e {
		case 0:
			r.plen = int(n)
			return true, nil
		case unix.EINTR:
		case unix.EAGAIN:
			return false, nil
		default:
			return false, e
		}
	}
}

// readVnet fills c's buffers with packets, splitting super-packets, until
// they are full or nothing more is queued. It never waits; c.n == 0 and
// no error means the kernel had nothing.
func (d *LinuxDevice) readVnet(fd uintptr, c *readCall) {
	r := &d.vr
	bufs, sizes, offset := c.bufs, c.sizes, c.offset
	n := 0
	defer func() { c.n, c.dropped, r.dropped = n, r.dropped, false }()
	for {
		for r.next < r.segN && n < len(bufs) {
			seg := r.segs[r.next][:r.segSizes[r.next]]
			if offset+len(seg) > len(bufs[n]) {
				if r.tooLarge(n == 0) {
					return
				}
				r.next++
				d.readTooLarge.Add(1)
				continue
			}
			r.next++
			r.retried = false
			sizes[n] = copy(bufs[n][offset:], seg)
			n++
		}
		if r.next < r.segN || n == len(bufs) {
			return
		}
		if r.have {
			k, wait := d.split(bufs[n:], sizes[n:], offset, n == 0)
			if wait {
				return
			}
			n += k
			continue
		}
		got, err := d.readRaw(fd)
		if err != nil {
			if n == 0 {
				c.err = err // else it is seen again on the next call
			}
			return
		}
		if !got {
			return
		}
		r.have = true
	}
}

// split splits the packet in vr.buf into out. When it has more segments
// than out holds it waits for the next call (wait), unless out is all the
// caller gave (first), in which case the segments go to internal buffers
// and are handed out over several calls.
func (d *LinuxDevice) split(out [][]byte, sizes []int, offset int, first bool) (n int, wait bool) {
	r := &d.vr
	pkt := r.buf[:r.plen]
	var h packet.VirtioNetHdr
	if err := h.Decode(pkt); err != nil {
		r.have = false
		d.readBad.Add(1)
		return 0, false
	}
	body := pkt[virtioHdrLen:]
	n, err := packet.SplitGSO(h, body, out, sizes, offset)
	switch {
	case err == nil:
		if h.GSOType != packet.GSONone {
			d.gsoSplit.Add(1)
		}
	case errors.Is(err, packet.ErrTooManySegments):
		if !first {
			return 0, true
		}
		if d.splitInternal(h, body) {
			d.gsoSplit.Add(1)
		} else {
			d.readBad.Add(1)
		}
	case errors.Is(err, packet.ErrBufferTooSmall):
		if r.tooLarge(first) {
			return 0, true
		}
		d.readTooLarge.Add(1)
	default:
		d.readBad.Add(1)
	}
	r.have = false
	r.retried = false
	return n, false
}

// tooLarge decides about a packet that does not fit the caller's buffer:
// true keeps it for the next call (when packets precede it in this call,
// or the first time), false drops it.
func (r *vnetReader) tooLarge(first bool) bool {
	r.dropped = true
	if !first {
		return true
	}
	if !r.retried {
		r.retried = true
		return true
	}
	r.retried = false
	return false
}

// splitInternal splits a super-packet into internal buffers sized for its
// segments.
func (d *LinuxDevice) splitInternal(h packet.VirtioNetHdr, body []byte) bool {
	r := &d.vr
	proto, l4, ok := packet.Transport(body)
	if !ok || h.GSOSize == 0 {
		return false
	}
	hdrLen := l4 + packet.UDPHeaderLen
	if proto == packet.ProtoTCP {
		if len(body) < l4+packet.TCPMinHeaderLen {
			return false
		}
		hdrLen = l4 + int(body[l4+12]>>4)*4
	}
	if hdrLen > len(body) {
		return false
	}
	gso := int(h.GSOSize)
	segs := max(1, (len(body)-hdrLen+gso-1)/gso)
	segSize := hdrLen + gso
	if segs*segSize > maxSplitArena {
		return false
	}
	if len(r.arena) < segs*segSize {
		r.arena = make([]byte, segs*segSize)
	}
	if len(r.segs) < segs {
		r.segs = make([][]byte, segs)
		r.segSizes = make([]int, segs)
	}
	for i := range segs {
		r.segs[i] = r.arena[i*segSize : (i+1)*segSize : (i+1)*segSize]
	}
	k, err := packet.SplitGSO(h, body, r.segs[:segs], r.segSizes[:segs], 0)
	if err != nil {
		return false
	}
	r.next, r.segN = 0, k
	return true
}

// vnetWriter is the state of Write with virtio-net headers.
type vnetWriter struct {
	tso   bool // coalesce TCP segments
	uso   bool // coalesce UDP datagrams too
	slots [][]byte
	in    [][]byte
	co    packet.Coalescer

	// raw write call state for fn
	p   []byte
	err error
	fn  func(fd uintptr) bool
}

func (w *vnetWriter) init(tso, uso bool) {
	w.tso, w.uso = tso, uso
	n := 1
	if tso {
		n = writeWindow
	}
	arena := make([]byte, n*slotSize)
	w.slots = make([][]byte, n)
	for i := range w.slots {
		w.slots[i] = arena[i*slotSize : (i+1)*slotSize : (i+1)*slotSize]
	}
	w.in = make([][]byte, 0, linuxBatchSize)
}

// writeRaw writes vw.p as one packet.
func (d *LinuxDevice) writeRaw(fd uintptr) bool {
	w := &d.vw
	for {
		_, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(w.p))), uintptr(len(w.p)))
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		case 0:
			w.err = nil
		default:
			w.err = e
		}
		return true
	}
}

// writeOne writes a virtio-net header and packet. A packet the kernel
// refuses as malformed is counted and skipped.
func (d *LinuxDevice) writeOne(p []byte) error {
	w := &d.vw
	w.p = p
	err := d.rc.Write(w.fn)
	w.p = nil
	if err != nil {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	switch {
	case w.err == nil:
		return nil
	case errors.Is(w.err, unix.EINVAL), errors.Is(w.err, unix.EMSGSIZE):
		d.writeRejected.Add(1)
		return nil
	}
	return fmt.Errorf("tun: write: %w", w.err)
}

// writeVnet writes bufs with virtio-net headers, coalescing segments of a
// flow into super-packets when the kernel accepts TSO (and USO).
func (d *LinuxDevice) writeVnet(bufs [][]byte, offset int) (int, error) {
	w := &d.vw
	if !w.tso {
		for i, b := range bufs {
			pkt := b[offset:]
			var p []byte
			if offset >= virtioHdrLen {
				p = b[offset-virtioHdrLen:]
			} else {
				if len(pkt) > maxPacket {
					d.writeRejected.Add(1)
					continue
				}
				p = w.slots[0][:virtioHdrLen+len(pkt)]
				copy(p[virtioHdrLen:], pkt)
			}
			clear(p[:virtioHdrLen])
			if err := d.writeOne(p); err != nil {
				return i, err
			}
		}
		return len(bufs), nil
	}
	// Packets are copied once, into the slot of the super-packet (or
	// lone packet) they become part of.
	in := w.in[:0]
	for _, b := range bufs {
		if pkt := b[offset:]; len(pkt) > maxPacket {
			d.writeRejected.Add(1)
		} else {
			in = append(in, pkt)
		}
	}
	w.in = in
	written := 0
	for len(in) > 0 {
		out, used, err := w.co.CoalesceInto(in, w.slots, virtioHdrLen, w.uso)
		if err != nil {
			return written, fmt.Errorf("tun: coalesce: %w", err)
		}
		d.coalesced.Add(uint64(used - len(out)))
		for _, p := range out {
			if err := d.writeOne(p); err != nil {
				return written, err
			}
		}
		in = in[used:]
		written += used
	}
	clear(w.in)
	return len(bufs), nil
}
