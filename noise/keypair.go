package noise

import (
	"crypto/cipher"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gotatun/gotatun/noise/chachapoly"
)

// Keypair is the pair of transport keys of one session, with its send
// counter and receive replay filter. The exported fields are set at
// creation and never change.
//
// The AEADs keep their own copies of the keys, which a concurrent Seal or
// Open may still be reading; Zero drops the last references to them and
// wipes everything else.
type Keypair struct {
	LocalIndex  uint32 // index peers put in messages to us
	RemoteIndex uint32 // index we put in messages to the peer
	Created     time.Time
	IsInitiator bool

	ciphers     atomic.Pointer[keypairCiphers]
	sendCounter atomic.Uint64

	replayMu sync.Mutex
	replay   ReplayFilter
	zeroed   bool // set by Zero, under replayMu: reject every counter
}

type keypairCiphers struct {
	send, recv cipher.AEAD
}

func newKeypair(send, recv *[KeySize]byte, local, remote uint32, initiator bool, now time.Time) *Keypair {
	s, err := chachapoly.New(send[:])
	if err != nil {
		panic("noise: ChaCha20-Poly1305 with a 32-byte key cannot fail: " + err.Error())
	}
	r, err := chachapoly.New(recv[:])
	if err != nil {
		panic("noise: ChaCha20-Poly1305 with a 32-byte key cannot fail: " + err.Error())
	}
	k := &Keypair{LocalIndex: local, RemoteIndex: remote, Created: now, IsInitiator: initiator}
	k.ciphers.Store(&keypairCiphers{send: s, recv: r})
	return k
}

// NextCounter atomically takes the next send counter (the nonce of one
// message). It returns false once the counter would reach
// RejectAfterMessages, so a nonce is never used twice; the keypair must
// then be replaced.
func (k *Keypair) NextCounter() (uint64, bool) {
	for {
		c := k.sendCounter.Load()
		if c >= RejectAfterMessages {
			return 0, false
		}
		if k.sendCounter.CompareAndSwap(c, c+1) {
			return c, true
		}
	}
}

// SendCounter returns how many send counters have been taken, for rekey
// decisions against RekeyAfterMessages.
func (k *Keypair) SendCounter() uint64 { return k.sendCounter.Load() }

// SealTransport encrypts plaintext as a transport message with the given
// counter (from NextCounter). It writes the 16-byte header (type 4,
// RemoteIndex, counter) to dst[:16] and the ciphertext and tag to dst[16:],
// and returns dst[:16+len(plaintext)+16]. plaintext may be exactly
// dst[16:16+len(plaintext)] (in place) or must not overlap dst. It does not
// allocate.
//
// It returns nil if cap(dst) is too small or the keypair has been zeroed.
func (k *Keypair) SealTransport(dst, plaintext []byte, counter uint64) []byte {
	c := k.ciphers.Load()
	n := MessageTransportOverhead + len(plaintext)
	if c == nil || cap(dst) < n {
		return nil
	}
	out := dst[:n]
	// The nonce is four zero bytes and the little-endian counter: bytes
	// 4..16 of the header before the receiver index is written. Using the
	// header as the nonce buffer avoids allocating one per message.
	out[0], out[1], out[2], out[3] = MessageTransportType, 0, 0, 0
	binary.LittleEndian.PutUint32(out[4:8], 0)
	binary.LittleEndian.PutUint64(out[8:16], counter)
	c.send.Seal(out[MessageTransportHeaderSize:MessageTransportHeaderSize], out[4:16], plaintext, nil)
	binary.LittleEndian.PutUint32(out[4:8], k.RemoteIndex)
	return out
}

// OpenTransport authenticates and decrypts a whole transport message (header
// included) addressed to this keypair, appending the plaintext to dst. It is
// in place when dst is msg[16:16]; otherwise dst must not overlap msg. It
// does not consult the replay window: call AcceptCounter with the returned
// counter after it succeeds. It does not allocate.
//
// The receiver-index bytes msg[4:8] serve as scratch space for the nonce
// during the call and are restored before it returns, so msg must not be
// read concurrently. The keypair's age is not checked: that is the caller's
// job against RejectAfterTime.
func (k *Keypair) OpenTransport(dst, msg []byte) (plaintext []byte, counter uint64, err error) {
	receiver, counter, err := ParseTransportHeader(msg)
	if err != nil {
		return nil, 0, err
	}
	if receiver != k.LocalIndex {
		return nil, 0, errTransportReceiver
	}
	if counter >= RejectAfterMessages {
		return nil, 0, errTransportCounter
	}
	c := k.ciphers.Load()
	if c == nil {
		return nil, 0, errKeypairZeroed
	}
	binary.LittleEndian.PutUint32(msg[4:8], 0)
	out, openErr := c.recv.Open(dst, msg[4:16], msg[MessageTransportHeaderSize:], nil)
	binary.LittleEndian.PutUint32(msg[4:8], receiver)
	if openErr != nil {
		return nil, 0, errTransportDecrypt
	}
	return out, counter, nil
}

// AcceptCounter records a counter received on this keypair and reports
// whether it is new and within the replay window. Call it only after
// OpenTransport succeeded. It is safe for concurrent use. After Zero it
// rejects every counter, so a message that was decrypted just before the
// keypair was wiped is still dropped.
func (k *Keypair) AcceptCounter(counter uint64) bool {
	k.replayMu.Lock()
	ok := !k.zeroed && k.replay.Accept(counter)
	k.replayMu.Unlock()
	return ok
}

// Zero wipes the keypair: sealing returns nil, opening fails, NextCounter
// returns false and AcceptCounter rejects everything from now on.
func (k *Keypair) Zero() {
	k.ciphers.Store(nil)
	k.sendCounter.Store(RejectAfterMessages)
	k.replayMu.Lock()
	k.zeroed = true
	k.replay.Reset()
	k.replayMu.Unlock()
}
