package noise

import (
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/crypto/blake2s"
)

// Identity is the local static key pair with the values derived from it.
// It is immutable: when the private key changes, build a new Identity and
// give it to each Handshake with SetIdentity.
type Identity struct {
	private PrivateKey
	public  PublicKey
	// hash0 is the responder's handshake hash after mixing in its own
	// static public key: HASH(initialHash || public).
	hash0 [blake2s.Size]byte
	// mac1Key is HASH(LABEL_MAC1 || public), the key peers use for the
	// mac1 of messages sent to us.
	mac1Key [blake2s.Size]byte
}

// NewIdentity derives an Identity from a private key (clamped here).
func NewIdentity(priv PrivateKey) *Identity {
	id := &Identity{private: priv}
	id.private.clamp()
	id.public = id.private.PublicKey()
	mixHash(&id.hash0, &initialHash, id.public[:])
	hashOf(&id.mac1Key, []byte(labelMAC1), id.public[:])
	return id
}

// PublicKey returns the identity's static public key.
func (id *Identity) PublicKey() PublicKey { return id.public }

// CheckMAC1 reports whether msg, a whole marshaled initiation or response
// addressed to this identity, carries a valid mac1.
func (id *Identity) CheckMAC1(msg []byte) bool { return checkMAC1(&id.mac1Key, msg) }

type handshakeState uint8

const (
	stateZeroed handshakeState = iota
	stateInitiationCreated
	stateInitiationConsumed
	stateResponseCreated
	stateResponseConsumed
)

func (s handshakeState) String() string {
	switch s {
	case stateZeroed:
		return "zeroed"
	case stateInitiationCreated:
		return "initiation created"
	case stateInitiationConsumed:
		return "initiation consumed"
	case stateResponseCreated:
		return "response created"
	case stateResponseConsumed:
		return "response consumed"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Handshake is the Noise_IKpsk2 handshake state for one peer. Its methods
// are safe for concurrent use: a mutex guards the state.
//
// One Handshake plays either role. As initiator: CreateInitiation, then
// ConsumeResponse, then BeginSession. As responder: ConsumeInitiation (a
// package function, since the peer is only known after decrypting), then
// CreateResponse, then BeginSession. Creating or consuming an initiation
// abandons whatever handshake was in progress.
type Handshake struct {
	mu sync.Mutex

	id     *Identity
	remote PublicKey
	psk    PresharedKey
	// ss is the precomputed DH(local static, remote static).
	ss [KeySize]byte

	state           handshakeState
	hash            [blake2s.Size]byte
	chainKey        [blake2s.Size]byte
	localEphemeral  PrivateKey
	remoteEphemeral PublicKey
	localIndex      uint32
	remoteIndex     uint32

	// Replay and flood protection for initiations from this peer; kept
	// across Clear.
	lastTimestamp  Timestamp
	lastInitiation time.Time
}

// NewHandshake prepares the handshake state with a peer. It fails with
// ErrInvalidKey if the peer's key equals ours or gives an all-zero static
// shared secret (a low-order point).
func NewHandshake(id *Identity, remote PublicKey, psk PresharedKey) (*Handshake, error) {
	h := &Handshake{remote: remote, psk: psk}
	if err := h.setIdentity(id); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *Handshake) setIdentity(id *Identity) error {
	h.id = id
	h.clear()
	setZero(h.ss[:])
	if id.public.Equal(h.remote) {
		return fmt.Errorf("%w: peer key equals our own public key", ErrInvalidKey)
	}
	ss, err := dh(id.private, h.remote)
	if err != nil {
		return fmt.Errorf("%w: static shared secret with peer %s is zero", ErrInvalidKey, h.remote)
	}
	h.ss = ss
	return nil
}

// SetIdentity switches the handshake to a new local identity (after a
// private key change). Any handshake in progress is abandoned; replay
// protection state is kept. On error the handshake cannot be used until a
// later SetIdentity succeeds.
func (h *Handshake) SetIdentity(id *Identity) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.setIdentity(id)
}

// SetPresharedKey changes the preshared key; the zero key means none.
func (h *Handshake) SetPresharedKey(psk PresharedKey) {
	h.mu.Lock()
	h.psk = psk
	h.mu.Unlock()
}

// Remote returns the peer's static public key.
func (h *Handshake) Remote() PublicKey { return h.remote }

// LocalIndex returns the local index currently owned by the handshake: that
// of the pending initiation or response, 0 if none. The device keeps it
// mapped to this peer until it changes. CreateInitiation and CreateResponse
// replace it (read it before calling them to release the old one);
// ConsumeInitiation keeps it although the initiation it belonged to is
// abandoned; BeginSession hands it to the keypair; Clear drops it.
func (h *Handshake) LocalIndex() uint32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.localIndex
}

