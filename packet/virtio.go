package packet

import (
	"encoding/binary"
	"fmt"
)

// VirtioNetHdrLen is the size of struct virtio_net_hdr, which a Linux TUN
// device with IFF_VNET_HDR puts before every packet.
const VirtioNetHdrLen = 10

// Virtio-net header flags.
const (
	// VirtioNetHdrFNeedsCsum: the transport checksum is to be completed: sum
	// from CsumStart to the end and store at CsumStart+CsumOffset. The field
	// already holds the pseudo-header sum.
	VirtioNetHdrFNeedsCsum = 1
	// VirtioNetHdrFDataValid: the checksum was already verified.
	VirtioNetHdrFDataValid = 2
)

// Virtio-net GSO types.
const (
	GSONone   = 0
	GSOTCPv4  = 1
	GSOUDP    = 3 // UDP fragmentation offload (UFO); not supported here
	GSOTCPv6  = 4
	GSOUDPL4  = 5    // UDP segmentation offload, IPv4 or IPv6
	GSOECNBit = 0x80 // TCP with ECN (CWR on the first segment only)
)

// VirtioNetHdr is struct virtio_net_hdr from Linux
// include/uapi/linux/virtio_net.h. Its 16-bit fields are in the device's
// virtio byte order, which for a TUN device is the host's; this package
// encodes little-endian, the order of every platform gotatun's Linux TUN
// offload runs on (amd64, arm64, 386, arm, riscv64, loong64, ppc64le).
type VirtioNetHdr struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16 // length of the headers to copy into every segment
	GSOSize    uint16 // payload bytes per segment
	CsumStart  uint16 // where checksumming starts (the transport header)
	CsumOffset uint16 // offset of the checksum field from CsumStart
}

// Decode reads the header from the first VirtioNetHdrLen bytes of b.
func (h *VirtioNetHdr) Decode(b []byte) error {
	if len(b) < VirtioNetHdrLen {
		return fmt.Errorf("%w: virtio-net header needs %d bytes, have %d", ErrTruncated, VirtioNetHdrLen, len(b))
	}
	h.Flags = b[0]
	h.GSOType = b[1]
	h.HdrLen = binary.LittleEndian.Uint16(b[2:4])
	h.GSOSize = binary.LittleEndian.Uint16(b[4:6])
	h.CsumStart = binary.LittleEndian.Uint16(b[6:8])
	h.CsumOffset = binary.LittleEndian.Uint16(b[8:10])
	return nil
}

// Encode writes the header into the first VirtioNetHdrLen bytes of b.
func (h *VirtioNetHdr) Encode(b []byte) error {
	if len(b) < VirtioNetHdrLen {
		return fmt.Errorf("%w: virtio-net header needs %d bytes, have %d", ErrBufferTooSmall, VirtioNetHdrLen, len(b))
	}
	b[0] = h.Flags
	b[1] = h.GSOType
	binary.LittleEndian.PutUint16(b[2:4], h.HdrLen)
	binary.LittleEndian.PutUint16(b[4:6], h.GSOSize)
	binary.LittleEndian.PutUint16(b[6:8], h.CsumStart)
	binary.LittleEndian.PutUint16(b[8:10], h.CsumOffset)
	return nil
}
