package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	// defaultLinuxBatch is the default number of datagrams per batch.
	defaultLinuxBatch = 128
	// defaultGROBuffers is the default number of 64 KiB buffers a receiver
	// reads coalesced datagrams into when UDP_GRO is on.
	defaultGROBuffers = 32
	// groBufSize holds the largest coalesced datagram the kernel delivers.
	groBufSize = 65535
	// maxGSOSegments is the most segments sent in one UDP_SEGMENT message
	// (UDP_MAX_SEGMENTS on older kernels).
	maxGSOSegments = 64
	// maxGSOBytes is the most payload in one UDP_SEGMENT message: what fits
	// in a 64 KiB IPv6 packet after the IPv6 and UDP headers.
	maxGSOBytes = 65535 - 40 - 8
	// socketBufferSize is the receive and send buffer size requested.
	socketBufferSize = 7 << 20
)

var (
	// recvOOBSize holds packet info and a UDP_GRO segment size.
	recvOOBSize = cmsgAlignUp(unix.CmsgSpace(unix.SizeofInet6Pktinfo) + unix.CmsgSpace(4))
	// sendOOBSize holds packet info and a UDP_SEGMENT segment size.
	sendOOBSize = cmsgAlignUp(unix.CmsgSpace(unix.SizeofInet6Pktinfo) + unix.CmsgSpace(2))
)

// mmsghdr is struct mmsghdr. Go pads it to the alignment of Msghdr, as C
// does.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// LinuxBindConfig tunes a LinuxBind. The zero value is the default.
type LinuxBindConfig struct {
	// BatchSize is the most datagrams per receive call and per sendmmsg;
	// 0 means 128.
	BatchSize int
	// GROBuffers is how many 64 KiB buffers each socket reads coalesced
	// datagrams into when UDP_GRO is on; 0 means 32.
	GROBuffers int
	// DisableGSO turns off UDP_SEGMENT on send.
	DisableGSO bool
	// DisableGRO turns off UDP_GRO on receive.
	DisableGRO bool
}

// LinuxBindStats counts datagrams the bind dropped or had to resend.
type LinuxBindStats struct {
	// Truncated counts received datagrams larger than their buffer.
	Truncated uint64
	// BadControl counts received datagrams dropped because their control
	// messages were malformed.
	BadControl uint64
	// SegmentTooLarge counts coalesced segments dropped because they did
	// not fit the caller's buffer.
	SegmentTooLarge uint64
	// ReceiveErrors counts transient receive errors that were retried.
	ReceiveErrors uint64
	// GSOFallbacks counts sends retried without UDP_SEGMENT.
	GSOFallbacks uint64
	// SourceFallbacks counts sends retried without the sticky source
	// address because the kernel rejected it.
	SourceFallbacks uint64
}

// LinuxBind is a Bind over Linux UDP sockets with batched system calls
// (recvmmsg, sendmmsg), UDP segmentation offload on send (UDP_SEGMENT),
// coalescing on receive (UDP_GRO) and sticky source addresses
// (IP_PKTINFO, IPV6_PKTINFO). Offloads the kernel lacks are turned off at
// run time.
type LinuxBind struct {
	cfg LinuxBindConfig

	mu    sync.Mutex // serializes Open, Close and SetMark
	mark  uint32
	socks atomic.Pointer[linuxSockets] // nil when closed

	// gsoBroken is set when the kernel answered EIO to a UDP_SEGMENT send
	// (no checksum offload on the path); GSO stays off until reopened.
	gsoBroken atomic.Bool

	// freeBatches holds send scratch space for reuse; a channel rather than
	// a sync.Pool so that garbage collections do not empty it.
	freeBatches chan *sendBatch
	freeMulti   chan *multiBatch // the same for SendTo

	stale   atomic.Pointer[staleSource] // a source address refused lately
	nowNano func() int64                // clock of stale; tests replace it

	truncated, badControl, segTooLarge, recvErrors, gsoFallbacks, srcFallbacks atomic.Uint64
}

