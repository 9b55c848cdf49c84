package noise

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// Message types: the first byte of every WireGuard message, followed by
// three reserved zero bytes.
const (
	MessageInitiationType  = 1
	MessageResponseType    = 2
	MessageCookieReplyType = 3
	MessageTransportType   = 4
)

// Message sizes.
const (
	MessageInitiationSize      = 148
	MessageResponseSize        = 92
	MessageCookieReplySize     = 64
	MessageTransportHeaderSize = 16 // type, receiver index, counter
	// MessageTransportOverhead is what a transport message adds to its
	// plaintext: the header and the Poly1305 tag.
	MessageTransportOverhead = MessageTransportHeaderSize + tagSize
	// MessageKeepaliveSize is the size of a transport message with an
	// empty payload.
	MessageKeepaliveSize = MessageTransportOverhead
)

// Protocol constants from the WireGuard whitepaper (section 6).
const (
	RekeyAfterMessages uint64 = 1 << 60
	// RejectAfterMessages is the first counter that is never used to send
	// and never accepted on receipt.
	RejectAfterMessages uint64 = math.MaxUint64 - (1 << 13)

	RekeyAfterTime    = 120 * time.Second
	RejectAfterTime   = 180 * time.Second
	RekeyAttemptTime  = 90 * time.Second
	RekeyTimeout      = 5 * time.Second
	KeepaliveTimeout  = 10 * time.Second
	CookieRefreshTime = 120 * time.Second

	// HandshakeInitiationRate is the minimum spacing between two accepted
	// handshake initiations from one peer.
	HandshakeInitiationRate = time.Second / 50

	// ReplayWindow is how far behind the highest received counter a
	// transport counter may be and still be accepted (once).
	ReplayWindow = 8192
)

const (
	tagSize       = 16 // Poly1305
	macSize       = 16 // keyed BLAKE2s-128
	encStaticSize = KeySize + tagSize
	encTimeSize   = TimestampSize + tagSize
	cookieSize    = 16
	encCookieSize = cookieSize + tagSize
	xNonceSize    = 24
)

// Errors returned by this package. Functions wrap them with %w and add
// details, so test with errors.Is.
var (
	// ErrMalformed reports bytes that are not a well-formed message.
	ErrMalformed = errors.New("noise: malformed message")
	// ErrDecrypt reports a message that failed authentication.
	ErrDecrypt = errors.New("noise: message authentication failed")
	// ErrUnknownPeer reports an initiation from a static key we do not know.
	ErrUnknownPeer = errors.New("noise: initiation from unknown peer")
	// ErrReplayedTimestamp reports an initiation whose timestamp is not
	// newer than the last accepted one from that peer.
	ErrReplayedTimestamp = errors.New("noise: replayed handshake initiation timestamp")
	// ErrFlood reports an initiation that came too soon after the previous
	// accepted one from that peer.
	ErrFlood = errors.New("noise: handshake initiation flood")
	// ErrState reports an operation that the handshake's (or keypair's)
	// current state does not allow.
	ErrState = errors.New("noise: invalid state for this operation")
	// ErrInvalidKey reports a key that would give an all-zero shared secret.
	ErrInvalidKey = errors.New("noise: invalid public key")
	// ErrCounter reports a transport counter at or beyond RejectAfterMessages.
	ErrCounter = errors.New("noise: transport counter beyond the reject limit")
)

// MessageType returns the type of a message: the little-endian value of its
// first four bytes, which are the type byte followed by three zero bytes.
// It returns false if b is shorter than four bytes or a reserved byte is
// not zero.
func MessageType(b []byte) (uint32, bool) {
	if len(b) < 4 || b[1]|b[2]|b[3] != 0 {
		return 0, false
	}
	return uint32(b[0]), true
}

func checkHeader(b []byte, what string, typ byte, size int) error {
	if len(b) != size {
		return fmt.Errorf("%w: %s is %d bytes, want %d", ErrMalformed, what, len(b), size)
	}
	if b[0] != typ {
		return fmt.Errorf("%w: %s has type %d, want %d", ErrMalformed, what, b[0], typ)
	}
	if b[1]|b[2]|b[3] != 0 {
		return fmt.Errorf("%w: %s has non-zero reserved bytes", ErrMalformed, what)
	}
	return nil
}

func putHeader(b []byte, typ byte) {
	b[0], b[1], b[2], b[3] = typ, 0, 0, 0
}

// MessageInitiation is the first handshake message, sent by the initiator.
//
// Wire layout (little-endian): type(4) sender(4) ephemeral(32)
// static(48) timestamp(28) mac1(16) mac2(16).
type MessageInitiation struct {
	Sender    uint32
	Ephemeral PublicKey
	Static    [encStaticSize]byte
	Timestamp [encTimeSize]byte
	MAC1      [macSize]byte
	MAC2      [macSize]byte
}

// Unmarshal parses b, which must be exactly one initiation message.
func (m *MessageInitiation) Unmarshal(b []byte) error {
	if err := checkHeader(b, "handshake initiation", MessageInitiationType, MessageInitiationSize); err != nil {
		return err
	}
	m.Sender = binary.LittleEndian.Uint32(b[4:8])
	copy(m.Ephemeral[:], b[8:40])
	copy(m.Static[:], b[40:88])
	copy(m.Timestamp[:], b[88:116])
	copy(m.MAC1[:], b[116:132])
	copy(m.MAC2[:], b[132:148])
	return nil
}

