// Package netstack is a tun.Device backed by gVisor's userspace TCP/IP
// stack instead of a kernel interface. The packets a WireGuard device
// writes to it are delivered to the stack, and what the stack sends is
// what the device reads, so a Go program can Dial, Listen and resolve
// names through the tunnel with no root and no TUN device.
//
// Goroutines: none of its own. gVisor runs its TCP processors; the device
// reading and writing this TUN drives the rest.
package netstack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/stack/gro"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"github.com/gotatun/gotatun/tun"
)

// Config describes the stack's side of the tunnel.
type Config struct {
	// Addresses are the tunnel's own addresses (wg-quick's Address);
	// at least one. The prefix length is ignored: everything not local
	// is sent into the tunnel.
	Addresses []netip.Prefix
	// DNS are the name servers the resolver asks, through the tunnel.
	DNS []netip.Addr
	// MTU is the tunnel MTU; 0 means 1420.
	MTU int
	// QueueLen bounds the packets the stack has sent that the device
	// has not read yet; 0 means 1024. More are dropped (TCP resends).
	QueueLen int
	// BatchSize is the most packets one Read returns; 0 means 128.
	BatchSize int
}

const nicID tcpip.NICID = 1

// Stack is a tun.Device whose other side is a userspace TCP/IP stack.
// Its Dial, Listen and Lookup methods work through the tunnel.
type Stack struct {
	stack     *stack.Stack
	link      *link
	events    chan tun.Event
	mtu       int
	batchSize int
	dns       []netip.Addr
	hasV4     bool
	hasV6     bool
	closeOnce sync.Once

	// Counters, for tests and logs.
	dropsOversize atomic.Uint64 // read: packet larger than the buffer
	dropsQueue    atomic.Uint64 // stack sent more than QueueLen unread
	dropsBad      atomic.Uint64 // written: not an IP packet
}

var _ tun.Device = (*Stack)(nil)

// New builds the stack.
func New(cfg Config) (*Stack, error) {
	if len(cfg.Addresses) == 0 {
		return nil, errors.New("netstack: no address")
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1420
	}
	if cfg.MTU < 576 || cfg.MTU > 65535 {
		return nil, fmt.Errorf("netstack: MTU %d out of range", cfg.MTU)
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = 1024
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 128
	}
	s := &Stack{
		stack: stack.New(stack.Options{
			NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
			TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
			HandleLocal:        true,
		}),
		events:    make(chan tun.Event, 4),
		mtu:       cfg.MTU,
		batchSize: cfg.BatchSize,
		dns:       append([]netip.Addr(nil), cfg.DNS...),
	}
	s.link = newLink(s, uint32(cfg.MTU), cfg.QueueLen)
	if err := s.setup(cfg); err != nil {
		s.stack.Close()
		return nil, err
	}
	s.events <- tun.EventUp
	return s, nil
}