type linuxSockets struct {
	v4, v6 *linuxSocket
}

// linuxSocket is one open UDP socket and what the kernel supports on it.
type linuxSocket struct {
	conn *net.UDPConn
	rc   syscall.RawConn
	v6   bool
	gso  bool // UDP_SEGMENT available
	gro  bool // UDP_GRO enabled
}

// NewLinuxBind returns a closed LinuxBind.
func NewLinuxBind(cfg LinuxBindConfig) *LinuxBind {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = defaultLinuxBatch
	}
	if cfg.GROBuffers <= 0 {
		cfg.GROBuffers = defaultGROBuffers
	}
	return &LinuxBind{cfg: cfg, freeBatches: make(chan *sendBatch, 16), freeMulti: make(chan *multiBatch, 4), nowNano: monotonicNano}
}

// Stats returns the drop and fallback counters.
func (b *LinuxBind) Stats() LinuxBindStats {
	return LinuxBindStats{
		Truncated:       b.truncated.Load(),
		BadControl:      b.badControl.Load(),
		SegmentTooLarge: b.segTooLarge.Load(),
		ReceiveErrors:   b.recvErrors.Load(),
		GSOFallbacks:    b.gsoFallbacks.Load(),
		SourceFallbacks: b.srcFallbacks.Load(),
	}
}

// Offloads reports whether the open sockets use UDP_SEGMENT on send and
// UDP_GRO on receive (both false when closed).
func (b *LinuxBind) Offloads() (gso, gro bool) {
	s := b.socks.Load()
	if s == nil {
		return false, false
	}
	gso, gro = true, true
	for _, sock := range []*linuxSocket{s.v4, s.v6} {
		if sock != nil {
			gso = gso && sock.gso
			gro = gro && sock.gro
		}
	}
	return gso && !b.gsoBroken.Load(), gro
}

// BatchSize implements Bind.
func (b *LinuxBind) BatchSize() int { return b.cfg.BatchSize }

// Open implements Bind.
func (b *LinuxBind) Open(port uint16) ([]ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.socks.Load() != nil {
		return nil, 0, errors.New("transport: bind already open")
	}
	socks, fns, actual, err := b.openSockets(port)
	if err != nil {
		return nil, 0, err
	}
	b.gsoBroken.Store(false)
	b.socks.Store(socks)
	return fns, actual, nil
}

// openSockets binds and sets up a new pair of sockets on port without
// touching the open ones. b.mu must be held.
func (b *LinuxBind) openSockets(port uint16) (*linuxSockets, []ReceiveFunc, uint16, error) {
	v4, v6, actual, err := bindPair(b.listen, port)
	if err != nil {
		return nil, nil, 0, err
	}
	socks := &linuxSockets{}
	var fns []ReceiveFunc
	for _, c := range []*net.UDPConn{v4, v6} {
		if c == nil {
			continue
		}
		s, err := b.setupSocket(c, c == v6)
		if err != nil {
			if v4 != nil {
				v4.Close()
			}
			if v6 != nil {
				v6.Close()
			}
			return nil, nil, 0, err
		}
		if s.v6 {
			socks.v6 = s
		} else {
			socks.v4 = s
		}
		fns = append(fns, newLinuxReceiver(b, s).receive)
	}
	return socks, fns, actual, nil
}

func (b *LinuxBind) listen(network string, port uint16) (*net.UDPConn, error) {
	return net.ListenUDP(network, &net.UDPAddr{Port: int(port)})
}