// MarshalTo writes the message to b[:MessageInitiationSize] and returns that
// slice. b must have a capacity of at least MessageInitiationSize.
func (m *MessageInitiation) MarshalTo(b []byte) []byte {
	b = b[:MessageInitiationSize]
	putHeader(b, MessageInitiationType)
	binary.LittleEndian.PutUint32(b[4:8], m.Sender)
	copy(b[8:40], m.Ephemeral[:])
	copy(b[40:88], m.Static[:])
	copy(b[88:116], m.Timestamp[:])
	copy(b[116:132], m.MAC1[:])
	copy(b[132:148], m.MAC2[:])
	return b
}

// MessageResponse is the second handshake message, sent by the responder.
//
// Wire layout (little-endian): type(4) sender(4) receiver(4) ephemeral(32)
// empty(16) mac1(16) mac2(16).
type MessageResponse struct {
	Sender, Receiver uint32
	Ephemeral        PublicKey
	Empty            [tagSize]byte
	MAC1, MAC2       [macSize]byte
}

// Unmarshal parses b, which must be exactly one response message.
func (m *MessageResponse) Unmarshal(b []byte) error {
	if err := checkHeader(b, "handshake response", MessageResponseType, MessageResponseSize); err != nil {
		return err
	}
	m.Sender = binary.LittleEndian.Uint32(b[4:8])
	m.Receiver = binary.LittleEndian.Uint32(b[8:12])
	copy(m.Ephemeral[:], b[12:44])
	copy(m.Empty[:], b[44:60])
	copy(m.MAC1[:], b[60:76])
	copy(m.MAC2[:], b[76:92])
	return nil
}

// MarshalTo writes the message to b[:MessageResponseSize] and returns that
// slice. b must have a capacity of at least MessageResponseSize.
func (m *MessageResponse) MarshalTo(b []byte) []byte {
	b = b[:MessageResponseSize]
	putHeader(b, MessageResponseType)
	binary.LittleEndian.PutUint32(b[4:8], m.Sender)
	binary.LittleEndian.PutUint32(b[8:12], m.Receiver)
	copy(b[12:44], m.Ephemeral[:])
	copy(b[44:60], m.Empty[:])
	copy(b[60:76], m.MAC1[:])
	copy(b[76:92], m.MAC2[:])
	return b
}

// MessageCookieReply carries an encrypted cookie to an initiator (or
// responder) whose handshake message was refused under load.
//
// Wire layout (little-endian): type(4) receiver(4) nonce(24) cookie(32).
type MessageCookieReply struct {
	Receiver uint32
	Nonce    [xNonceSize]byte
	Cookie   [encCookieSize]byte
}

// Unmarshal parses b, which must be exactly one cookie reply.
func (m *MessageCookieReply) Unmarshal(b []byte) error {
	if err := checkHeader(b, "cookie reply", MessageCookieReplyType, MessageCookieReplySize); err != nil {
		return err
	}
	m.Receiver = binary.LittleEndian.Uint32(b[4:8])
	copy(m.Nonce[:], b[8:32])
	copy(m.Cookie[:], b[32:64])
	return nil
}

// MarshalTo writes the message to b[:MessageCookieReplySize] and returns
// that slice. b must have a capacity of at least MessageCookieReplySize.
func (m *MessageCookieReply) MarshalTo(b []byte) []byte {
	b = b[:MessageCookieReplySize]
	putHeader(b, MessageCookieReplyType)
	binary.LittleEndian.PutUint32(b[4:8], m.Receiver)
	copy(b[8:32], m.Nonce[:])
	copy(b[32:64], m.Cookie[:])
	return b
}

// Preallocated errors for the transport path, which sees every packet.
var (
	errTransportShort    = fmt.Errorf("%w: transport message shorter than %d bytes", ErrMalformed, MessageTransportOverhead)
	errTransportType     = fmt.Errorf("%w: not a transport message", ErrMalformed)
	errTransportReceiver = fmt.Errorf("%w: transport message for another receiver index", ErrMalformed)
	errTransportCounter  = fmt.Errorf("%w: transport message", ErrCounter)
	errKeypairZeroed     = fmt.Errorf("%w: keypair has been zeroed", ErrState)
	errTransportDecrypt  = fmt.Errorf("%w: transport message", ErrDecrypt)
)

// ParseTransportHeader reads the receiver index and counter of a transport
// message. b must be at least MessageTransportOverhead bytes (an empty
// payload still carries a tag), of type 4 with zero reserved bytes.
func ParseTransportHeader(b []byte) (receiver uint32, counter uint64, err error) {
	if len(b) < MessageTransportOverhead {
		return 0, 0, errTransportShort
	}
	if b[0] != MessageTransportType || b[1]|b[2]|b[3] != 0 {
		return 0, 0, errTransportType
	}
	return binary.LittleEndian.Uint32(b[4:8]), binary.LittleEndian.Uint64(b[8:16]), nil
}
