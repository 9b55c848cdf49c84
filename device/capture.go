package device

import "time"

// Capture records plaintext tunnel packets, for debugging; *pcap.Writer
// is one. WritePacket is called from the packet goroutines, concurrently,
// with a packet that is only valid during the call. Its errors are
// logged once and otherwise ignored.
type Capture interface {
	WritePacket(t time.Time, pkt []byte) error
}

// capturePacket hands one plaintext packet to the capture, if any.
func (d *Device) capturePacket(pkt []byte) {
	if err := d.capture.WritePacket(d.clock.Now(), pkt); err != nil && d.captureFailed.CompareAndSwap(false, true) {
		d.log.Error("packet capture failed; later errors are not logged", "err", err)
	}
}