// setupSocket sets buffer sizes, the firewall mark, packet info and the
// offloads on a freshly bound socket.
func (b *LinuxBind) setupSocket(c *net.UDPConn, v6 bool) (*linuxSocket, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("transport: raw socket: %w", err)
	}
	s := &linuxSocket{conn: c, rc: rc, v6: v6}
	var opErr error
	err = rc.Control(func(fd uintptr) {
		fdi := int(fd)
		setBufferSize(fdi, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF)
		setBufferSize(fdi, unix.SO_SNDBUFFORCE, unix.SO_SNDBUF)
		if b.mark != 0 {
			if err := unix.SetsockoptInt(fdi, unix.SOL_SOCKET, unix.SO_MARK, int(b.mark)); err != nil {
				opErr = fmt.Errorf("transport: set SO_MARK %#x: %w", b.mark, err)
				return
			}
		}
		if v6 {
			opErr = unix.SetsockoptInt(fdi, unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
		} else {
			opErr = unix.SetsockoptInt(fdi, unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		}
		if opErr != nil {
			opErr = fmt.Errorf("transport: enable packet info: %w", opErr)
			return
		}
		if !b.cfg.DisableGSO {
			_, err := unix.GetsockoptInt(fdi, unix.SOL_UDP, unix.UDP_SEGMENT)
			s.gso = err == nil
		}
		if !b.cfg.DisableGRO {
			s.gro = unix.SetsockoptInt(fdi, unix.SOL_UDP, unix.UDP_GRO, 1) == nil
		}
	})
	if err == nil {
		err = opErr
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// setBufferSize asks for socketBufferSize with the privileged option,
// which ignores the system maximum, and falls back to the ordinary one.
func setBufferSize(fd, force, normal int) {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, socketBufferSize) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, normal, socketBufferSize)
	}
}

// Close implements Bind.
func (b *LinuxBind) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.socks.Swap(nil)
	if s == nil {
		return nil
	}
	var errs []error
	if s.v4 != nil {
		errs = append(errs, s.v4.conn.Close())
	}
	if s.v6 != nil {
		errs = append(errs, s.v6.conn.Close())
	}
	return errors.Join(errs...)
}

// SetMark implements Bind. The mark is applied to the open sockets and to
// those opened later. Setting it needs CAP_NET_ADMIN.
func (b *LinuxBind) SetMark(mark uint32) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.socks.Load(); s != nil {
		for _, sock := range []*linuxSocket{s.v4, s.v6} {
			if sock == nil {
				continue
			}
			var opErr error
			err := sock.rc.Control(func(fd uintptr) {
				opErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
			})
			if err == nil {
				err = opErr
			}
			if err != nil {
				return fmt.Errorf("transport: set SO_MARK %#x: %w", mark, err)
			}
		}
	}
	b.mark = mark
	return nil
}

// Send implements Bind. Runs of equal-size datagrams (the last of a run
// may be shorter) go out as one UDP_SEGMENT message where the kernel
// supports it; a valid ep.Src becomes the source address.
func (b *LinuxBind) Send(bufs [][]byte, ep Endpoint) error {
	socks := b.socks.Load()
	if socks == nil {
		return ErrClosed
	}
	dst := netip.AddrPortFrom(ep.Dst.Addr().Unmap(), ep.Dst.Port())
	if !dst.IsValid() {
		return fmt.Errorf("transport: invalid destination %v", ep.Dst)
	}
	s := socks.v6
	if dst.Addr().Is4() {
		s = socks.v4
	}
	if s == nil {
		return fmt.Errorf("transport: no socket for the address family of %v", dst)
	}
	src := ep.Src.Unmap()
	if src.IsValid() && (src.Is4() != dst.Addr().Is4() || b.isStale(src)) {
		src = netip.Addr{}
	}
	var sb *sendBatch
	select {
	case sb = <-b.freeBatches:
	default:
		sb = newSendBatch(b.cfg.BatchSize)
	}
	err := sb.send(b, s, bufs, dst, src, ep.IfIndex)
	select {
	case b.freeBatches <- sb:
	default:
	}
	return err
}

// sendBatch is the scratch space of one Send call.
type sendBatch struct {
	msgs     []mmsghdr
	msgStart []int // index into bufs of each message's first datagram
	iovs     []unix.Iovec
	oob      []byte
	name     unix.RawSockaddrInet6 // also holds a RawSockaddrInet4
	nameLen  uint32

	// sendmmsg call state for writeFn.
	start, end int
	sent       int
	errno      error
	writeFn    func(fd uintptr) bool
}

