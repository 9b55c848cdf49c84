// Package device is the WireGuard engine: it owns the peers and their
// sessions, routes packets by their allowed IPs (cryptokey routing), runs
// the protocol's timers and moves packets between a tun.Device and a
// transport.Bind through batched, parallel pipelines.
//
// Goroutines: one TUN reader, one per receive function of the Bind, one
// handshake worker, one TUN event watcher and, on more than two cores,
// GOMAXPROCS crypto workers (see Options.Workers), whatever the number of
// peers. Per-peer ordered work is done by whichever goroutine finds it
// ready; per-peer timers are Clock timers, which run no goroutine while
// waiting.
//
// Lock order: Device.cfgMu, then Device.peersMu, then the peer's locks
// (see Peer).
package device

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gotatun/gotatun/daita"
	"github.com/gotatun/gotatun/device/allowedips"
	"github.com/gotatun/gotatun/device/ratelimit"
	"github.com/gotatun/gotatun/internal/cryptoimpl"
	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/transport"
	"github.com/gotatun/gotatun/tun"
)

// ErrClosed is returned by methods of a closed Device.
var ErrClosed = errors.New("device: closed")

// Options are the parts a Device is built from.
type Options struct {
	// TUN is the packet side; the Device closes it on Close.
	TUN tun.Device
	// Bind is the UDP side; the Device opens it in New and closes it on
	// Close.
	Bind transport.Bind
	// Logger receives the device's logs; nil discards them.
	Logger *slog.Logger
	// Clock drives every timer; nil is the real clock.
	Clock Clock
	// Rand supplies sender indices, ephemeral keys and timer jitter; nil
	// is crypto/rand.
	Rand io.Reader
	// Workers is the number of crypto worker goroutines; negative means
	// none, and zero picks: none when GOMAXPROCS is 2 or less, where the
	// goroutines that read the TUN and the UDP sockets (one per direction)
	// already keep both cores busy and a hand-off to a worker only adds a
	// wake-up per batch; GOMAXPROCS workers otherwise. With no workers each
	// batch is encrypted or decrypted by the goroutine that read it.
	Workers int
	// Capture, if set, receives every plaintext packet that goes into the
	// tunnel (after routing) or comes out of it (after the allowed-IPs
	// check). Nil, the default, costs nothing.
	Capture Capture
	// XCrypto forces golang.org/x/crypto for ChaCha20-Poly1305, X25519 and
	// the BLAKE2s MACs instead of our AVX-512 AEAD, X25519 ladder and
	// stack-only BLAKE2s, as GOTATUN_CRYPTO=xcrypto
	// or -tags purego do. It is process-wide and stays on once set.
	XCrypto bool
}

const (
	// handshakeQueueLen bounds the handshake messages waiting to be
	// processed; more than an eighth of it waiting means "under load".
	handshakeQueueLen = 1024
	// workQueueLen bounds the batches waiting for a crypto worker.
	workQueueLen = 1024
	// batchCap is the most packets one batch carries.
	batchCap = 128
	// defaultMTU is used when the TUN device cannot tell its MTU.
	defaultMTU = 1420
	// minBufMTU is the smallest MTU buffers are sized for, so that peers
	// with the common 1500 (or smaller) MTU always fit.
	minBufMTU = 1500
)

// Device is a WireGuard interface.
type Device struct {
	log   *slog.Logger
	clock Clock
	rand  io.Reader // safe for concurrent use
	tun   tun.Device
	bind  transport.Bind

	mtu       atomic.Int32
	bufSize   atomic.Int32 // of buffers taken from now on (bufsize.go)
	bindBatch int
	bufPool   sync.Pool
	batchPool sync.Pool

	cfgMu      sync.Mutex // serialises Apply, State and Close
	listenPort uint16
	fwmark     uint32

	peersMu sync.RWMutex
	peers   map[noise.PublicKey]*Peer

	ident   atomic.Pointer[identity]
	allowed *allowedips.Table[*Peer]
	indices *indexTable
	limiter *ratelimit.Limiter
	// replyLimiter and replies bound the cookie replies: per source, then
	// device-wide (cookiepath.go).
	replyLimiter *ratelimit.Limiter
	replies      replyBudget

	workQ  chan *batch
	inline bool // no workers: whoever builds a batch does its crypto
	hsQ    chan hsMsg

	tr        *tunReader
	tunBatch  tun.BatchReader // the TUN, if it is one
	handleTUN func(n int)     // handleTUNBatch, bound once

	// pending counts handshake messages and batches accepted but not
	// yet finished.
	pending        atomic.Int64
	underLoadUntil atomic.Int64 // unix nanoseconds
	// underLoadLogged is when going under load was last logged (unix
	// nanoseconds, 0 for never).
	underLoadLogged atomic.Int64
	forceUnderLoad  atomic.Bool // tests: demand cookies regardless of load
	lastSweep       time.Time   // handshake worker only

	done      chan struct{}
	closing   atomic.Bool
	suspended atomic.Bool // see Suspend; changed under cfgMu
	closeOnce sync.Once
	wg        sync.WaitGroup // long-lived goroutines
	recvWG    sync.WaitGroup // receive goroutines of the open Bind

	cbMu     sync.Mutex // guards cbClosed and cbWG.Add
	cbClosed bool
	cbWG     sync.WaitGroup // timer callbacks running

	dsched *daita.Scheduler // every DAITA peer's timers

	jitterMu   sync.Mutex
	jitterRand *mrand.Rand

	stats deviceStats

	capture       Capture // nil when off
	captureFailed atomic.Bool
}

