package noise

import (
	"bytes"
	"encoding/binary"
	"time"
)

// TimestampSize is the size of a TAI64N timestamp.
const TimestampSize = 12

// Timestamp is a TAI64N label: eight bytes of big-endian TAI64 seconds and
// four bytes of big-endian nanoseconds. Big-endian makes byte order equal
// time order.
type Timestamp [TimestampSize]byte

const (
	// tai64Base is the TAI64 label of the Unix epoch: 2^62 plus the
	// 10-second TAI-UTC offset of 1970.
	tai64Base = 0x400000000000000a
	// tai64Whitener rounds nanoseconds down to a multiple of 2^24 ns
	// (about 16.8 ms, the largest power of two below the 20 ms initiation
	// spacing) so that initiations do not reveal the sender's precise clock.
	tai64Whitener = 1 << 24
)

// TAI64N returns the timestamp of t as sent in a handshake initiation, with
// its nanoseconds rounded down to a multiple of 2^24.
func TAI64N(t time.Time) Timestamp {
	var ts Timestamp
	secs := uint64(tai64Base + t.Unix())
	nanos := uint32(t.Nanosecond())
	nanos -= nanos % tai64Whitener
	binary.BigEndian.PutUint64(ts[:8], secs)
	binary.BigEndian.PutUint32(ts[8:], nanos)
	return ts
}

// After reports whether a is strictly later than b.
func (a Timestamp) After(b Timestamp) bool {
	return bytes.Compare(a[:], b[:]) > 0
}
