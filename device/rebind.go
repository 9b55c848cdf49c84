package device

import (
	"fmt"

	"github.com/gotatun/gotatun/transport"
)

// rebindAtomic changes the firewall mark and the port as the kernel does:
// the new sockets are opened while the old ones keep working, so a failure
// (the port is taken, the mark not permitted) leaves the port, the sockets
// and the mark as they were.
func (d *Device) rebindAtomic(rb transport.Rebinder, port uint16, mark uint32) error {
	oldMark := d.fwmark
	if mark != oldMark {
		if err := d.bind.SetMark(mark); err != nil {
			_ = d.bind.SetMark(oldMark) // it may have reached one socket
			return fmt.Errorf("device: setting firewall mark %d: %w", mark, err)
		}
	}
	if port != d.listenPort {
		fns, actual, err := rb.Rebind(port)
		if err != nil {
			if mark != oldMark {
				_ = d.bind.SetMark(oldMark)
			}
			return fmt.Errorf("device: listening on port %d: %w", port, err)
		}
		d.recvWG.Wait() // the old sockets' receivers have seen ErrClosed
		d.listenPort = actual
		d.startReceivers(fns)
	}
	d.fwmark = mark
	return nil
}
