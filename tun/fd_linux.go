package tun

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// FDDevice is a packet descriptor used as it is: each read and write is
// one plain IP packet, with no virtio-net header and no offloads, and the
// interface is not watched (no netlink socket, no MTU changes). It is
// what a TUN descriptor handed over by Android's VpnService needs, where
// an app may not open netlink sockets or change the interface. Any
// descriptor that keeps packet boundaries works, a datagram socket pair
// for one.
type FDDevice struct {
	d    *LinuxDevice
	mtu  int
	name string
}

// CreateTUNFromFD takes ownership of fd, an open TUN descriptor created
// without IFF_VNET_HDR, and uses it as it is; Close closes it. mtu is what
// MTU reports; 0 asks the interface once, where it can be asked. It owns
// fd even when it fails, and then closes it.
func CreateTUNFromFD(fd int, mtu int) (_ *FDDevice, err error) {
	if fd < 0 {
		return nil, fmt.Errorf("tun: invalid descriptor %d", fd)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return nil, fmt.Errorf("tun: descriptor %d: %w", fd, err)
	}
	defer func() {
		if err != nil {
			unix.Close(fd)
		}
	}()
	name := fmt.Sprintf("fd%d", fd)
	if ifr, err := unix.NewIfreq(""); err == nil && unix.IoctlIfreq(fd, unix.TUNGETIFF, ifr) == nil {
		if ifr.Uint16()&unix.IFF_VNET_HDR != 0 {
			return nil, fmt.Errorf("tun: interface %s carries virtio-net headers; use CreateTUNFromFile", ifr.Name())
		}
		name = ifr.Name()
		if mtu <= 0 {
			mtu = interfaceMTU(name)
		}
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, fmt.Errorf("tun: set non-blocking: %w", err)
	}
	d := &LinuxDevice{ctl: -1, events: make(chan Event, 1), closed: make(chan struct{})}
	d.f = os.NewFile(uintptr(fd), name)
	if d.rc, err = d.f.SyscallConn(); err != nil {
		return nil, fmt.Errorf("tun: %w", err)
	}
	d.rd.overflow = make([]byte, maxPacket)
	d.wr.fn = d.writePackets
	d.setCallbacks()
	d.events <- EventUp
	return &FDDevice{d: d, mtu: mtu, name: name}, nil
}

// interfaceMTU asks the kernel for the MTU of interface name; 0 if it
// cannot tell.
func interfaceMTU(name string) int {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(name)
	if err != nil || unix.IoctlIfreq(s, unix.SIOCGIFMTU, ifr) != nil {
		return 0
	}
	return int(int32(ifr.Uint32()))
}

// errNoMTU is MTU's answer when neither the caller nor the interface said.
var errNoMTU = errors.New("tun: MTU of the descriptor unknown")

// MTU implements Device.
func (f *FDDevice) MTU() (int, error) {
	if f.mtu <= 0 {
		return 0, errNoMTU
	}
	return f.mtu, nil
}

// Name implements Device: the interface name, or fdN when the descriptor
// is not a TUN interface.
func (f *FDDevice) Name() (string, error) { return f.name, nil }

// Read implements Device.
func (f *FDDevice) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	return f.d.Read(bufs, sizes, offset)
}

// ReadFunc implements BatchReader.
func (f *FDDevice) ReadFunc(bufs [][]byte, sizes []int, offset int, handle func(n int)) error {
	return f.d.ReadFunc(bufs, sizes, offset, handle)
}

// PollFunc implements BatchReader.
func (f *FDDevice) PollFunc(bufs [][]byte, sizes []int, offset int, handle func(n int)) bool {
	return f.d.PollFunc(bufs, sizes, offset, handle)
}

// Write implements Device.
func (f *FDDevice) Write(bufs [][]byte, offset int) (int, error) { return f.d.Write(bufs, offset) }

// Events implements Device: EventUp once, then nothing until Close.
func (f *FDDevice) Events() <-chan Event { return f.d.Events() }

// BatchSize implements Device.
func (f *FDDevice) BatchSize() int { return f.d.BatchSize() }

// Close implements Device and closes the descriptor.
func (f *FDDevice) Close() error { return f.d.Close() }

// Stats returns the drop counters.
func (f *FDDevice) Stats() LinuxStats { return f.d.Stats() }
