package noise

import (
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/chacha20poly1305"
)

// Every handshake message ends with mac1 and mac2 (whitepaper section 5.4).
// mac1 = MAC(HASH(LABEL_MAC1 || receiver's public key), msg before mac1)
// proves the sender knows whom it talks to. mac2 = MAC(cookie, msg before
// mac2) proves, when the receiver is under load, that the sender owns its
// source address: the cookie is a MAC of that address under a secret the
// receiver rotates every two minutes, sent encrypted in a cookie reply.

// macOffsets returns where mac1 and mac2 start in a handshake message.
func macOffsets(msg []byte) (mac1, mac2 int, ok bool) {
	if len(msg) < 4+2*macSize {
		return 0, 0, false
	}
	return len(msg) - 2*macSize, len(msg) - macSize, true
}

func checkMAC1(key *[blake2s.Size]byte, msg []byte) bool {
	o1, o2, ok := macOffsets(msg)
	if !ok {
		return false
	}
	var want [macSize]byte
	mac(&want, key[:], msg[:o1])
	return subtle.ConstantTimeCompare(want[:], msg[o1:o2]) == 1
}

// CookieChecker is the receiving side of the MAC scheme: it checks mac1
// and mac2 of handshake messages sent to the local public key and creates
// cookie replies. It is safe for concurrent use (a device calls it from
// every receive goroutine): the mutex only guards copying the current
// secret and drawing a nonce, and the MACs and the encryption are computed
// outside it. Checking and replying do not allocate.
type CookieChecker struct {
	mac1Key macKey             // HASH(LABEL_MAC1 || public key), absorbed
	aead    cipher.AEAD        // XChaCha20-Poly1305 under HASH(LABEL_COOKIE || public key)
	rand    io.Reader          // secrets and nonce seeds
	mu      sync.Mutex         // guards what follows
	secret  [blake2s.Size]byte // the current cookie secret
	secKey  macKey             // secret, absorbed as a MAC key
	nonces  *mrand.ChaCha8     // reply nonces, reseeded from rand with every secret
	setAt   time.Time          // when secret was made; zero: no secret yet
}

// NewCookieChecker creates a checker for messages sent to local. rand
// supplies the cookie secrets and seeds the reply nonces.
func NewCookieChecker(local PublicKey, rand io.Reader) *CookieChecker {
	var k [blake2s.Size]byte
	hashOf(&k, []byte(labelMAC1), local[:])
	c := &CookieChecker{rand: rand, mac1Key: newMACKey(k[:])}
	hashOf(&k, []byte(labelCookie), local[:])
	aead, err := chacha20poly1305.NewX(k[:])
	if err != nil {
		panic("noise: xchacha20poly1305 with a 32-byte key cannot fail: " + err.Error())
	}
	c.aead = aead
	return c
}

// CheckMAC1 reports whether msg, a whole marshaled initiation or response,
// carries a valid mac1.
func (c *CookieChecker) CheckMAC1(msg []byte) bool {
	o1, o2, ok := macOffsets(msg)
	if !ok {
		return false
	}
	var want [macSize]byte
	c.mac1Key.sum(&want, msg[:o1])
	return subtle.ConstantTimeCompare(want[:], msg[o1:o2]) == 1
}

// cookieFor computes the cookie of src under the secret absorbed in key:
// the MAC of the source IP address (4 or 16 bytes) followed by the
// big-endian UDP port. IPv4-mapped IPv6 addresses count as IPv4.
func cookieFor(dst *[cookieSize]byte, key *macKey, src netip.AddrPort) {
	var buf [16 + 2]byte
	addr := src.Addr().Unmap()
	var n int
	if addr.Is4() {
		a := addr.As4()
		n = copy(buf[:], a[:])
	} else {
		a := addr.As16()
		n = copy(buf[:], a[:])
	}
	binary.BigEndian.PutUint16(buf[n:], src.Port())
	key.sum(dst, buf[:n+2])
}

