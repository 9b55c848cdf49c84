package tun

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TUN offload flags for TUNSETOFFLOAD (include/uapi/linux/if_tun.h).
const (
	tunFCsum = 0x01
	tunFTSO4 = 0x02
	tunFTSO6 = 0x04
	tunFUSO4 = 0x20
	tunFUSO6 = 0x40
)

const (
	// linuxBatchSize is the most packets Read returns at once.
	linuxBatchSize = 128
	// maxPacket is the largest IP packet, including a GSO super-packet.
	maxPacket = 65535
	// virtioHdrLen is the size of struct virtio_net_hdr.
	virtioHdrLen = 10
)

// LinuxOptions tunes a LinuxDevice. The zero value is the default.
type LinuxOptions struct {
	// DisableOffloads creates the interface without IFF_VNET_HDR: every
	// read and write is one plain IP packet.
	DisableOffloads bool
}

// LinuxStats counts packets a LinuxDevice dropped.
type LinuxStats struct {
	// ReadTooLarge counts packets read from the kernel that did not fit
	// the caller's buffer.
	ReadTooLarge uint64
	// ReadBad counts packets (or super-packets) the kernel handed over
	// that could not be split or checksummed.
	ReadBad uint64
	// WriteRejected counts packets the kernel refused as malformed.
	WriteRejected uint64
	// GSOSplit counts super-packets read and split into packets.
	GSOSplit uint64
	// Coalesced counts packets written merged into a super-packet.
	Coalesced uint64
}

// LinuxDevice is a Linux TUN interface (/dev/net/tun). With IFF_VNET_HDR
// and the kernel's segmentation offloads it reads TCP (and UDP, where the
// kernel supports USO) super-packets and splits them, and coalesces
// written segments of one flow into super-packets.
type LinuxDevice struct {
	f     *os.File
	rc    syscall.RawConn
	index atomic.Int32 // in the namespace the interface is in

	ctlMu sync.Mutex // guards ctl against Close
	ctl   int        // AF_INET datagram socket for interface ioctls, -1 when closed
	// homeIno identifies the namespace the device was created in (that
	// of ctl and nl), 0 if the kernel cannot say.
	homeIno uint64

	vnet     bool // packets carry a virtio-net header
	offloads int  // TUN_F_* flags the kernel accepted

	nl        *os.File // NETLINK_ROUTE socket subscribed to link changes
	nlReq     *os.File // NETLINK_ROUTE socket for namespace id requests
	nlSeq     uint32   // sequence number of the last request on nlReq
	events    chan Event
	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
	// gone is closed when a read finds the interface deleted.
	gone        chan struct{}
	goneOnce    sync.Once
	deletedOnce sync.Once

	// readCallMu serialises Read and ReadFunc; readMu guards the read
	// scratch and is held while a batch is handled, so batches taken by
	// ReadFunc and PollFunc are handled in the order they were read.
	readCallMu   sync.Mutex
	readMu       sync.Mutex
	rcall, pcall readCall
	readCB       func(fd uintptr) bool
	pollCB       func(fd uintptr)
	rd           readState // without virtio-net headers
	vr           vnetReader

	writeMu sync.Mutex
	wr      writeState
	vw      vnetWriter

	readTooLarge, readBad, writeRejected atomic.Uint64
	gsoSplit, coalesced                  atomic.Uint64
}

// CreateTUN creates (or attaches to) the TUN interface called name and
// sets its MTU when mtu > 0. An empty name lets the kernel choose one.
// Offloads are used where the kernel supports them.
func CreateTUN(name string, mtu int) (Device, error) {
	d, err := CreateLinuxTUN(name, mtu, LinuxOptions{})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// CreateLinuxTUN is CreateTUN with options, returning the Linux type.
func CreateLinuxTUN(name string, mtu int, opts LinuxOptions) (*LinuxDevice, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("tun: open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tun: interface name %q: %w", name, err)
	}
	flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI)
	created := false
	if !opts.DisableOffloads {
		ifr.SetUint16(flags | unix.IFF_VNET_HDR)
		created = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr) == nil
	}
	if !created {
		// Either asked for plain packets or the kernel refused the
		// virtio-net header.
		ifr.SetUint16(flags)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tun: create interface %q: %w", name, err)
	}
	return newLinuxDevice(fd, mtu)
}

