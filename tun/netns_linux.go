package tun

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// An interface may be moved to another network namespace (ip link set
// IFNAME netns NS) and on from there; the TUN descriptor stays attached to
// it. The device keeps its sockets in its home namespace, the one it was
// created in: moving the interface away shows there as RTM_DELLINK, so a
// deletion is only believed when the descriptor says the interface is
// gone. The netlink socket listens to every namespace that has an id in
// the home namespace (NETLINK_LISTEN_ALL_NSID), so it follows the
// interface without holding a socket in, and so keeping alive, the
// namespace it moved to. Interface ioctls in a foreign namespace use a
// socket made there for the call.

// tunGetDevNetns is TUNGETDEVNETNS (_IO('T', 227), Linux 5.2): a new
// descriptor of the namespace the interface is in.
const tunGetDevNetns = 0x54e3

// nsLocal is the namespace id of messages from the home namespace, which
// carry none.
const nsLocal = unix.NETNSA_NSID_NOT_ASSIGNED

// nsUnknown is the namespace id while the interface is in a namespace
// whose id could not be learnt: no message matches it.
const nsUnknown = -2

// nsRequestTimeout bounds the wait for the kernel's answer to a namespace
// id request.
const nsRequestTimeout = 2 * time.Second

// devNetns returns a descriptor of the namespace the interface is in.
func (d *LinuxDevice) devNetns() (int, error) {
	nsfd := -1
	var opErr error
	if err := d.rc.Control(func(fd uintptr) { nsfd, opErr = unix.IoctlRetInt(int(fd), tunGetDevNetns) }); err != nil {
		return -1, fmt.Errorf("%w: %w", ErrClosed, err)
	}
	if opErr != nil {
		return -1, fmt.Errorf("tun: namespace of interface: %w", opErr)
	}
	unix.CloseOnExec(nsfd)
	return nsfd, nil
}

// nsInode identifies the namespace behind the descriptor nsfd.
func nsInode(nsfd int) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(nsfd, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// socketNetnsInode identifies the namespace of socket fd (SIOCGSKNS,
// Linux 4.9); 0 when the kernel cannot say.
func socketNetnsInode(fd int) uint64 {
	nsfd, err := unix.IoctlRetInt(fd, unix.SIOCGSKNS)
	if err != nil {
		return 0
	}
	defer unix.Close(nsfd)
	ino, _ := nsInode(nsfd)
	return ino
}

// foreignNetns returns a descriptor of the interface's namespace when it
// is not the home one, or -1 when it is home (or the kernel cannot tell,
// before Linux 5.2: then the interface is taken to be home).
func (d *LinuxDevice) foreignNetns() (int, error) {
	if d.homeIno == 0 {
		return -1, nil
	}
	nsfd, err := d.devNetns()
	if err != nil {
		if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
			return -1, nil
		}
		return -1, err
	}
	if ino, err := nsInode(nsfd); err != nil || ino == d.homeIno {
		unix.Close(nsfd)
		return -1, nil
	}
	return nsfd, nil
}

// socketInNetns creates a socket in the namespace nsfd, on a thread that
// enters the namespace for the call.
func socketInNetns(nsfd, domain, typ, proto int) (int, error) {
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{-1, fmt.Errorf("tun: own namespace: %w", err)}
			return
		}
		defer unix.Close(self)
		if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{-1, fmt.Errorf("tun: enter the interface's namespace: %w", err)}
			return
		}
		fd, err := unix.Socket(domain, typ|unix.SOCK_CLOEXEC, proto)
		if unix.Setns(self, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		// Otherwise the thread stays locked and ends with the goroutine.
		if err != nil {
			ch <- result{-1, fmt.Errorf("tun: socket in the interface's namespace: %w", err)}
			return
		}
		ch <- result{fd, nil}
	}()
	r := <-ch
	return r.fd, r.err
}

// newCtlSocket creates a datagram socket for interface ioctls in the
// current namespace, or in nsfd's when nsfd >= 0.
func newCtlSocket(nsfd int) (int, error) {
	create := func(domain int) (int, error) {
		if nsfd >= 0 {
			return socketInNetns(nsfd, domain, unix.SOCK_DGRAM, 0)
		}
		return unix.Socket(domain, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	}
	fd, err := create(unix.AF_INET)
	if err != nil {
		if fd6, err6 := create(unix.AF_INET6); err6 == nil {
			return fd6, nil
		}
		return -1, fmt.Errorf("tun: control socket: %w", err)
	}
	return fd, nil
}

// ctlSocket returns a socket for interface ioctls in the namespace the
// interface is in: the home one, or one made for the call, which release
// closes. The caller holds ctlMu.
func (d *LinuxDevice) ctlSocket() (fd int, release func(), err error) {
	if d.ctl < 0 {
		return -1, nil, ErrClosed
	}
	nsfd, err := d.foreignNetns()
	if err != nil {
		return -1, nil, err
	}
	if nsfd < 0 {
		return d.ctl, func() {}, nil
	}
	defer unix.Close(nsfd)
	fd, err = newCtlSocket(nsfd)
	if err != nil {
		return -1, nil, err
	}
	return fd, func() { unix.Close(fd) }, nil
}

// listenAllNetns asks the netlink socket fd for the messages of every
// namespace with an id in its own. Without it (before Linux 4.6, or
// refused) the device hears only about its home namespace.
func listenAllNetns(fd int) {
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_LISTEN_ALL_NSID, 1)
}

// messageNsid returns the namespace id the control messages oob carry,
// nsLocal when none.
func messageNsid(oob []byte) int32 {
	for len(oob) > 0 {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			break
		}
		if h.Level == unix.SOL_NETLINK && h.Type == unix.NETLINK_LISTEN_ALL_NSID && len(data) >= 4 {
			return int32(binary.NativeEndian.Uint32(data))
		}
		oob = rest
	}
	return nsLocal
}