// deviceStats counts dropped and notable packets.
type deviceStats struct {
	badOutbound      atomic.Uint64
	noRoute          atomic.Uint64
	noEndpoint       atomic.Uint64
	stagedDropped    atomic.Uint64
	badInbound       atomic.Uint64
	unknownIndex     atomic.Uint64
	handshakeDropped atomic.Uint64
	handshakesQueued atomic.Uint64
	decryptFailed    atomic.Uint64
	replayed         atomic.Uint64
	badInner         atomic.Uint64
	disallowedSrc    atomic.Uint64
	badMAC           atomic.Uint64
	badHandshake     atomic.Uint64
	rateLimited      atomic.Uint64
	cookiesSent      atomic.Uint64
	cookiesDropped   atomic.Uint64 // over the reply budget
	cookiesReceived  atomic.Uint64
	initiationsSent  atomic.Uint64
	rxDatagrams      atomic.Uint64
	tunPackets       atomic.Uint64 // read from the TUN device and handled
	daitaOversized   atomic.Uint64 // larger than the MTU, sent unpadded
}

// lockedReader makes a reader safe for concurrent use.
type lockedReader struct {
	mu sync.Mutex
	r  io.Reader
}

func (l *lockedReader) Read(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(b)
}

// New builds a Device, opens its Bind on a free port and starts its
// goroutines. It has no private key and no peers until Apply gives them.
func New(opts Options) (*Device, error) {
	if opts.TUN == nil {
		return nil, errors.New("device: Options.TUN is nil")
	}
	if opts.Bind == nil {
		return nil, errors.New("device: Options.Bind is nil")
	}
	if err := cryptoimpl.EnvError(); err != nil {
		return nil, fmt.Errorf("device: %w", err)
	}
	if opts.XCrypto {
		cryptoimpl.Force()
	}
	d := &Device{
		log:     opts.Logger,
		clock:   opts.Clock,
		tun:     opts.TUN,
		bind:    opts.Bind,
		peers:   make(map[noise.PublicKey]*Peer),
		allowed: allowedips.New[*Peer](),
		workQ:   make(chan *batch, workQueueLen),
		hsQ:     make(chan hsMsg, handshakeQueueLen),
		done:    make(chan struct{}),
		capture: opts.Capture,
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.clock == nil {
		d.clock = RealClock{}
	}
	r := opts.Rand
	if r == nil {
		r = rand.Reader
	}
	d.rand = &lockedReader{r: r}
	var seed [32]byte
	if _, err := io.ReadFull(d.rand, seed[:]); err != nil {
		return nil, fmt.Errorf("device: seeding timer jitter: %w", err)
	}
	d.jitterRand = mrand.New(mrand.NewChaCha8(seed))
	d.indices = newIndexTable(d.rand)
	d.dsched = daita.NewScheduler(daita.SchedulerOptions{Clock: d.clock, Rand: d.rand})
	d.limiter = ratelimit.New(d.clock.Now)
	d.replyLimiter = ratelimit.New(d.clock.Now)

	mtu, err := d.tun.MTU()
	if err != nil || mtu <= 0 {
		mtu = defaultMTU
	}
	d.setMTU(mtu)
	d.bufPool.New = d.newBuf
	d.batchPool.New = func() any {
		return &batch{elems: make([]elem, 0, batchCap), bufs: make([][]byte, 0, batchCap)}
	}
	d.bindBatch = max(1, min(d.bind.BatchSize(), batchCap))

	workers := opts.Workers
	switch {
	case workers < 0:
		workers = 0
	case workers == 0:
		workers = autoWorkers(runtime.GOMAXPROCS(0))
	}
	d.inline = workers == 0
	d.tr = d.newTUNReader()
	d.handleTUN = d.handleTUNBatch
	d.tunBatch, _ = d.tun.(tun.BatchReader)

	fns, port, err := d.bind.Open(0)
	if err != nil {
		return nil, fmt.Errorf("device: opening UDP bind: %w", err)
	}
	d.listenPort = port
	d.startReceivers(fns)

	d.wg.Add(3 + workers)
	go d.routineReadTUN()
	go d.routineHandshake()
	go d.routineTUNEvents()
	for range workers {
		go d.worker()
	}
	return d, nil
}

// autoWorkers is the default number of crypto workers for procs
// processors.
func autoWorkers(procs int) int {
	if procs <= 2 {
		return 0
	}
	return procs
}

func (d *Device) startReceivers(fns []transport.ReceiveFunc) {
	d.recvWG.Add(len(fns))
	for _, fn := range fns {
		go d.routineReceive(fn)
	}
}

// routineTUNEvents follows the TUN device's MTU: padding and packet
// buffers follow it (bufsize.go).
func (d *Device) routineTUNEvents() {
	defer d.wg.Done()
	events := d.tun.Events()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return
			}
			if ev&tun.EventMTUUpdate != 0 {
				mtu, err := d.tun.MTU()
				if err != nil || mtu <= 0 {
					continue
				}
				d.log.Debug("TUN MTU changed", "mtu", mtu)
				d.setMTU(mtu)
			}
		case <-d.done:
			return
		}
	}
}