func (s *Stack) setup(cfg Config) error {
	// Throughput through a userspace stack is bounded by its windows:
	// SACK, receive-buffer auto-tuning and buffers of a few MiB let one
	// connection fill a tunnel with tens of milliseconds of delay.
	opts := []tcpip.SettableTransportProtocolOption{
		ptr(tcpip.TCPSACKEnabled(true)),
		ptr(tcpip.TCPModerateReceiveBufferOption(true)),
		&tcpip.TCPReceiveBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 8 << 20},
		&tcpip.TCPSendBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 8 << 20},
		ptr(tcpip.CongestionControlOption("cubic")),
	}
	for _, o := range opts {
		if err := s.stack.SetTransportProtocolOption(tcp.ProtocolNumber, o); err != nil {
			return fmt.Errorf("netstack: TCP option %T: %v", o, err)
		}
	}
	// The link is also the NIC's queueing discipline, so each packet the
	// stack sends goes straight into the ring; gVisor's default wraps
	// every packet in a list of its own, an allocation per packet.
	if err := s.stack.CreateNICWithOptions(nicID, s.link, stack.NICOptions{QDisc: qdisc{s.link}}); err != nil {
		return fmt.Errorf("netstack: creating NIC: %v", err)
	}
	for _, p := range cfg.Addresses {
		a := p.Addr().Unmap()
		proto := ipv4.ProtocolNumber
		if a.Is6() {
			proto = ipv6.ProtocolNumber
			s.hasV6 = true
		} else {
			s.hasV4 = true
		}
		pa := tcpip.ProtocolAddress{
			Protocol:          proto,
			AddressWithPrefix: tcpip.AddrFromSlice(a.AsSlice()).WithPrefix(),
		}
		if err := s.stack.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); err != nil {
			return fmt.Errorf("netstack: adding address %v: %v", a, err)
		}
	}
	if s.hasV4 {
		s.stack.AddRoute(tcpip.Route{Destination: header.IPv4EmptySubnet, NIC: nicID})
	}
	if s.hasV6 {
		s.stack.AddRoute(tcpip.Route{Destination: header.IPv6EmptySubnet, NIC: nicID})
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// Read implements tun.Device: it returns what the stack sent, up to
// len(bufs) packets, blocking until there is at least one.
func (s *Stack) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	return s.link.read(bufs, sizes, offset)
}

// Write implements tun.Device: it hands the packets to the stack. A
// buffer that holds no IPv4 or IPv6 packet is dropped and counted.
func (s *Stack) Write(bufs [][]byte, offset int) (int, error) {
	return s.link.write(bufs, offset)
}

// MTU implements tun.Device.
func (s *Stack) MTU() (int, error) { return s.mtu, nil }

// Name implements tun.Device.
func (s *Stack) Name() (string, error) { return "netstack", nil }

// Events implements tun.Device.
func (s *Stack) Events() <-chan tun.Event { return s.events }

// BatchSize implements tun.Device.
func (s *Stack) BatchSize() int { return s.batchSize }

// Close implements tun.Device. It closes every connection and listener
// of the stack and unblocks Read.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() {
		s.link.close()
		s.stack.RemoveNIC(nicID)
		s.stack.Close()
		s.stack.Wait()
		close(s.events)
	})
	return nil
}

// Stats are the stack's drop counters.
type Stats struct {
	// DropsOversize counts packets the stack sent that did not fit the
	// device's buffer.
	DropsOversize uint64
	// DropsQueue counts packets the stack sent while QueueLen packets
	// were waiting to be read.
	DropsQueue uint64
	// DropsBad counts buffers written that held no IP packet.
	DropsBad uint64
}

// Stats returns the drop counters.
func (s *Stack) Stats() Stats {
	return Stats{
		DropsOversize: s.dropsOversize.Load(),
		DropsQueue:    s.dropsQueue.Load(),
		DropsBad:      s.dropsBad.Load(),
	}
}

// link is the stack's link endpoint. What the stack sends waits in a
// ring for Read; what Write gets goes through GRO into the stack.
type link struct {
	s   *Stack
	mtu atomic.Uint32

	dmu        sync.RWMutex
	dispatcher stack.NetworkDispatcher

	qmu    sync.Mutex
	ring   []*stack.PacketBuffer
	head   int // index of the oldest packet
	n      int // packets queued
	closed bool
	notify chan struct{} // one token: the ring may have become non-empty
	done   chan struct{}

	rmu   sync.Mutex // one Read at a time; guards taken
	taken []*stack.PacketBuffer
	wmu   sync.Mutex // one Write at a time; guards gro
	gro   gro.GRO

	// cmu guards onClose. It is not wmu: the stack calls
	// SetOnCloseAction holding its own lock, which a Write in progress
	// waits for while holding wmu.
	cmu     sync.Mutex
	onClose func()
}

var _ stack.LinkEndpoint = (*link)(nil)