// CreateTUNFromFile wraps a TUN file descriptor opened by someone else (a
// parent process, or Android's VpnService), taking ownership of file. The
// interface keeps the flags it was created with; when it carries
// virtio-net headers, offloads are enabled where the kernel supports them.
// mtu > 0 sets the MTU when it differs.
func CreateTUNFromFile(file *os.File, mtu int) (Device, error) {
	rc, err := file.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("tun: %w", err)
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(f uintptr) {
		fd, dupErr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, fmt.Errorf("tun: %w", err)
	}
	if dupErr != nil {
		return nil, fmt.Errorf("tun: duplicate descriptor: %w", dupErr)
	}
	file.Close()
	d, err := newLinuxDevice(fd, mtu)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// newLinuxDevice finishes setting up the TUN descriptor fd, which it owns.
func newLinuxDevice(fd int, mtu int) (_ *LinuxDevice, err error) {
	d := &LinuxDevice{ctl: -1, events: make(chan Event, 16), closed: make(chan struct{}), gone: make(chan struct{})}
	defer func() {
		if err != nil {
			d.release()
			if d.f == nil {
				unix.Close(fd)
			}
		}
	}()
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return nil, err
	}
	if err := unix.IoctlIfreq(fd, unix.TUNGETIFF, ifr); err != nil {
		return nil, fmt.Errorf("tun: descriptor is not a TUN interface: %w", err)
	}
	name := ifr.Name()
	tunFlags := ifr.Uint16()
	if tunFlags&unix.IFF_TUN == 0 || tunFlags&unix.IFF_NO_PI == 0 {
		return nil, fmt.Errorf("tun: interface %s needs IFF_TUN and IFF_NO_PI (flags %#x)", name, tunFlags)
	}
	if tunFlags&unix.IFF_VNET_HDR != 0 {
		d.vnet = true
		if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, virtioHdrLen); err != nil {
			return nil, fmt.Errorf("tun: set virtio-net header size: %w", err)
		}
		for _, off := range []int{
			tunFCsum | tunFTSO4 | tunFTSO6 | tunFUSO4 | tunFUSO6,
			tunFCsum | tunFTSO4 | tunFTSO6,
			0,
		} {
			if unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, off) == nil {
				d.offloads = off
				break
			}
		}
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, fmt.Errorf("tun: set non-blocking: %w", err)
	}
	d.f = os.NewFile(uintptr(fd), "/dev/net/tun")
	if d.rc, err = d.f.SyscallConn(); err != nil {
		return nil, fmt.Errorf("tun: %w", err)
	}
	if d.ctl, err = newCtlSocket(-1); err != nil {
		d.ctl = -1
		return nil, err
	}
	d.homeIno = socketNetnsInode(d.ctl)
	if err := d.ctlIoctl(name, unix.SIOCGIFINDEX, func(ifr *unix.Ifreq) { d.index.Store(int32(ifr.Uint32())) }); err != nil {
		return nil, err
	}

	// Subscribe to link changes before reading the initial state, so no
	// change falls in between.
	nlfd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("tun: netlink socket: %w", err)
	}
	listenAllNetns(nlfd)
	if err := unix.Bind(nlfd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_LINK}); err != nil {
		unix.Close(nlfd)
		return nil, fmt.Errorf("tun: netlink bind: %w", err)
	}
	d.nl = os.NewFile(uintptr(nlfd), "netlink")
	if d.nlReq, err = openRequestSocket(); err != nil {
		return nil, err
	}

	if mtu > 0 {
		cur, err := d.MTU()
		if err != nil {
			return nil, err
		}
		if cur != mtu {
			if err := d.SetMTU(mtu); err != nil {
				return nil, err
			}
		}
	}
	up, curMTU, err := d.linkState()
	if err != nil {
		return nil, err
	}
	if up {
		d.events <- EventUp
	}
	if d.vnet {
		tso, uso := d.Offloads()
		d.vr.init()
		d.vw.init(tso, uso)
		d.vw.fn = d.writeRaw
	} else {
		d.rd.overflow = make([]byte, maxPacket)
		d.wr.fn = d.writePackets
	}
	d.setCallbacks()
	d.wg.Add(2)
	go d.routineLinkEvents(up, uint32(curMTU))
	go d.routineGone()
	return d, nil
}