// Clear zeroes the ephemeral handshake state and drops the local index.
// The preshared key, static secret and replay protection are kept.
func (h *Handshake) Clear() {
	h.mu.Lock()
	h.clear()
	h.mu.Unlock()
}

func (h *Handshake) clear() {
	setZero(h.hash[:])
	setZero(h.chainKey[:])
	setZero(h.localEphemeral[:])
	setZero(h.remoteEphemeral[:])
	h.localIndex = 0
	h.remoteIndex = 0
	h.state = stateZeroed
}

// CreateInitiation starts a handshake as initiator, with a fresh ephemeral
// key from rand and the timestamp of now. The MAC fields are left zero; a
// CookieGenerator fills them once the message is marshaled. On error the
// handshake is unchanged.
func (h *Handshake) CreateInitiation(now time.Time, localIndex uint32, rand io.Reader) (MessageInitiation, error) {
	var msg MessageInitiation
	eph, err := GeneratePrivateKey(rand)
	if err != nil {
		return msg, err
	}
	defer setZero(eph[:])

	h.mu.Lock()
	defer h.mu.Unlock()
	if isZero(h.ss[:]) {
		return msg, fmt.Errorf("%w: no valid static shared secret with peer", ErrInvalidKey)
	}

	var hash, chainKey, key [blake2s.Size]byte
	defer setZero(key[:])
	chainKey = initialChainKey
	mixHash(&hash, &initialHash, h.remote[:])

	msg.Sender = localIndex
	msg.Ephemeral = eph.PublicKey()
	kdf(chainKey[:], msg.Ephemeral[:], &chainKey)
	mixHash(&hash, &hash, msg.Ephemeral[:])

	es, err := dh(eph, h.remote)
	if err != nil {
		return MessageInitiation{}, fmt.Errorf("ephemeral-static DH: %w", err)
	}
	kdf(chainKey[:], es[:], &chainKey, &key)
	setZero(es[:])
	aeadSeal(msg.Static[:0], &key, h.id.public[:], hash[:])
	mixHash(&hash, &hash, msg.Static[:])

	kdf(chainKey[:], h.ss[:], &chainKey, &key)
	ts := TAI64N(now)
	aeadSeal(msg.Timestamp[:0], &key, ts[:], hash[:])
	mixHash(&hash, &hash, msg.Timestamp[:])

	h.clear()
	h.hash = hash
	h.chainKey = chainKey
	h.localEphemeral = eph
	h.localIndex = localIndex
	h.state = stateInitiationCreated
	setZero(hash[:])
	setZero(chainKey[:])
	return msg, nil
}