// netnsID returns the id, in the home namespace, of the namespace nsfd,
// assigning one if it has none, so the home namespace hears its messages.
func (d *LinuxDevice) netnsID(nsfd int) (int32, error) {
	for range 2 {
		id, err := d.nsidRequest(unix.RTM_GETNSID, nsfd)
		if err != nil {
			return nsUnknown, err
		}
		if id >= 0 {
			return id, nil
		}
		// None yet: ask the kernel to assign one. EEXIST means another
		// process just did.
		if _, err := d.nsidRequest(unix.RTM_NEWNSID, nsfd); err != nil && !errors.Is(err, unix.EEXIST) {
			return nsUnknown, err
		}
	}
	return nsUnknown, errors.New("tun: namespace id not assigned")
}

// nsidRequest sends RTM_GETNSID (answered with the id, or
// NETNSA_NSID_NOT_ASSIGNED) or RTM_NEWNSID (assign one; answered with an
// acknowledgement) about the namespace nsfd on the request socket.
func (d *LinuxDevice) nsidRequest(typ uint16, nsfd int) (int32, error) {
	d.nlSeq++
	req := nsidRequestMessage(typ, d.nlSeq, nsfd)
	fd := int(d.nlReq.Fd())
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nsUnknown, fmt.Errorf("tun: namespace id request: %w", err)
	}
	buf := make([]byte, 4096)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nsUnknown, fmt.Errorf("tun: namespace id answer: %w", err)
		}
		id, done, err := parseNsidReply(buf[:n], d.nlSeq)
		if done || err != nil {
			return id, err
		}
	}
}

// nsidRequestMessage builds a namespace id request: nlmsghdr, rtgenmsg,
// NETNSA_FD and, to assign one, NETNSA_NSID = -1 (any free id).
func nsidRequestMessage(typ uint16, seq uint32, nsfd int) []byte {
	flags := uint16(unix.NLM_F_REQUEST)
	attrs := 8
	if typ == unix.RTM_NEWNSID {
		flags |= unix.NLM_F_ACK
		attrs += 8
	}
	b := make([]byte, nlmsgHdrLen+4+attrs)
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint16(b[6:], flags)
	binary.NativeEndian.PutUint32(b[8:], seq)
	b[nlmsgHdrLen] = unix.AF_UNSPEC
	a := b[nlmsgHdrLen+4:]
	binary.NativeEndian.PutUint16(a[0:], 8)
	binary.NativeEndian.PutUint16(a[2:], unix.NETNSA_FD)
	binary.NativeEndian.PutUint32(a[4:], uint32(nsfd))
	if typ == unix.RTM_NEWNSID {
		binary.NativeEndian.PutUint16(a[8:], 8)
		binary.NativeEndian.PutUint16(a[10:], unix.NETNSA_NSID)
		binary.NativeEndian.PutUint32(a[12:], uint32(0xffffffff))
	}
	return b
}

// parseNsidReply reads the answers in b to request seq: the id of an
// RTM_NEWNSID answer (NETNSA_NSID_NOT_ASSIGNED if it carries none), or
// the outcome of an NLMSG_ERROR (an acknowledgement when zero). done is
// false when b holds no answer to seq.
func parseNsidReply(b []byte, seq uint32) (id int32, done bool, err error) {
	for len(b) >= nlmsgHdrLen {
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		typ := binary.NativeEndian.Uint16(b[4:6])
		if l < nlmsgHdrLen || l > len(b) {
			return nsUnknown, true, fmt.Errorf("%w: length %d with %d bytes left", errBadNetlink, l, len(b))
		}
		if binary.NativeEndian.Uint32(b[8:12]) == seq {
			body := b[nlmsgHdrLen:l]
			switch typ {
			case unix.NLMSG_ERROR:
				if len(body) < 4 {
					return nsUnknown, true, fmt.Errorf("%w: short error message", errBadNetlink)
				}
				if code := int32(binary.NativeEndian.Uint32(body)); code != 0 {
					return nsUnknown, true, fmt.Errorf("tun: namespace id: %w", syscall.Errno(-code))
				}
				return nsLocal, true, nil
			case unix.RTM_NEWNSID:
				id = nsLocal
				if len(body) < 4 {
					return nsUnknown, true, fmt.Errorf("%w: short namespace id message", errBadNetlink)
				}
				err := walkAttrs(body[4:], func(typ uint16, val []byte) error {
					if typ == unix.NETNSA_NSID && len(val) >= 4 {
						id = int32(binary.NativeEndian.Uint32(val))
					}
					return nil
				})
				if err != nil {
					return nsUnknown, true, err
				}
				return id, true, nil
			}
		}
		next := nlAlign(l, nlmsgAlignTo)
		if next >= len(b) {
			break
		}
		b = b[next:]
	}
	return nsUnknown, false, nil
}

// openRequestSocket opens the netlink socket for namespace id requests in
// the current (home) namespace, with a receive timeout so a lost answer
// cannot stall the link watcher.
func openRequestSocket() (*os.File, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("tun: netlink socket: %w", err)
	}
	tv := unix.NsecToTimeval(nsRequestTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tun: netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tun: netlink bind: %w", err)
	}
	return os.NewFile(uintptr(fd), "netlink requests"), nil
}

// isGone reports whether err from the TUN descriptor means the interface
// no longer exists.
func isGone(err error) bool {
	return errors.Is(err, unix.EBADFD) || errors.Is(err, os.ErrClosed) || errors.Is(err, ErrClosed)
}