// setCallbacks builds the descriptor callbacks of reads once, so reading
// allocates nothing.
func (d *LinuxDevice) setCallbacks() {
	d.readCB = func(fd uintptr) bool {
		d.readMu.Lock()
		defer d.readMu.Unlock()
		return d.readAndHandle(fd, &d.rcall)
	}
	d.pollCB = func(fd uintptr) { d.pcall.handled = d.readAndHandle(fd, &d.pcall) }
}

// release closes what has been opened so far.
func (d *LinuxDevice) release() {
	if d.nl != nil {
		d.nl.Close()
	}
	if d.nlReq != nil {
		d.nlReq.Close()
	}
	if d.f != nil {
		d.f.Close()
	}
	d.ctlMu.Lock()
	if d.ctl >= 0 {
		unix.Close(d.ctl)
		d.ctl = -1
	}
	d.ctlMu.Unlock()
}

// ctlIoctl runs an interface ioctl for name on the control socket; fn
// reads the result.
func (d *LinuxDevice) ctlIoctl(name string, req uint, fn func(*unix.Ifreq)) error {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fmt.Errorf("tun: interface name %q: %w", name, err)
	}
	return d.ctlIoctlIfreq(ifr, req, fn)
}

func (d *LinuxDevice) ctlIoctlIfreq(ifr *unix.Ifreq, req uint, fn func(*unix.Ifreq)) error {
	d.ctlMu.Lock()
	defer d.ctlMu.Unlock()
	ctl, release, err := d.ctlSocket()
	if err != nil {
		return err
	}
	defer release()
	if err := unix.IoctlIfreq(ctl, req, ifr); err != nil {
		return fmt.Errorf("tun: ioctl %#x on %s: %w", req, ifr.Name(), err)
	}
	if fn != nil {
		fn(ifr)
	}
	return nil
}

// linkState reads whether the interface is up and running, and its MTU.
func (d *LinuxDevice) linkState() (up bool, mtu int, err error) {
	name, err := d.Name()
	if err != nil {
		return false, 0, err
	}
	var flags uint16
	if err := d.ctlIoctl(name, unix.SIOCGIFFLAGS, func(ifr *unix.Ifreq) { flags = ifr.Uint16() }); err != nil {
		return false, 0, err
	}
	mtu, err = d.MTU()
	return isUp(uint32(flags)), mtu, err
}

func isUp(flags uint32) bool {
	return flags&unix.IFF_UP != 0 && flags&unix.IFF_RUNNING != 0
}

// Name implements Device. It asks the kernel, so it follows renames.
func (d *LinuxDevice) Name() (string, error) {
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return "", err
	}
	var opErr error
	if err := d.rc.Control(func(fd uintptr) { opErr = unix.IoctlIfreq(int(fd), unix.TUNGETIFF, ifr) }); err != nil {
		return "", fmt.Errorf("%w: %w", ErrClosed, err)
	}
	if opErr != nil {
		return "", fmt.Errorf("tun: get interface name: %w", opErr)
	}
	return ifr.Name(), nil
}

// MTU implements Device.
func (d *LinuxDevice) MTU() (int, error) {
	name, err := d.Name()
	if err != nil {
		return 0, err
	}
	var mtu int
	err = d.ctlIoctl(name, unix.SIOCGIFMTU, func(ifr *unix.Ifreq) { mtu = int(int32(ifr.Uint32())) })
	return mtu, err
}