func newSendBatch(n int) *sendBatch {
	sb := &sendBatch{
		msgs:     make([]mmsghdr, n),
		msgStart: make([]int, n),
		iovs:     make([]unix.Iovec, n),
		oob:      make([]byte, n*sendOOBSize),
	}
	sb.writeFn = sb.write
	return sb
}

// sendmmsg is the system call, a variable so tests can inject failures.
var sendmmsg = func(fd uintptr, msgs []mmsghdr) (int, unix.Errno) {
	// RawSyscall: the descriptor is non-blocking, so the call returns at once;
	// skipping the scheduler's syscall bookkeeping keeps sysmon from handing
	// this P to another thread during long kernel work (a 64 KiB GSO write).
	n, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), 0, 0, 0)
	return int(n), e
}

// write runs sendmmsg on the pending messages; it returns false when the
// socket is full and the poller should wait.
func (sb *sendBatch) write(fd uintptr) bool {
	n, done, err := writeMsgs(fd, sb.msgs[sb.start:sb.end])
	if done {
		sb.sent, sb.errno = n, err
	}
	return done
}

// writeMsgs runs sendmmsg on msgs, again after an interruption. It returns
// the number sent or the error of the first message not sent, and done
// false when the socket is full and the poller should wait.
func writeMsgs(fd uintptr, msgs []mmsghdr) (n int, done bool, err error) {
	for {
		n, e := sendmmsg(fd, msgs)
		switch e {
		case 0:
			return n, true, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, false, nil
		default:
			return 0, true, e
		}
	}
}

func (sb *sendBatch) setName(dst netip.AddrPort, ifIndex int32) {
	sb.nameLen = putSockaddr(&sb.name, dst, ifIndex)
}

// putSockaddr writes dst as a socket address into name (room for either
// family) and returns its length.
func putSockaddr(name *unix.RawSockaddrInet6, dst netip.AddrPort, ifIndex int32) uint32 {
	if dst.Addr().Is4() {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(name))
		*sa = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: dst.Addr().As4()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], dst.Port())
		return unix.SizeofSockaddrInet4
	}
	*name = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: dst.Addr().As16()}
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&name.Port))[:], dst.Port())
	if dst.Addr().IsLinkLocalUnicast() || dst.Addr().IsLinkLocalMulticast() {
		name.Scope_id = uint32(ifIndex)
	}
	return unix.SizeofSockaddrInet6
}

// build fills messages for bufs[pos:] until bufs or the message array run
// out and returns the number of messages and the index after the last
// datagram included.
func (sb *sendBatch) build(bufs [][]byte, pos int, gso bool, src netip.Addr, ifIndex int32) (nmsg, next int) {
	iov := 0
	for pos < len(bufs) && nmsg < len(sb.msgs) && iov < len(sb.iovs) {
		first := len(bufs[pos])
		count, total := 0, 0
		for pos+count < len(bufs) && iov+count < len(sb.iovs) {
			l := len(bufs[pos+count])
			if count > 0 && (!gso || first == 0 || l == 0 || l > first || count == maxGSOSegments || total+l > maxGSOBytes) {
				break
			}
			iovec := &sb.iovs[iov+count]
			if l > 0 {
				iovec.Base = &bufs[pos+count][0]
			} else {
				iovec.Base = nil
			}
			iovec.SetLen(l)
			count++
			total += l
			if l < first {
				break // a shorter datagram ends the run
			}
		}
		m := &sb.msgs[nmsg]
		m.hdr = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&sb.name)), Namelen: sb.nameLen, Iov: &sb.iovs[iov]}
		m.hdr.SetIovlen(count)
		m.n = 0
		oob := sb.oob[nmsg*sendOOBSize : (nmsg+1)*sendOOBSize]
		used := 0
		if src.IsValid() {
			used += putPktinfo(oob, src, ifIndex)
		}
		if count > 1 {
			data, space := putCmsg(oob[used:], unix.SOL_UDP, unix.UDP_SEGMENT, 2)
			binary.NativeEndian.PutUint16(data, uint16(first))
			used += space
		}
		if used > 0 {
			m.hdr.Control = &oob[0]
			m.hdr.SetControllen(used)
		}
		sb.msgStart[nmsg] = pos
		nmsg++
		pos += count
		iov += count
	}
	return nmsg, pos
}

