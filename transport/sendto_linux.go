package transport

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// multiBatch is the scratch space of one SendTo call: one message, with
// its own destination, per datagram.
type multiBatch struct {
	msgs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // also hold RawSockaddrInet4s
	oob   []byte
	index []int // into bufs, of each message

	// sendmmsg call state for writeFn.
	start, end int
	sent       int
	errno      error
	writeFn    func(fd uintptr) bool
}

func newMultiBatch(n int) *multiBatch {
	mb := &multiBatch{
		msgs:  make([]mmsghdr, n),
		iovs:  make([]unix.Iovec, n),
		names: make([]unix.RawSockaddrInet6, n),
		oob:   make([]byte, n*sendOOBSize),
		index: make([]int, n),
	}
	mb.writeFn = mb.write
	return mb
}

// write runs sendmmsg on the pending messages; it returns false when the
// socket is full and the poller should wait.
func (mb *multiBatch) write(fd uintptr) bool {
	n, done, err := writeMsgs(fd, mb.msgs[mb.start:mb.end])
	if done {
		mb.sent, mb.errno = n, err
	}
	return done
}

// SendTo implements MultiSender with one sendmmsg per run of datagrams to
// the same address family (usually the whole call). A valid eps[i].Src
// becomes the source address of datagram i, as in Send.
func (b *LinuxBind) SendTo(bufs [][]byte, eps []Endpoint) error {
	if len(eps) < len(bufs) {
		return errShortEndpoints
	}
	socks := b.socks.Load()
	if socks == nil {
		return ErrClosed
	}
	var mb *multiBatch
	select {
	case mb = <-b.freeMulti:
	default:
		mb = newMultiBatch(b.cfg.BatchSize)
	}
	err := mb.sendTo(b, socks, bufs, eps)
	select {
	case b.freeMulti <- mb:
	default:
	}
	return err
}

func (mb *multiBatch) sendTo(b *LinuxBind, socks *linuxSockets, bufs [][]byte, eps []Endpoint) error {
	var first error
	fail := func(err error) {
		if first == nil {
			first = err
		}
	}
	pos := 0
	for pos < len(bufs) {
		// One run: datagrams to the family of the first valid destination.
		var s *linuxSocket
		nmsg := 0
		for ; pos < len(bufs) && nmsg < len(mb.msgs); pos++ {
			ep := eps[pos]
			dst := netip.AddrPortFrom(ep.Dst.Addr().Unmap(), ep.Dst.Port())
			if !dst.IsValid() {
				fail(fmt.Errorf("transport: invalid destination %v", ep.Dst))
				continue
			}
			sock := socks.v6
			if dst.Addr().Is4() {
				sock = socks.v4
			}
			if sock == nil {
				fail(fmt.Errorf("transport: no socket for the address family of %v", dst))
				continue
			}
			if s == nil {
				s = sock
			} else if sock != s {
				break
			}
			mb.build(b, nmsg, pos, bufs[pos], dst, ep)
			nmsg++
		}
		if nmsg == 0 {
			continue
		}
		mb.start, mb.end = 0, nmsg
		for mb.start < mb.end {
			if err := s.rc.Write(mb.writeFn); err != nil {
				if errors.Is(err, net.ErrClosed) {
					return fmt.Errorf("%w: %w", ErrClosed, err)
				}
				return fmt.Errorf("transport: send: %w", err)
			}
			if mb.errno != nil {
				// This datagram failed; the others still go.
				i := mb.index[mb.start]
				fail(fmt.Errorf("transport: send to %v: %w", eps[i].Dst, mb.errno))
				if src := eps[i].Src.Unmap(); src.IsValid() && (errors.Is(mb.errno, unix.EINVAL) || errors.Is(mb.errno, unix.EADDRNOTAVAIL)) {
					b.srcFallbacks.Add(1)
					b.markStale(src)
				}
				mb.start++
				continue
			}
			mb.start += mb.sent
		}
	}
	return first
}

// build fills message m with datagram buf (bufs[pos]) to dst.
func (mb *multiBatch) build(b *LinuxBind, m, pos int, buf []byte, dst netip.AddrPort, ep Endpoint) {
	iov := &mb.iovs[m]
	if len(buf) > 0 {
		iov.Base = &buf[0]
	} else {
		iov.Base = nil
	}
	iov.SetLen(len(buf))
	nameLen := putSockaddr(&mb.names[m], dst, ep.IfIndex)
	msg := &mb.msgs[m]
	msg.hdr = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&mb.names[m])), Namelen: nameLen, Iov: iov}
	msg.hdr.SetIovlen(1)
	msg.n = 0
	src := ep.Src.Unmap()
	if src.IsValid() && src.Is4() == dst.Addr().Is4() && !b.isStale(src) {
		oob := mb.oob[m*sendOOBSize : (m+1)*sendOOBSize]
		used := putPktinfo(oob, src, ep.IfIndex)
		msg.hdr.Control = &oob[0]
		msg.hdr.SetControllen(used)
	}
	mb.index[m] = pos
}