// SetMTU sets the interface MTU.
func (d *LinuxDevice) SetMTU(mtu int) error {
	if mtu <= 0 || mtu > maxPacket {
		return fmt.Errorf("tun: MTU %d out of range", mtu)
	}
	name, err := d.Name()
	if err != nil {
		return err
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	ifr.SetUint32(uint32(mtu))
	return d.ctlIoctlIfreq(ifr, unix.SIOCSIFMTU, nil)
}

// Index returns the interface index.
func (d *LinuxDevice) Index() int { return int(d.index.Load()) }

// Offloads reports which kernel offloads are on: TCP segmentation (TSO,
// reads may carry TCP super-packets and writes are coalesced) and UDP
// segmentation (USO, the same for UDP).
func (d *LinuxDevice) Offloads() (tso, uso bool) {
	return d.offloads&(tunFTSO4|tunFTSO6) != 0, d.offloads&(tunFUSO4|tunFUSO6) != 0
}

// Stats returns the drop counters.
func (d *LinuxDevice) Stats() LinuxStats {
	return LinuxStats{
		ReadTooLarge:  d.readTooLarge.Load(),
		ReadBad:       d.readBad.Load(),
		WriteRejected: d.writeRejected.Load(),
		GSOSplit:      d.gsoSplit.Load(),
		Coalesced:     d.coalesced.Load(),
	}
}

// Events implements Device.
func (d *LinuxDevice) Events() <-chan Event { return d.events }

// BatchSize implements Device.
func (d *LinuxDevice) BatchSize() int { return linuxBatchSize }

// Close implements Device.
func (d *LinuxDevice) Close() error {
	var err error
	d.closeOnce.Do(func() {
		close(d.closed)
		var errNL, errCtl error
		if d.nl != nil {
			errNL = d.nl.Close()
		}
		errF := d.f.Close()
		d.ctlMu.Lock()
		if d.ctl >= 0 {
			errCtl = unix.Close(d.ctl)
		}
		d.ctl = -1
		d.ctlMu.Unlock()
		d.wg.Wait()
		// Only the link watcher uses it, with system calls of its own.
		if d.nlReq != nil {
			d.nlReq.Close()
		}
		close(d.events)
		err = errors.Join(errNL, errF, errCtl)
	})
	return err
}

// sendEvent delivers ev unless the device is closing.
func (d *LinuxDevice) sendEvent(ev Event) bool {
	select {
	case d.events <- ev:
		return true
	case <-d.closed:
		return false
	}
}

// readState is the scratch space of reads without virtio-net headers.
type readState struct {
	iov      [2]unix.Iovec
	overflow []byte // catches the part of a packet beyond the caller's buffer
}

// readCall is the state of one Read, ReadFunc or PollFunc call, for the
// descriptor callbacks (built once, so reading allocates nothing).
type readCall struct {
	bufs    [][]byte
	sizes   []int
	offset  int
	handle  func(n int)
	n       int
	err     error
	handled bool
	// dropped: a packet too large for its buffer was dropped
	dropped bool
}

// Read implements Device.
func (d *LinuxDevice) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	return d.read(bufs, sizes, offset, nil)
}

// ReadFunc implements BatchReader.
func (d *LinuxDevice) ReadFunc(bufs [][]byte, sizes []int, offset int, handle func(n int)) error {
	_, err := d.read(bufs, sizes, offset, handle)
	return err
}

// PollFunc implements BatchReader.
func (d *LinuxDevice) PollFunc(bufs [][]byte, sizes []int, offset int, handle func(n int)) bool {
	limit := min(len(bufs), len(sizes))
	if limit == 0 || offset < 0 || !d.readMu.TryLock() {
		return false
	}
	defer d.readMu.Unlock()
	c := &d.pcall
	c.bufs, c.sizes, c.offset, c.handle, c.handled = bufs[:limit], sizes[:limit], offset, handle, false
	// Control, not Read: it neither waits nor queues behind a ReadFunc
	// parked on the descriptor.
	err := d.rc.Control(d.pollCB)
	handled := c.handled
	*c = readCall{}
	return err == nil && handled
}

func (d *LinuxDevice) read(bufs [][]byte, sizes []int, offset int, handle func(n int)) (int, error) {
	limit := min(len(bufs), len(sizes))
	if limit == 0 {
		return 0, nil
	}
	if offset < 0 {
		return 0, fmt.Errorf("tun: negative offset %d", offset)
	}
	d.readCallMu.Lock()
	defer d.readCallMu.Unlock()
	c := &d.rcall
	c.bufs, c.sizes, c.offset, c.handle = bufs[:limit], sizes[:limit], offset, handle
	err := d.rc.Read(d.readCB)
	n, rerr := c.n, c.err
	*c = readCall{}
	switch {
	case err != nil:
		return 0, fmt.Errorf("%w: %w", ErrClosed, err)
	case rerr != nil && n == 0:
		if errors.Is(rerr, unix.EBADFD) {
			d.noteGone()
		}
		return 0, fmt.Errorf("tun: read: %w", rerr)
	}
	return n, nil
}