// putPktinfo writes a packet info message choosing src as the source
// address and returns the space it takes.
func putPktinfo(oob []byte, src netip.Addr, ifIndex int32) int {
	if src.Is4() {
		data, space := putCmsg(oob, unix.IPPROTO_IP, unix.IP_PKTINFO, unix.SizeofInet4Pktinfo)
		clear(data)
		a := src.As4()
		copy(data[4:8], a[:]) // ipi_spec_dst; ipi_ifindex 0 lets routing pick
		return space
	}
	data, space := putCmsg(oob, unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, unix.SizeofInet6Pktinfo)
	a := src.As16()
	copy(data[:16], a[:])
	idx := uint32(0)
	if src.IsLinkLocalUnicast() {
		idx = uint32(ifIndex)
	}
	binary.NativeEndian.PutUint32(data[16:], idx)
	return space
}

// send transmits bufs to dst, falling back from GSO and from the sticky
// source address when the kernel refuses them.
func (sb *sendBatch) send(b *LinuxBind, s *linuxSocket, bufs [][]byte, dst netip.AddrPort, src netip.Addr, ifIndex int32) error {
	sb.setName(dst, ifIndex)
	gso := s.gso && !b.gsoBroken.Load()
	pos := 0
	for pos < len(bufs) {
		nmsg, next := sb.build(bufs, pos, gso, src, ifIndex)
		sent, err := sb.flush(s, nmsg)
		if err == nil {
			pos = next
			continue
		}
		if errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("%w: %w", ErrClosed, err)
		}
		// Message sent failed; resend from its first datagram.
		pos = sb.msgStart[sent]
		failedGSO := sb.msgs[sent].hdr.Iovlen > 1
		switch {
		case failedGSO && (errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EMSGSIZE)):
			// EIO: the route cannot offload checksums, so GSO will keep
			// failing. EINVAL, or EMSGSIZE from newer kernels: the segment
			// size exceeds the path MTU (a GSO send is never fragmented,
			// a plain one is), or the kernel lacks UDP_SEGMENT; resend this
			// call without it.
			if errors.Is(err, unix.EIO) {
				b.gsoBroken.Store(true)
			}
			b.gsoFallbacks.Add(1)
			gso = false
		case src.IsValid() && (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENETUNREACH)):
			// The source address is gone or not ours: let routing choose,
			// for this send and the next ones for a while.
			b.srcFallbacks.Add(1)
			b.markStale(src)
			src = netip.Addr{}
		default:
			return fmt.Errorf("transport: send to %v: %w", dst, err)
		}
	}
	return nil
}

// flush sends msgs[:nmsg]. On error it returns the index of the message
// that failed.
func (sb *sendBatch) flush(s *linuxSocket, nmsg int) (int, error) {
	sb.start, sb.end = 0, nmsg
	for sb.start < sb.end {
		if err := s.rc.Write(sb.writeFn); err != nil {
			return sb.start, err
		}
		if sb.errno != nil {
			return sb.start, sb.errno
		}
		sb.start += sb.sent
	}
	return nmsg, nil
}

