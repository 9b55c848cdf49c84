package noise

import (
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"io"
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
// cookie replies. It is safe for concurrent use.
type CookieChecker struct {
	mac1Key   [blake2s.Size]byte
	cookieKey [chacha20poly1305.KeySize]byte // HASH(LABEL_COOKIE || public key)

	mu        sync.Mutex
	rand      io.Reader
	secret    [blake2s.Size]byte
	secretSet time.Time // zero: no secret yet
}

// NewCookieChecker creates a checker for messages sent to local. rand
// supplies the cookie secrets and reply nonces.
func NewCookieChecker(local PublicKey, rand io.Reader) *CookieChecker {
	c := &CookieChecker{rand: rand}
	hashOf(&c.mac1Key, []byte(labelMAC1), local[:])
	hashOf(&c.cookieKey, []byte(labelCookie), local[:])
	return c
}

// CheckMAC1 reports whether msg, a whole marshaled initiation or response,
// carries a valid mac1.
func (c *CookieChecker) CheckMAC1(msg []byte) bool {
	return checkMAC1(&c.mac1Key, msg)
}

// cookieFor computes the cookie of src: the MAC, under the current secret,
// of the source IP address (4 or 16 bytes) followed by the big-endian UDP
// port. IPv4-mapped IPv6 addresses count as IPv4. c.mu must be held.
func (c *CookieChecker) cookieFor(dst *[cookieSize]byte, src netip.AddrPort) {
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
	mac(dst, c.secret[:], buf[:n+2])
}

// secretValid reports whether the secret exists and is younger than
// CookieRefreshTime at now. c.mu must be held.
func (c *CookieChecker) secretValid(now time.Time) bool {
	return !c.secretSet.IsZero() && now.Sub(c.secretSet) < CookieRefreshTime && !now.Before(c.secretSet)
}

// CheckMAC2 reports whether msg carries a mac2 made with the cookie of src
// under the current secret. It fails when no secret is in force at now (none
// issued yet, or older than CookieRefreshTime).
func (c *CookieChecker) CheckMAC2(msg []byte, src netip.AddrPort, now time.Time) bool {
	_, o2, ok := macOffsets(msg)
	if !ok {
		return false
	}
	var cookie [cookieSize]byte
	c.mu.Lock()
	if !c.secretValid(now) {
		c.mu.Unlock()
		return false
	}
	c.cookieFor(&cookie, src)
	c.mu.Unlock()
	var want [macSize]byte
	mac(&want, cookie[:], msg[:o2])
	return subtle.ConstantTimeCompare(want[:], msg[o2:]) == 1
}

// CreateReply makes the cookie reply to msg (a whole marshaled initiation or
// response from src), addressed to receiver (the sender index of msg). The
// cookie is encrypted with XChaCha20-Poly1305 under HASH(LABEL_COOKIE ||
// local public key) with msg's mac1 as associated data. The secret is
// replaced first if it is missing or older than CookieRefreshTime at now.
func (c *CookieChecker) CreateReply(msg []byte, receiver uint32, src netip.AddrPort, now time.Time) (MessageCookieReply, error) {
	var reply MessageCookieReply
	o1, o2, ok := macOffsets(msg)
	if !ok {
		return reply, fmt.Errorf("%w: %d bytes is too short for a handshake message", ErrMalformed, len(msg))
	}
	var cookie [cookieSize]byte
	defer setZero(cookie[:])

	c.mu.Lock()
	if !c.secretValid(now) {
		var s [blake2s.Size]byte
		if _, err := io.ReadFull(c.rand, s[:]); err != nil {
			c.mu.Unlock()
			return reply, fmt.Errorf("noise: new cookie secret: %w", err)
		}
		c.secret = s
		c.secretSet = now
		setZero(s[:])
	}
	c.cookieFor(&cookie, src)
	_, err := io.ReadFull(c.rand, reply.Nonce[:])
	c.mu.Unlock()
	if err != nil {
		return MessageCookieReply{}, fmt.Errorf("noise: cookie reply nonce: %w", err)
	}

	aead, err := chacha20poly1305.NewX(c.cookieKey[:])
	if err != nil {
		panic("noise: xchacha20poly1305 with a 32-byte key cannot fail: " + err.Error())
	}
	reply.Receiver = receiver
	aead.Seal(reply.Cookie[:0], reply.Nonce[:], cookie[:], msg[o1:o2])
	return reply, nil
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