// ConsumeInitiation processes an initiation addressed to id. It decrypts
// the initiator's static key, finds its Handshake with lookup, decrypts the
// timestamp and applies replay (ErrReplayedTimestamp) and flood (ErrFlood)
// protection. Only on success is the peer's handshake state updated, so a
// replayed, flooding or forged message changes nothing. The caller checks
// mac1 (and mac2 under load) before calling this.
func ConsumeInitiation(id *Identity, msg *MessageInitiation, lookup func(PublicKey) *Handshake, now time.Time) (*Handshake, error) {
	var hash, chainKey, key [blake2s.Size]byte
	defer setZero(key[:])
	defer setZero(hash[:])
	defer setZero(chainKey[:])

	hash = id.hash0
	chainKey = initialChainKey
	kdf(chainKey[:], msg.Ephemeral[:], &chainKey)
	mixHash(&hash, &hash, msg.Ephemeral[:])

	es, err := dh(id.private, msg.Ephemeral)
	if err != nil {
		return nil, fmt.Errorf("initiation: ephemeral key: %w", err)
	}
	kdf(chainKey[:], es[:], &chainKey, &key)
	setZero(es[:])
	var remote PublicKey
	if _, err := aeadOpen(remote[:0], &key, msg.Static[:], hash[:]); err != nil {
		return nil, fmt.Errorf("initiation: static key: %w", err)
	}
	mixHash(&hash, &hash, msg.Static[:])

	h := lookup(remote)
	if h == nil {
		return nil, fmt.Errorf("%w: %s", ErrUnknownPeer, remote)
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.id != id {
		return nil, fmt.Errorf("%w: handshake belongs to another local identity", ErrState)
	}
	if !h.remote.Equal(remote) {
		return nil, fmt.Errorf("%w: lookup returned the handshake of another peer", ErrState)
	}
	if isZero(h.ss[:]) {
		return nil, fmt.Errorf("%w: no valid static shared secret with peer", ErrInvalidKey)
	}
	kdf(chainKey[:], h.ss[:], &chainKey, &key)
	var ts Timestamp
	if _, err := aeadOpen(ts[:0], &key, msg.Timestamp[:], hash[:]); err != nil {
		return nil, fmt.Errorf("initiation: timestamp: %w", err)
	}
	mixHash(&hash, &hash, msg.Timestamp[:])

	if !ts.After(h.lastTimestamp) {
		return nil, ErrReplayedTimestamp
	}
	if !h.lastInitiation.IsZero() && now.Sub(h.lastInitiation) < HandshakeInitiationRate {
		return nil, ErrFlood
	}

	// The local index stays owned by the handshake until CreateResponse
	// replaces it, so the device can still release it.
	idx := h.localIndex
	h.clear()
	h.localIndex = idx
	h.hash = hash
	h.chainKey = chainKey
	h.remoteEphemeral = msg.Ephemeral
	h.remoteIndex = msg.Sender
	h.lastTimestamp = ts
	h.lastInitiation = now
	h.state = stateInitiationConsumed
	return h, nil
}

// CreateResponse answers the initiation accepted by ConsumeInitiation, with
// a fresh ephemeral key from rand. On error the handshake is unchanged.
func (h *Handshake) CreateResponse(now time.Time, localIndex uint32, rand io.Reader) (MessageResponse, error) {
	var msg MessageResponse
	eph, err := GeneratePrivateKey(rand)
	if err != nil {
		return msg, err
	}
	defer setZero(eph[:])

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state != stateInitiationConsumed {
		return msg, fmt.Errorf("%w: cannot create a response in state %v", ErrState, h.state)
	}

	var hash, chainKey, tau, key [blake2s.Size]byte
	defer setZero(key[:])
	defer setZero(tau[:])
	defer setZero(hash[:])
	defer setZero(chainKey[:])
	hash, chainKey = h.hash, h.chainKey

	msg.Sender = localIndex
	msg.Receiver = h.remoteIndex
	msg.Ephemeral = eph.PublicKey()
	kdf(chainKey[:], msg.Ephemeral[:], &chainKey)
	mixHash(&hash, &hash, msg.Ephemeral[:])

	ee, err := dh(eph, h.remoteEphemeral)
	if err != nil {
		return MessageResponse{}, fmt.Errorf("ephemeral-ephemeral DH: %w", err)
	}
	kdf(chainKey[:], ee[:], &chainKey)
	setZero(ee[:])
	se, err := dh(eph, h.remote)
	if err != nil {
		return MessageResponse{}, fmt.Errorf("ephemeral-static DH: %w", err)
	}
	kdf(chainKey[:], se[:], &chainKey)
	setZero(se[:])

	kdf(chainKey[:], h.psk[:], &chainKey, &tau, &key)
	mixHash(&hash, &hash, tau[:])
	aeadSeal(msg.Empty[:0], &key, nil, hash[:])
	mixHash(&hash, &hash, msg.Empty[:])

	h.hash, h.chainKey = hash, chainKey
	// The responder needs neither ephemeral key again.
	setZero(h.remoteEphemeral[:])
	setZero(h.localEphemeral[:])
	h.localIndex = localIndex
	h.state = stateResponseCreated
	return msg, nil
}

// ConsumeResponse completes the handshake started by CreateInitiation.
// msg.Receiver must be the local index of that initiation. On error the
// handshake is unchanged. now is accepted for symmetry with the other
// steps; the response carries no time of its own.
func (h *Handshake) ConsumeResponse(msg *MessageResponse, now time.Time) error {
	_ = now
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state != stateInitiationCreated {
		return fmt.Errorf("%w: no initiation pending (state %v)", ErrState, h.state)
	}
	if msg.Receiver != h.localIndex {
		return fmt.Errorf("%w: response is for index %d, pending initiation has %d", ErrState, msg.Receiver, h.localIndex)
	}

	var hash, chainKey, tau, key [blake2s.Size]byte
	defer setZero(key[:])
	defer setZero(tau[:])
	defer setZero(hash[:])
	defer setZero(chainKey[:])
	hash, chainKey = h.hash, h.chainKey

	kdf(chainKey[:], msg.Ephemeral[:], &chainKey)
	mixHash(&hash, &hash, msg.Ephemeral[:])
	ee, err := dh(h.localEphemeral, msg.Ephemeral)
	if err != nil {
		return fmt.Errorf("response: ephemeral-ephemeral DH: %w", err)
	}
	kdf(chainKey[:], ee[:], &chainKey)
	setZero(ee[:])
	se, err := dh(h.id.private, msg.Ephemeral)
	if err != nil {
		return fmt.Errorf("response: static-ephemeral DH: %w", err)
	}
	kdf(chainKey[:], se[:], &chainKey)
	setZero(se[:])

	kdf(chainKey[:], h.psk[:], &chainKey, &tau, &key)
	mixHash(&hash, &hash, tau[:])
	if _, err := aeadOpen(nil, &key, msg.Empty[:], hash[:]); err != nil {
		return fmt.Errorf("response: %w", err)
	}
	mixHash(&hash, &hash, msg.Empty[:])

	h.hash, h.chainKey = hash, chainKey
	setZero(h.localEphemeral[:])
	h.remoteIndex = msg.Sender
	h.state = stateResponseConsumed
	return nil
}

// BeginSession derives the transport keypair once the handshake is
// complete: after CreateResponse (as responder) or ConsumeResponse (as
// initiator). The handshake secrets are zeroed and its local index moves to
// the keypair.
func (h *Handshake) BeginSession(now time.Time) (*Keypair, error) {
	h.mu.Lock()
	defer h.mu.Unlock()

	var first, second [blake2s.Size]byte
	defer setZero(first[:])
	defer setZero(second[:])
	var initiator bool
	switch h.state {
	case stateResponseConsumed:
		initiator = true
	case stateResponseCreated:
		initiator = false
	default:
		return nil, fmt.Errorf("%w: cannot derive keys in state %v", ErrState, h.state)
	}
	kdf(h.chainKey[:], nil, &first, &second)
	send, recv := &first, &second
	if !initiator {
		send, recv = recv, send
	}
	kp := newKeypair(send, recv, h.localIndex, h.remoteIndex, initiator, now)
	h.clear()
	return kp, nil
}