// readAndHandle reads what is queued into c's buffers and hands each
// batch to c.handle, until nothing is left in the reader's own scratch
// (so no split segments wait behind a descriptor nobody is woken for). It
// reports whether it read something or failed; false means the kernel
// had nothing queued. The caller holds readMu.
func (d *LinuxDevice) readAndHandle(fd uintptr, c *readCall) bool {
	done := false
	for {
		c.n, c.err, c.dropped = 0, nil, false
		if d.vnet {
			d.readVnet(fd, c)
		} else {
			d.readPlain(fd, c)
		}
		if c.err != nil {
			return true
		}
		if c.n == 0 {
			if c.dropped && c.handle != nil && !done {
				// Tell the caller its buffers are too small (the MTU
				// grew), so it can grow them before the next read.
				c.handle(0)
				return true
			}
			return done || c.dropped
		}
		done = true
		if c.handle == nil {
			return true
		}
		c.handle(c.n)
		if !d.vnet || !d.vr.pending() {
			return true
		}
	}
}

// readPlain reads packets straight into c's buffers until they are full
// or none is queued. It never waits.
func (d *LinuxDevice) readPlain(fd uintptr, c *readCall) {
	r := &d.rd
	for c.n < len(c.bufs) {
		buf := c.bufs[c.n]
		var room []byte
		if c.offset < len(buf) {
			room = buf[c.offset:]
		}
		setIovec(&r.iov[0], room)
		setIovec(&r.iov[1], r.overflow)
		// RawSyscall: the descriptor is non-blocking, so the call returns at once;
		// skipping the scheduler's syscall bookkeeping keeps sysmon from handing
		// this P to another thread during long kernel work (a 64 KiB GSO write).
		n, _, e := unix.RawSyscall(unix.SYS_READV, fd, uintptr(unsafe.Pointer(&r.iov[0])), 2)
		switch e {
		case 0:
			if int(n) > len(room) {
				d.readTooLarge.Add(1)
				c.dropped = true
				continue
			}
			c.sizes[c.n] = int(n)
			c.n++
		case unix.EINTR:
		case unix.EAGAIN:
			return
		default:
			if c.n == 0 {
				c.err = e
			}
			return
		}
	}
}

func setIovec(iov *unix.Iovec, b []byte) {
	if len(b) == 0 {
		iov.Base = nil
	} else {
		iov.Base = &b[0]
	}
	iov.SetLen(len(b))
}

// writeState is the call state of Write.
type writeState struct {
	bufs   [][]byte
	offset int
	n      int
	err    error
	fn     func(fd uintptr) bool
}

// Write implements Device.
func (d *LinuxDevice) Write(bufs [][]byte, offset int) (int, error) {
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	for i, b := range bufs {
		if offset < 0 || len(b) < offset {
			return 0, fmt.Errorf("tun: buffer %d shorter than offset %d", i, offset)
		}
	}
	if d.vnet {
		return d.writeVnet(bufs, offset)
	}
	w := &d.wr
	w.bufs, w.offset, w.n, w.err = bufs, offset, 0, nil
	err := d.rc.Write(w.fn)
	n, werr := w.n, w.err
	w.bufs = nil
	if err != nil {
		return n, fmt.Errorf("%w: %w", ErrClosed, err)
	}
	if werr != nil {
		return n, fmt.Errorf("tun: write: %w", werr)
	}
	return n, nil
}

// writePackets writes each pending packet; it returns false to wait for
// the descriptor when the kernel queue is full.
func (d *LinuxDevice) writePackets(fd uintptr) bool {
	w := &d.wr
	for w.n < len(w.bufs) {
		p := w.bufs[w.n][w.offset:]
		_, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
		switch e {
		case 0:
			w.n++
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		case unix.EINVAL, unix.EMSGSIZE:
			// The kernel refused this packet as malformed: drop it only.
			d.writeRejected.Add(1)
			w.n++
		default:
			w.err = e
			return true
		}
	}
	return true
}