func newLink(s *Stack, mtu uint32, queueLen int) *link {
	l := &link{
		s:      s,
		ring:   make([]*stack.PacketBuffer, queueLen),
		notify: make(chan struct{}, 1),
		done:   make(chan struct{}),
		taken:  make([]*stack.PacketBuffer, 0, 128),
	}
	l.mtu.Store(mtu)
	l.gro.Init(true)
	return l
}

func (l *link) read(bufs [][]byte, sizes []int, offset int) (int, error) {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	for {
		l.qmu.Lock()
		k := min(l.n, len(bufs))
		for i := 0; i < k; i++ {
			l.taken = append(l.taken, l.ring[l.head])
			l.ring[l.head] = nil
			l.head++
			if l.head == len(l.ring) {
				l.head = 0
			}
		}
		l.n -= k
		closed := l.closed
		l.qmu.Unlock()
		if k > 0 {
			n := 0
			for _, pkt := range l.taken {
				if size, ok := copyPacket(bufs[n], offset, pkt); ok {
					sizes[n] = size
					n++
				} else {
					l.s.dropsOversize.Add(1)
				}
				pkt.DecRef()
			}
			clear(l.taken)
			l.taken = l.taken[:0]
			if n > 0 {
				return n, nil
			}
			continue
		}
		if closed {
			return 0, tun.ErrClosed
		}
		select {
		case <-l.notify:
		case <-l.done:
		}
	}
}

// copyPacket copies the whole packet into buf[offset:] without
// allocating; it fails if the packet does not fit.
func copyPacket(buf []byte, offset int, pkt *stack.PacketBuffer) (int, bool) {
	size := pkt.Size()
	if offset > len(buf) || size > len(buf)-offset {
		return 0, false
	}
	dst := buf[offset:]
	views, off := pkt.AsViewList()
	n := 0
	for v := views.Front(); v != nil && n < size; v = v.Next() {
		b := v.AsSlice()
		if off >= len(b) {
			off -= len(b)
			continue
		}
		n += copy(dst[n:size], b[off:])
		off = 0
	}
	return n, n == size
}

func (l *link) write(bufs [][]byte, offset int) (int, error) {
	l.dmu.RLock()
	d := l.dispatcher
	l.dmu.RUnlock()
	if d == nil {
		return 0, tun.ErrClosed
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.gro.Dispatcher = d
	for _, b := range bufs {
		if len(b) < offset {
			return 0, fmt.Errorf("netstack: buffer shorter than offset %d", offset)
		}
		p, proto := ipPacket(b[offset:])
		if proto == 0 {
			l.s.dropsBad.Add(1)
			continue
		}
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(p)})
		pkt.NetworkProtocolNumber = proto
		// The packet was authenticated by the tunnel's AEAD, as the
		// kernel's WireGuard reasons when it marks decrypted packets
		// CHECKSUM_UNNECESSARY; the stack skips verifying it again.
		pkt.RXChecksumValidated = true
		l.gro.Enqueue(pkt)
		pkt.DecRef()
	}
	l.gro.Flush()
	return len(bufs), nil
}

// ipPacket returns the IP packet at the start of b, without what follows
// its length (padding), and its protocol; 0 if b holds no whole IPv4 or
// IPv6 packet. The stack trusts the lengths of packets it is given once
// their checksums count as verified, so they are checked here.
func ipPacket(b []byte) ([]byte, tcpip.NetworkProtocolNumber) {
	if len(b) == 0 {
		return nil, 0
	}
	switch b[0] >> 4 {
	case 4:
		if len(b) < header.IPv4MinimumSize {
			return nil, 0
		}
		n := int(binary.BigEndian.Uint16(b[2:4]))
		if n < int(b[0]&0xf)*4 || n < header.IPv4MinimumSize || n > len(b) {
			return nil, 0
		}
		return b[:n], header.IPv4ProtocolNumber
	case 6:
		if len(b) < header.IPv6MinimumSize {
			return nil, 0
		}
		n := header.IPv6MinimumSize + int(binary.BigEndian.Uint16(b[4:6]))
		if n > len(b) {
			return nil, 0
		}
		return b[:n], header.IPv6ProtocolNumber
	}
	return nil, 0
}

