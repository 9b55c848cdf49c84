package tun

import (
	"errors"

	"golang.org/x/sys/unix"
)

// linkWatch is what the link watcher knows of the interface.
type linkWatch struct {
	nsid int32 // id of its namespace in the home one; nsLocal when home
	up   bool
	mtu  uint32
}

// relocateTries bounds how often relocate starts again because the
// interface moved while it looked.
const relocateTries = 4

// routineLinkEvents turns netlink link messages about this interface into
// Events until Close or the interface's deletion.
func (d *LinuxDevice) routineLinkEvents(up bool, mtu uint32) {
	defer d.wg.Done()
	w := linkWatch{nsid: nsLocal, up: up, mtu: mtu}
	// An inherited descriptor may belong to an interface that lives
	// elsewhere already.
	if d.relocate(&w) {
		d.sendDeleted()
		return
	}
	rc, err := d.nl.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, 1<<16)
	oob := make([]byte, unix.CmsgSpace(4)*4)
	var n, oobn int
	var rerr error
	recv := func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, 0)
		return rerr != unix.EAGAIN
	}
	for {
		if err := rc.Read(recv); err != nil {
			return // closed
		}
		if rerr != nil {
			select {
			case <-d.closed:
				return
			default:
			}
			if errors.Is(rerr, unix.ENOBUFS) {
				// Messages were lost: look again.
				if d.relocate(&w) {
					d.sendDeleted()
					return
				}
				continue
			}
			if errors.Is(rerr, unix.EINTR) {
				continue
			}
			// Any other error would repeat: stop listening.
			return
		}
		nsid := messageNsid(oob[:oobn])
		changed, left := false, false
		index := d.index.Load()
		// A malformed message ends its read; the messages before it count.
		_ = parseLinkMessages(buf[:n], func(m linkMsg) {
			if nsid != w.nsid || m.index != index {
				return
			}
			changed = true
			// Deleted, or moved to another namespace.
			left = left || m.deleted
		})
		// A message says that the link changed; its state is read from
		// the kernel, since messages still queued may be older than
		// what a previous look found.
		gone := false
		switch {
		case left:
			gone = d.relocate(&w)
		case changed:
			gone = d.refresh(&w)
		}
		if gone {
			d.sendDeleted()
			return
		}
	}
}

// refresh reads the link's state and sends the events it means. It
// reports whether the interface is gone.
func (d *LinuxDevice) refresh(w *linkWatch) (gone bool) {
	up, mtu, err := d.linkState()
	if err != nil {
		_, err := d.Name()
		return err != nil
	}
	d.noteLink(w, up, uint32(mtu))
	return false
}

// noteLink sends the events a new link state means.
func (d *LinuxDevice) noteLink(w *linkWatch, up bool, mtu uint32) {
	if up != w.up {
		w.up = up
		ev := EventDown
		if up {
			ev = EventUp
		}
		d.sendEvent(ev)
	}
	if mtu != 0 && mtu != w.mtu {
		w.mtu = mtu
		d.sendEvent(EventMTUUpdate)
	}
}

// relocate finds where the interface is now, after it left the namespace
// the watcher followed or messages were lost: its namespace's id, its
// index there, and its state, sending the events the state means. It
// reports whether the interface is gone.
func (d *LinuxDevice) relocate(w *linkWatch) (gone bool) {
	for range relocateTries {
		if _, err := d.Name(); err != nil {
			// The descriptor no longer has an interface.
			return true
		}
		before := d.netnsInode()
		nsfd, err := d.foreignNetns()
		if err != nil {
			return isGone(err)
		}
		if nsfd < 0 {
			w.nsid = nsLocal
		} else {
			w.nsid, err = d.netnsID(nsfd)
			unix.Close(nsfd)
			if err != nil {
				// Deaf to its namespace: deletion still shows on the
				// descriptor.
				w.nsid = nsUnknown
			}
		}
		name, err := d.Name()
		if err != nil {
			return true
		}
		if err := d.ctlIoctl(name, unix.SIOCGIFINDEX, func(ifr *unix.Ifreq) { d.index.Store(int32(ifr.Uint32())) }); err != nil {
			if _, err := d.Name(); err != nil {
				return true
			}
			continue
		}
		up, mtu, err := d.linkState()
		if err != nil {
			if _, err := d.Name(); err != nil {
				return true
			}
			continue
		}
		if d.netnsInode() != before {
			continue // moved on meanwhile
		}
		d.noteLink(w, up, uint32(mtu))
		return false
	}
	return false
}

// netnsInode identifies the interface's namespace; 0 when unknown.
func (d *LinuxDevice) netnsInode() uint64 {
	nsfd, err := d.devNetns()
	if err != nil {
		return 0
	}
	defer unix.Close(nsfd)
	ino, _ := nsInode(nsfd)
	return ino
}

// noteGone is called when the descriptor reports the interface gone.
func (d *LinuxDevice) noteGone() {
	if d.gone != nil {
		d.goneOnce.Do(func() { close(d.gone) })
	}
}

// routineGone sends EventDeleted when a read found the interface gone.
func (d *LinuxDevice) routineGone() {
	defer d.wg.Done()
	select {
	case <-d.gone:
		d.sendDeleted()
	case <-d.closed:
	}
}

// sendDeleted sends EventDeleted, once.
func (d *LinuxDevice) sendDeleted() {
	d.deletedOnce.Do(func() { d.sendEvent(EventDeleted) })
}