// send hands datagrams to the Bind.
func (d *Device) send(bufs [][]byte, ep transport.Endpoint) error {
	return d.bind.Send(bufs, ep)
}

// backoff pauses a reader after an unexpected error and reports whether
// the device is closing.
func (d *Device) backoff() bool {
	select {
	case <-d.done:
		return true
	case <-time.After(10 * time.Millisecond):
		return d.closing.Load()
	}
}

// enterCallback registers a running timer callback; it fails once the
// device is closing.
func (d *Device) enterCallback() bool {
	d.cbMu.Lock()
	defer d.cbMu.Unlock()
	if d.cbClosed {
		return false
	}
	d.cbWG.Add(1)
	return true
}

func (d *Device) exitCallback() { d.cbWG.Done() }

// Close stops the device: it closes the TUN device and the Bind, stops
// every timer and waits for every goroutine it started. Then it zeroes the
// private key and every peer's keys: best effort, since Go may have left
// copies behind (see noise.Handshake.Wipe).
func (d *Device) Close() error {
	d.closeOnce.Do(func() {
		d.cfgMu.Lock()
		d.closing.Store(true)
		close(d.done)
		d.cbMu.Lock()
		d.cbClosed = true
		d.cbMu.Unlock()
		d.bind.Close()
		d.tun.Close()
		d.peersMu.RLock()
		for _, p := range d.peers {
			p.stopTimers()
		}
		d.dsched.Close()
		d.peersMu.RUnlock()
		d.cfgMu.Unlock()
		d.recvWG.Wait()
		d.wg.Wait()
		d.cbWG.Wait()
		d.wipeKeys()
	})
	return nil
}

// State returns the device's configuration and counters, peers sorted by
// public key.
func (d *Device) State() State {
	d.cfgMu.Lock()
	defer d.cfgMu.Unlock()
	s := State{ListenPort: d.listenPort, FirewallMark: d.fwmark}
	if id := d.ident.Load(); id != nil {
		s.PrivateKey, s.PublicKey = id.priv, id.pub
	}
	d.peersMu.RLock()
	peers := make([]*Peer, 0, len(d.peers))
	for _, p := range d.peers {
		peers = append(peers, p)
	}
	d.peersMu.RUnlock()
	// A stable order (by public key), so repeated dumps compare equal.
	slices.SortFunc(peers, func(a, b *Peer) int { return bytes.Compare(a.pub[:], b.pub[:]) })
	s.Peers = make([]PeerState, 0, len(peers))
	for _, p := range peers {
		s.Peers = append(s.Peers, p.state())
	}
	return s
}

// PeerState returns the state of the peer with the given key.
func (d *Device) PeerState(pub noise.PublicKey) (PeerState, bool) {
	p := d.peer(pub)
	if p == nil {
		return PeerState{}, false
	}
	return p.state(), true
}

func (d *Device) peer(pub noise.PublicKey) *Peer {
	d.peersMu.RLock()
	defer d.peersMu.RUnlock()
	return d.peers[pub]
}

// LocalPort returns the UDP port the device listens on.
func (d *Device) LocalPort() uint16 {
	d.cfgMu.Lock()
	defer d.cfgMu.Unlock()
	return d.listenPort
}

// endpointOf returns a peer's current endpoint address, for tests and
// diagnostics.
func (d *Device) endpointOf(pub noise.PublicKey) netip.AddrPort {
	if p := d.peer(pub); p != nil {
		if ep, ok := p.getEndpoint(); ok {
			return ep.Dst
		}
	}
	return netip.AddrPort{}
}