// linuxReceiver is the state of one socket's ReceiveFunc. Without UDP_GRO
// it reads straight into the caller's buffers; with it, it reads coalesced
// datagrams into its own 64 KiB buffers and hands the segments out, keeping
// those that do not fit for the next call.
type linuxReceiver struct {
	mu    sync.Mutex // the ReceiveFunc may be called from one goroutine at a time
	b     *LinuxBind
	s     *linuxSocket
	msgs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6
	oob   []byte
	arena []byte // UDP_GRO only

	// recvmmsg call state for readFn.
	vlen    int
	got     int
	errno   error
	readFn  func(fd uintptr) bool
	pending pendingGRO
	// tooLarge: a datagram was dropped for not fitting the caller's
	// buffer during this call
	tooLarge bool
}

// pendingGRO tracks coalesced datagrams read but not yet handed out.
type pendingGRO struct {
	next, count int      // next message to hand out, messages read
	off         int      // offset of the next segment in message next
	ep          Endpoint // endpoint of message next, valid when off > 0
	seg         int      // segment size of message next, valid when off > 0
	// retried: the next segment did not fit the last call's buffer and
	// was kept for one more try, in case the caller grows its buffers
	retried bool
}

func newLinuxReceiver(b *LinuxBind, s *linuxSocket) *linuxReceiver {
	n := b.cfg.BatchSize
	if s.gro {
		n = b.cfg.GROBuffers
	}
	r := &linuxReceiver{
		b:     b,
		s:     s,
		msgs:  make([]mmsghdr, n),
		iovs:  make([]unix.Iovec, n),
		names: make([]unix.RawSockaddrInet6, n),
		oob:   make([]byte, n*recvOOBSize),
	}
	if s.gro {
		r.arena = make([]byte, n*groBufSize)
		for i := range r.iovs {
			r.iovs[i].Base = &r.arena[i*groBufSize]
			r.iovs[i].SetLen(groBufSize)
		}
	}
	r.readFn = r.read
	return r
}

// read runs recvmmsg; it returns false when nothing is queued and the
// poller should wait.
func (r *linuxReceiver) read(fd uintptr) bool {
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.msgs[0])), uintptr(r.vlen), 0, 0, 0)
		switch e {
		case 0:
			r.got, r.errno = int(n), nil
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			r.got, r.errno = 0, e
			return true
		}
	}
}

// recv reads up to vlen datagrams into the buffers the iovecs point at.
func (r *linuxReceiver) recv(vlen int) error {
	for {
		for i := range vlen {
			m := &r.msgs[i]
			m.hdr = unix.Msghdr{
				Name:    (*byte)(unsafe.Pointer(&r.names[i])),
				Namelen: unix.SizeofSockaddrInet6,
				Iov:     &r.iovs[i],
				Control: &r.oob[i*recvOOBSize],
			}
			m.hdr.SetIovlen(1)
			m.hdr.SetControllen(recvOOBSize)
			m.n = 0
		}
		r.vlen = vlen
		if err := r.s.rc.Read(r.readFn); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("%w: %w", ErrClosed, err)
			}
			return fmt.Errorf("transport: receive: %w", err)
		}
		if r.errno == nil {
			return nil
		}
		if isTransientRecvErr(r.errno) || errors.Is(r.errno, unix.ENOMEM) || errors.Is(r.errno, unix.ENOBUFS) ||
			errors.Is(r.errno, unix.EHOSTUNREACH) || errors.Is(r.errno, unix.ENETUNREACH) {
			r.b.recvErrors.Add(1)
			continue
		}
		return fmt.Errorf("transport: receive: %w", r.errno)
	}
}

// endpoint decodes message i's source address and control messages.
func (r *linuxReceiver) endpoint(i int) (Endpoint, int, error) {
	m := &r.msgs[i]
	if m.hdr.Flags&unix.MSG_CTRUNC != 0 {
		return Endpoint{}, 0, fmt.Errorf("%w: control data truncated", errBadControl)
	}
	cl := int(m.hdr.Controllen)
	if cl > recvOOBSize {
		return Endpoint{}, 0, fmt.Errorf("%w: control length %d", errBadControl, cl)
	}
	ctl, err := parseRecvControl(r.oob[i*recvOOBSize : i*recvOOBSize+cl])
	if err != nil {
		return Endpoint{}, 0, err
	}
	var dst netip.AddrPort
	sa := &r.names[i]
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:])
		dst = netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	case unix.AF_INET6:
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		dst = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port)
	default:
		return Endpoint{}, 0, fmt.Errorf("%w: address family %d", errBadControl, sa.Family)
	}
	return Endpoint{Dst: dst, Src: ctl.src, IfIndex: ctl.ifIndex}, ctl.segSize, nil
}