// secretValid reports whether the secret exists and is younger than
// CookieRefreshTime at now. c.mu must be held.
func (c *CookieChecker) secretValid(now time.Time) bool {
	return !c.setAt.IsZero() && now.Sub(c.setAt) < CookieRefreshTime && !now.Before(c.setAt)
}

// CheckMAC2 reports whether msg carries a mac2 made with the cookie of src
// under the current secret. It fails when no secret is in force at now (none
// issued yet, or older than CookieRefreshTime).
func (c *CookieChecker) CheckMAC2(msg []byte, src netip.AddrPort, now time.Time) bool {
	_, o2, ok := macOffsets(msg)
	if !ok {
		return false
	}
	// A sender without a cookie leaves mac2 zero, as every message of a
	// flood from spoofed addresses does: no need to compute what it would
	// have to be (a real mac2 is zero with probability 2^-128).
	if isZero(msg[o2:]) {
		return false
	}
	c.mu.Lock()
	if !c.secretValid(now) {
		c.mu.Unlock()
		return false
	}
	key := c.secKey
	c.mu.Unlock()
	var cookie [cookieSize]byte
	cookieFor(&cookie, &key, src)
	var want [macSize]byte
	macWith(&want, cookie[:], msg[:o2])
	setZero(cookie[:])
	clear(key.h[:])
	return subtle.ConstantTimeCompare(want[:], msg[o2:]) == 1
}

// CreateReply makes the cookie reply to msg (a whole marshaled initiation or
// response from src), addressed to receiver (the sender index of msg). The
// cookie is encrypted with XChaCha20-Poly1305 under HASH(LABEL_COOKIE ||
// local public key) with msg's mac1 as associated data. The secret is
// replaced first if it is missing or older than CookieRefreshTime at now.
func (c *CookieChecker) CreateReply(msg []byte, receiver uint32, src netip.AddrPort, now time.Time) (MessageCookieReply, error) {
	var b [MessageCookieReplySize]byte
	if err := c.writeReply(&b, msg, receiver, src, now); err != nil {
		return MessageCookieReply{}, err
	}
	var reply MessageCookieReply
	if err := reply.Unmarshal(b[:]); err != nil {
		panic("noise: a marshaled cookie reply does not parse: " + err.Error())
	}
	return reply, nil
}

// WriteReply writes the cookie reply to msg, a whole marshaled initiation
// or response from src, into dst, addressed to msg's sender index. It is
// CreateReply and MarshalTo in one, without allocating.
func (c *CookieChecker) WriteReply(dst *[MessageCookieReplySize]byte, msg []byte, src netip.AddrPort, now time.Time) error {
	if len(msg) < 8 {
		return fmt.Errorf("%w: %d bytes is too short for a handshake message", ErrMalformed, len(msg))
	}
	return c.writeReply(dst, msg, binary.LittleEndian.Uint32(msg[4:8]), src, now)
}

func (c *CookieChecker) writeReply(dst *[MessageCookieReplySize]byte, msg []byte, receiver uint32, src netip.AddrPort, now time.Time) error {
	o1, o2, ok := macOffsets(msg)
	if !ok {
		return fmt.Errorf("%w: %d bytes is too short for a handshake message", ErrMalformed, len(msg))
	}
	putHeader(dst[:], MessageCookieReplyType)
	binary.LittleEndian.PutUint32(dst[4:8], receiver)
	nonce := dst[8 : 8+chacha20poly1305.NonceSizeX]
	sealed := dst[8+chacha20poly1305.NonceSizeX:]

	c.mu.Lock()
	if !c.secretValid(now) {
		if err := c.rotateLocked(now); err != nil {
			c.mu.Unlock()
			return err
		}
	}
	key := c.secKey
	// A nonce from a ChaCha8 stream seeded from rand: unique with
	// overwhelming probability, without a system call per reply.
	for i := 0; i < len(nonce); i += 8 {
		binary.LittleEndian.PutUint64(nonce[i:], c.nonces.Uint64())
	}
	c.mu.Unlock()

	// The cookie is computed where its ciphertext goes and sealed in
	// place: no buffer of ours escapes into the AEAD interface.
	cookieFor((*[cookieSize]byte)(sealed[:cookieSize]), &key, src)
	c.aead.Seal(sealed[:0], nonce, sealed[:cookieSize], msg[o1:o2])
	clear(key.h[:])
	return nil
}

