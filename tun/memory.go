package tun

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// Memory is an in-memory Device. Packets the owner injects with Inject appear
// on Read; packets the user Writes are delivered to Outbound. It needs no
// privileges and is safe for concurrent use.
type Memory struct {
	name      string
	mtu       atomic.Int32
	batchSize int
	in        chan *[]byte // packets waiting to be Read
	out       chan []byte  // packets Written, for the owner
	events    chan Event
	closed    chan struct{}
	closeOnce sync.Once
	evMu      sync.Mutex // guards sending on events against Close
	pool      sync.Pool  // *[]byte packet buffers
	headers   sync.Pool  // empty *[]byte, so Recycle needs no new one

	readMu  sync.Mutex // serialises Read, for kept
	kept    *[]byte    // a packet too large for the last Read's buffer
	retried bool       // kept was too large for the last Read already

}

// NewMemory returns an in-memory device with the given name and MTU whose
// queues hold up to queueLen packets in each direction.
func NewMemory(name string, mtu, queueLen int) *Memory {
	if queueLen <= 0 {
		queueLen = 1024
	}
	m := &Memory{
		name:      name,
		batchSize: 128,
		in:        make(chan *[]byte, queueLen),
		out:       make(chan []byte, queueLen),
		events:    make(chan Event, 4),
		closed:    make(chan struct{}),
	}
	m.mtu.Store(int32(mtu))
	m.pool.New = func() any { b := make([]byte, 0, int(m.mtu.Load())+64); return &b }
	m.events <- EventUp
	return m
}

// Inject queues a packet to be returned by Read. The packet is copied. It
// blocks while the queue is full and fails after Close.
func (m *Memory) Inject(pkt []byte) error {
	bp := m.pool.Get().(*[]byte)
	*bp = append((*bp)[:0], pkt...)
	select {
	case m.in <- bp:
		return nil
	case <-m.closed:
		return ErrClosed
	}
}

// Outbound returns the channel of packets the user wrote. Each slice is the
// receiver's to keep; pass it to Recycle when done to reuse its memory.
func (m *Memory) Outbound() <-chan []byte { return m.out }

// Recycle returns a packet obtained from Outbound to the buffer pool.
func (m *Memory) Recycle(b []byte) {
	// Taking &b would allocate a header on every call; reuse the one
	// Write left behind instead.
	bp, _ := m.headers.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	*bp = b[:0]
	m.pool.Put(bp)
}

// Read implements Device.
func (m *Memory) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	m.readMu.Lock()
	defer m.readMu.Unlock()
	n := 0
	for n == 0 {
		// Block for the first packet, then take what is already queued.
		var bp *[]byte
		if m.kept != nil {
			bp, m.kept = m.kept, nil
		} else {
			select {
			case bp = <-m.in:
			case <-m.closed:
				return 0, ErrClosed
			}
		}
		for {
			if pkt := *bp; len(pkt) <= len(bufs[n])-offset {
				sizes[n] = copy(bufs[n][offset:], pkt)
				n++
				m.retried = false
			} else if n > 0 || !m.retried {
				// Kept for the next call, which may bring larger
				// buffers (the MTU grew); dropped if it does not.
				m.kept, m.retried = bp, n == 0
				return n, nil
			} else {
				m.retried = false
			}
			m.pool.Put(bp)
			if n == len(bufs) {
				return n, nil
			}
			select {
			case bp = <-m.in:
				continue
			default:
			}
			break
		}
	}
	return n, nil
}

// Write implements Device. It blocks while the outbound queue is full.
func (m *Memory) Write(bufs [][]byte, offset int) (int, error) {
	for i, b := range bufs {
		if len(b) < offset {
			return i, fmt.Errorf("tun: buffer %d shorter than offset %d", i, offset)
		}
		bp := m.pool.Get().(*[]byte)
		c := append((*bp)[:0], b[offset:]...)
		*bp = nil
		m.headers.Put(bp)
		select {
		case m.out <- c:
		case <-m.closed:
			return i, ErrClosed
		}
	}
	return len(bufs), nil
}

// MTU implements Device.
func (m *Memory) MTU() (int, error) { return int(m.mtu.Load()), nil }

// SetMTU changes the MTU and reports EventMTUUpdate, as the kernel does
// for `ip link set IFACE mtu N`.
func (m *Memory) SetMTU(mtu int) error {
	if mtu <= 0 || mtu > 65535 {
		return fmt.Errorf("tun: MTU %d out of range", mtu)
	}
	m.evMu.Lock()
	defer m.evMu.Unlock()
	select {
	case <-m.closed:
		return ErrClosed
	default:
	}
	m.mtu.Store(int32(mtu))
	select {
	case m.events <- EventMTUUpdate:
	default: // one pending update is enough: MTU reads the latest
	}
	return nil
}

// Name implements Device.
func (m *Memory) Name() (string, error) { return m.name, nil }

// Events implements Device.
func (m *Memory) Events() <-chan Event { return m.events }

// BatchSize implements Device.
func (m *Memory) BatchSize() int { return m.batchSize }

// Close implements Device.
func (m *Memory) Close() error {
	m.closeOnce.Do(func() {
		m.evMu.Lock()
		defer m.evMu.Unlock()
		close(m.closed)
		close(m.events)
	})
	return nil
}