// receive is the ReceiveFunc.
func (r *linuxReceiver) receive(bufs [][]byte, sizes []int, eps []Endpoint) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	limit := min(len(bufs), len(sizes), len(eps))
	if limit == 0 {
		return 0, nil
	}
	for {
		var n int
		if r.arena != nil {
			if r.pending.next >= r.pending.count {
				if err := r.recv(len(r.msgs)); err != nil {
					return 0, err
				}
				r.pending = pendingGRO{count: r.got}
			}
			n = r.drain(bufs[:limit], sizes, eps)
		} else {
			vlen := min(limit, len(r.msgs))
			for i := range vlen {
				if len(bufs[i]) > 0 {
					r.iovs[i].Base = &bufs[i][0]
				} else {
					r.iovs[i].Base = nil
				}
				r.iovs[i].SetLen(len(bufs[i]))
			}
			if err := r.recv(vlen); err != nil {
				return 0, err
			}
			n = r.compact(bufs, sizes, eps)
		}
		if n > 0 || r.tooLarge {
			r.tooLarge = false
			return n, nil
		}
	}
}

// compact turns the messages just read into the caller's buffers into
// results, dropping truncated and malformed ones.
func (r *linuxReceiver) compact(bufs [][]byte, sizes []int, eps []Endpoint) int {
	out := 0
	for i := range r.got {
		m := &r.msgs[i]
		if m.hdr.Flags&unix.MSG_TRUNC != 0 {
			r.b.truncated.Add(1)
			r.tooLarge = true
			continue
		}
		ep, seg, err := r.endpoint(i)
		if err != nil || (seg > 0 && seg < int(m.n)) {
			// A coalesced datagram cannot arrive with UDP_GRO off.
			r.b.badControl.Add(1)
			continue
		}
		if out != i {
			copy(bufs[out], bufs[i][:m.n])
		}
		sizes[out] = int(m.n)
		eps[out] = ep
		out++
	}
	return out
}

// drain hands out pending coalesced segments into bufs.
func (r *linuxReceiver) drain(bufs [][]byte, sizes []int, eps []Endpoint) int {
	p := &r.pending
	out := 0
	for out < len(bufs) && p.next < p.count {
		i := p.next
		m := &r.msgs[i]
		total := int(m.n)
		if p.off == 0 {
			if m.hdr.Flags&unix.MSG_TRUNC != 0 {
				r.b.truncated.Add(1)
				p.next++
				continue
			}
			ep, seg, err := r.endpoint(i)
			if err != nil {
				r.b.badControl.Add(1)
				p.next++
				continue
			}
			if seg == 0 || seg > total {
				seg = total
			}
			p.ep, p.seg = ep, seg
		}
		data := r.arena[i*groBufSize : i*groBufSize+total]
		chunk := min(p.seg, total-p.off)
		if chunk <= len(bufs[out]) {
			// Lent, not copied: the arena is only read into again by a
			// later call.
			bufs[out] = data[p.off : p.off+chunk : p.off+chunk]
			sizes[out] = chunk
			eps[out] = p.ep
			out++
			p.retried = false
		} else {
			// Kept for the next call, which may bring larger buffers;
			// dropped if it does not.
			r.tooLarge = true
			if out > 0 {
				break
			}
			if !p.retried {
				p.retried = true
				break
			}
			p.retried = false
			r.b.segTooLarge.Add(1)
		}
		p.off += chunk
		if p.off >= total {
			p.next++
			p.off = 0
		}
	}
	return out
}
