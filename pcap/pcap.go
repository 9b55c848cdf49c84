// Package pcap writes and reads capture files in the classic libpcap
// format, with raw IP packets (LINKTYPE_RAW), as tcpdump -r and Wireshark
// read them. The device uses a Writer to record the plaintext packets of
// a tunnel.
package pcap

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

const (
	// magicMicro is the file magic of microsecond timestamps, written in
	// the file's byte order.
	magicMicro = 0xa1b2c3d4
	// magicNano marks nanosecond timestamps.
	magicNano = 0xa1b23c4d
	// LinkTypeRaw is LINKTYPE_RAW: each packet starts with its IPv4 or
	// IPv6 header.
	LinkTypeRaw = 101
	// SnapLen is the most bytes of a packet a Writer records.
	SnapLen = 65535

	fileHeaderLen   = 24
	recordHeaderLen = 16
	// flushEvery bounds how long a written packet may sit in the buffer.
	flushEvery = time.Second
)

// Writer writes packets to a capture file. It is safe for concurrent use
// and allocates nothing per packet; packets are buffered and reach the
// underlying writer at least once a second while packets arrive, and on
// Flush.
type Writer struct {
	mu        sync.Mutex
	bw        *bufio.Writer
	hdr       [recordHeaderLen]byte
	lastFlush time.Time
	err       error
}

// NewWriter writes the file header to w and returns a Writer for the
// packets.
func NewWriter(w io.Writer) (*Writer, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	var h [fileHeaderLen]byte
	binary.LittleEndian.PutUint32(h[0:], magicMicro)
	binary.LittleEndian.PutUint16(h[4:], 2) // version 2.4
	binary.LittleEndian.PutUint16(h[6:], 4)
	// thiszone and sigfigs stay zero.
	binary.LittleEndian.PutUint32(h[16:], SnapLen)
	binary.LittleEndian.PutUint32(h[20:], LinkTypeRaw)
	if _, err := bw.Write(h[:]); err != nil {
		return nil, fmt.Errorf("pcap: writing file header: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("pcap: writing file header: %w", err)
	}
	return &Writer{bw: bw}, nil
}

// WritePacket records pkt, an IP packet, as seen at t. After the first
// write error every call returns that error.
func (w *Writer) WritePacket(t time.Time, pkt []byte) error {
	incl := min(len(pkt), SnapLen)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	us := t.UnixMicro()
	binary.LittleEndian.PutUint32(w.hdr[0:], uint32(us/1e6))
	binary.LittleEndian.PutUint32(w.hdr[4:], uint32(us%1e6))
	binary.LittleEndian.PutUint32(w.hdr[8:], uint32(incl))
	binary.LittleEndian.PutUint32(w.hdr[12:], uint32(len(pkt)))
	if _, err := w.bw.Write(w.hdr[:]); err != nil {
		w.err = fmt.Errorf("pcap: %w", err)
		return w.err
	}
	if _, err := w.bw.Write(pkt[:incl]); err != nil {
		w.err = fmt.Errorf("pcap: %w", err)
		return w.err
	}
	if t.Sub(w.lastFlush) >= flushEvery || t.Before(w.lastFlush) {
		w.lastFlush = t
		if err := w.bw.Flush(); err != nil {
			w.err = fmt.Errorf("pcap: %w", err)
		}
	}
	return w.err
}

// Flush writes buffered packets to the underlying writer.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("pcap: %w", err)
	}
	return w.err
}

// Packet is one record of a capture file.
type Packet struct {
	Time time.Time
	// Data is the captured bytes, at most the file's snapshot length.
	Data []byte
	// OrigLen is the packet's length on the wire.
	OrigLen int
}

// ErrFormat is wrapped by every error about a malformed capture file.
var ErrFormat = errors.New("pcap: malformed file")

// Reader reads a capture file.
type Reader struct {
	r        io.Reader
	order    binary.ByteOrder
	nano     bool
	snapLen  uint32
	linkType uint32
	hdr      [recordHeaderLen]byte
}

// maxRecord bounds a record's captured length, whatever the header says.
const maxRecord = 256 << 10

// NewReader reads the file header from r.
func NewReader(r io.Reader) (*Reader, error) {
	var h [fileHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, fmt.Errorf("%w: file header: %w", ErrFormat, err)
	}
	rd := &Reader{r: r}
	switch {
	case binary.LittleEndian.Uint32(h[:]) == magicMicro:
		rd.order = binary.LittleEndian
	case binary.BigEndian.Uint32(h[:]) == magicMicro:
		rd.order = binary.BigEndian
	case binary.LittleEndian.Uint32(h[:]) == magicNano:
		rd.order, rd.nano = binary.LittleEndian, true
	case binary.BigEndian.Uint32(h[:]) == magicNano:
		rd.order, rd.nano = binary.BigEndian, true
	default:
		return nil, fmt.Errorf("%w: magic %#x is not a pcap file's", ErrFormat, h[:4])
	}
	if major := rd.order.Uint16(h[4:]); major != 2 {
		return nil, fmt.Errorf("%w: version %d.%d, want 2.x", ErrFormat, major, rd.order.Uint16(h[6:]))
	}
	rd.snapLen = rd.order.Uint32(h[16:])
	rd.linkType = rd.order.Uint32(h[20:]) & 0x0fffffff
	return rd, nil
}

// LinkType returns the file's link type (LinkTypeRaw for the device's).
func (r *Reader) LinkType() int { return int(r.linkType) }

// Next returns the next packet, or io.EOF at a clean end of the file.
func (r *Reader) Next() (Packet, error) {
	n, err := io.ReadFull(r.r, r.hdr[:])
	if err == io.EOF {
		return Packet{}, io.EOF
	}
	if err != nil {
		return Packet{}, fmt.Errorf("%w: record header cut short after %d bytes", ErrFormat, n)
	}
	sec, frac := r.order.Uint32(r.hdr[0:]), r.order.Uint32(r.hdr[4:])
	incl, orig := r.order.Uint32(r.hdr[8:]), r.order.Uint32(r.hdr[12:])
	if incl > maxRecord || (r.snapLen != 0 && incl > r.snapLen && incl > SnapLen) {
		return Packet{}, fmt.Errorf("%w: record of %d bytes exceeds the snapshot length %d", ErrFormat, incl, r.snapLen)
	}
	if incl > orig {
		return Packet{}, fmt.Errorf("%w: record captures %d bytes of a %d-byte packet", ErrFormat, incl, orig)
	}
	limit := uint32(1e6)
	if r.nano {
		limit = 1e9
	}
	if frac >= limit {
		return Packet{}, fmt.Errorf("%w: timestamp fraction %d out of range", ErrFormat, frac)
	}
	data := make([]byte, incl)
	if _, err := io.ReadFull(r.r, data); err != nil {
		return Packet{}, fmt.Errorf("%w: record of %d bytes cut short", ErrFormat, incl)
	}
	ns := int64(frac) * 1000
	if r.nano {
		ns = int64(frac)
	}
	return Packet{Time: time.Unix(int64(sec), ns), Data: data, OrigLen: int(orig)}, nil
}