func (l *link) close() {
	l.qmu.Lock()
	if !l.closed {
		l.closed = true
		close(l.done)
	}
	for l.n > 0 {
		l.ring[l.head].DecRef()
		l.ring[l.head] = nil
		l.head = (l.head + 1) % len(l.ring)
		l.n--
	}
	l.qmu.Unlock()
}

// WritePackets queues what the stack sends for Read.
func (l *link) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	all := pkts.AsSlice()
	l.qmu.Lock()
	if l.closed {
		l.qmu.Unlock()
		return 0, &tcpip.ErrClosedForSend{}
	}
	n := 0
	for _, pkt := range all {
		if !l.pushLocked(pkt) {
			break
		}
		n++
	}
	l.qmu.Unlock()
	if dropped := len(all) - n; dropped > 0 {
		l.s.dropsQueue.Add(uint64(dropped))
	}
	if n == 0 && len(all) > 0 {
		return 0, &tcpip.ErrNoBufferSpace{}
	}
	l.wake()
	return n, nil
}

// pushLocked queues a reference to pkt if the ring has room.
func (l *link) pushLocked(pkt *stack.PacketBuffer) bool {
	if l.n == len(l.ring) {
		return false
	}
	i := l.head + l.n
	if i >= len(l.ring) {
		i -= len(l.ring)
	}
	l.ring[i] = pkt.IncRef()
	l.n++
	return true
}

// wake tells a waiting Read that the ring may be non-empty.
func (l *link) wake() {
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

// qdisc is the NIC's queueing discipline: the link's ring.
type qdisc struct{ l *link }

var _ stack.QueueingDiscipline = qdisc{}

// WritePacket queues one packet the stack sends.
func (q qdisc) WritePacket(pkt *stack.PacketBuffer) tcpip.Error {
	l := q.l
	l.qmu.Lock()
	if l.closed {
		l.qmu.Unlock()
		return &tcpip.ErrClosedForSend{}
	}
	ok := l.pushLocked(pkt)
	l.qmu.Unlock()
	if !ok {
		l.s.dropsQueue.Add(1)
		return &tcpip.ErrNoBufferSpace{}
	}
	l.wake()
	return nil
}

// Close implements stack.QueueingDiscipline; the link's close empties
// the ring.
func (q qdisc) Close() {}

func (l *link) MTU() uint32                      { return l.mtu.Load() }
func (l *link) SetMTU(mtu uint32)                { l.mtu.Store(mtu) }
func (l *link) MaxHeaderLength() uint16          { return 0 }
func (l *link) LinkAddress() tcpip.LinkAddress   { return "" }
func (l *link) SetLinkAddress(tcpip.LinkAddress) {}

// Capabilities: received packets need no checksum check (see write).
func (l *link) Capabilities() stack.LinkEndpointCapabilities {
	return stack.CapabilityRXChecksumOffload
}

func (l *link) Attach(d stack.NetworkDispatcher) {
	l.dmu.Lock()
	l.dispatcher = d
	l.dmu.Unlock()
}

func (l *link) IsAttached() bool {
	l.dmu.RLock()
	defer l.dmu.RUnlock()
	return l.dispatcher != nil
}

func (l *link) Wait()                                   {}
func (l *link) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareNone }
func (l *link) AddHeader(*stack.PacketBuffer)           {}
func (l *link) ParseHeader(*stack.PacketBuffer) bool    { return true }

func (l *link) Close() {
	l.cmu.Lock()
	onClose := l.onClose
	l.onClose = nil
	l.cmu.Unlock()
	if onClose != nil {
		onClose()
	}
}

func (l *link) SetOnCloseAction(f func()) {
	l.cmu.Lock()
	l.onClose = f
	l.cmu.Unlock()
}