// rotateLocked replaces the secret and reseeds the nonces. c.mu must be
// held.
func (c *CookieChecker) rotateLocked(now time.Time) error {
	var s [blake2s.Size + 32]byte
	defer setZero(s[:])
	if _, err := io.ReadFull(c.rand, s[:]); err != nil {
		return fmt.Errorf("noise: new cookie secret: %w", err)
	}
	copy(c.secret[:], s[:blake2s.Size])
	c.secKey = newMACKey(c.secret[:])
	seed := [32]byte(s[blake2s.Size:])
	if c.nonces == nil {
		c.nonces = mrand.NewChaCha8(seed)
	} else {
		c.nonces.Seed(seed)
	}
	setZero(seed[:])
	c.setAt = now
	return nil
}

// CookieGenerator is the sending side of the MAC scheme for one peer: it
// adds mac1 (and mac2 while it holds a fresh cookie) to handshake messages
// sent to that peer, and takes cookies from its replies. It is safe for
// concurrent use.
type CookieGenerator struct {
	mac1Key   [blake2s.Size]byte
	cookieKey [chacha20poly1305.KeySize]byte

	mu          sync.Mutex
	cookie      [cookieSize]byte
	cookieSet   time.Time // zero: no cookie
	lastMAC1    [macSize]byte
	hasLastMAC1 bool
}

// NewCookieGenerator creates the generator for messages sent to remote.
func NewCookieGenerator(remote PublicKey) *CookieGenerator {
	g := &CookieGenerator{}
	hashOf(&g.mac1Key, []byte(labelMAC1), remote[:])
	hashOf(&g.cookieKey, []byte(labelCookie), remote[:])
	return g
}

// AddMACs fills the mac1 and mac2 fields at the end of msg, a whole
// marshaled initiation or response. mac2 is set from the cookie if one
// younger than CookieRefreshTime is held at now, and zeroed otherwise. The
// mac1 is remembered to authenticate a cookie reply to this message.
// Messages too short to hold the MACs are left alone.
func (g *CookieGenerator) AddMACs(msg []byte, now time.Time) {
	o1, o2, ok := macOffsets(msg)
	if !ok {
		return
	}
	var m [macSize]byte
	mac(&m, g.mac1Key[:], msg[:o1])
	copy(msg[o1:o2], m[:])

	g.mu.Lock()
	defer g.mu.Unlock()
	g.lastMAC1 = m
	g.hasLastMAC1 = true
	if g.cookieSet.IsZero() || now.Before(g.cookieSet) || now.Sub(g.cookieSet) >= CookieRefreshTime {
		clear(msg[o2:])
		return
	}
	mac(&m, g.cookie[:], msg[:o2])
	copy(msg[o2:], m[:])
}

// ConsumeReply decrypts a cookie reply to the last message passed to
// AddMACs and keeps its cookie (received at now) for later mac2 fields.
// Each sent message accepts at most one reply; on error nothing changes.
func (g *CookieGenerator) ConsumeReply(r *MessageCookieReply, now time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.hasLastMAC1 {
		return fmt.Errorf("%w: cookie reply without a handshake message awaiting one", ErrState)
	}
	aead, err := chacha20poly1305.NewX(g.cookieKey[:])
	if err != nil {
		panic("noise: xchacha20poly1305 with a 32-byte key cannot fail: " + err.Error())
	}
	var cookie [cookieSize]byte
	if _, err := aead.Open(cookie[:0], r.Nonce[:], r.Cookie[:], g.lastMAC1[:]); err != nil {
		return fmt.Errorf("cookie reply: %w", ErrDecrypt)
	}
	g.cookie = cookie
	g.cookieSet = now
	g.hasLastMAC1 = false
	setZero(cookie[:])
	return nil
}
