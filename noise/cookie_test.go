package noise

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
	"time"
)

func testInitiationBytes(seed byte) []byte {
	b := make([]byte, MessageInitiationSize)
	testRand(seed).Read(b)
	b[0], b[1], b[2], b[3] = MessageInitiationType, 0, 0, 0
	return b
}

func TestMAC1(t *testing.T) {
	r := testRand(30)
	resp := mustKey(t, r).PublicKey()
	other := mustKey(t, r).PublicKey()
	checker := NewCookieChecker(resp, r)

	for _, size := range []int{MessageInitiationSize, MessageResponseSize} {
		m := testInitiationBytes(byte(size))[:size]
		NewCookieGenerator(resp).AddMACs(m, epoch)
		if !checker.CheckMAC1(m) {
			t.Fatalf("size %d: valid mac1 refused", size)
		}
		wrong := append([]byte(nil), m...)
		NewCookieGenerator(other).AddMACs(wrong, epoch)
		if checker.CheckMAC1(wrong) {
			t.Fatalf("size %d: mac1 for another key accepted", size)
		}
		for _, i := range []int{0, 5, size - 33, size - 32, size - 17} {
			bad := append([]byte(nil), m...)
			bad[i] ^= 1
			if checker.CheckMAC1(bad) {
				t.Fatalf("size %d: mac1 accepted with byte %d changed", size, i)
			}
		}
		// mac2 is not covered by mac1.
		bad := append([]byte(nil), m...)
		bad[size-1] ^= 1
		if !checker.CheckMAC1(bad) {
			t.Fatalf("size %d: mac1 depends on mac2", size)
		}
		// Without a cookie, mac2 is zero.
		if !isZero(m[size-16:]) {
			t.Fatalf("size %d: mac2 set without a cookie", size)
		}
	}
	for _, n := range []int{0, 3, 35} {
		if checker.CheckMAC1(make([]byte, n)) || checker.CheckMAC2(make([]byte, n), netip.AddrPort{}, epoch) {
			t.Fatalf("%d-byte message passed a MAC check", n)
		}
		if _, err := checker.CreateReply(make([]byte, n), 1, netip.AddrPort{}, epoch); !errors.Is(err, ErrMalformed) {
			t.Fatalf("CreateReply for %d bytes: %v", n, err)
		}
	}
}

// cookieRound has checker reply to a message from gen sent from src and
// returns gen's next message, which carries mac2.
func cookieRound(t *testing.T, checker *CookieChecker, gen *CookieGenerator, src netip.AddrPort, now time.Time, seed byte) []byte {
	t.Helper()
	m := testInitiationBytes(seed)
	gen.AddMACs(m, now)
	reply, err := checker.CreateReply(m, 42, src, now)
	if err != nil {
		t.Fatal(err)
	}
	var parsed MessageCookieReply
	if err := parsed.Unmarshal(reply.MarshalTo(make([]byte, MessageCookieReplySize))); err != nil {
		t.Fatal(err)
	}
	if parsed.Receiver != 42 {
		t.Fatalf("receiver %d", parsed.Receiver)
	}
	if err := gen.ConsumeReply(&parsed, now); err != nil {
		t.Fatalf("ConsumeReply: %v", err)
	}
	m2 := testInitiationBytes(seed + 100)
	gen.AddMACs(m2, now)
	if isZero(m2[MessageInitiationSize-16:]) {
		t.Fatal("mac2 not set with a fresh cookie")
	}
	return m2
}

func TestMAC2SourceBound(t *testing.T) {
	r := testRand(31)
	resp := mustKey(t, r).PublicKey()
	checker := NewCookieChecker(resp, r)
	gen := NewCookieGenerator(resp)
	src := netip.MustParseAddrPort("203.0.113.5:51820")
	m := cookieRound(t, checker, gen, src, epoch, 1)

	if !checker.CheckMAC2(m, src, epoch) {
		t.Fatal("mac2 refused from the same address and port")
	}
	if !checker.CheckMAC2(m, netip.MustParseAddrPort("[::ffff:203.0.113.5]:51820"), epoch) {
		t.Fatal("mac2 refused from the IPv4-mapped form of the same address")
	}
	for _, other := range []string{"203.0.113.5:51821", "203.0.113.6:51820", "[2001:db8::5]:51820", "[::]:0"} {
		if checker.CheckMAC2(m, netip.MustParseAddrPort(other), epoch) {
			t.Fatalf("mac2 accepted from %s", other)
		}
	}
	bad := append([]byte(nil), m...)
	bad[10] ^= 1
	if checker.CheckMAC2(bad, src, epoch) {
		t.Fatal("mac2 accepted for a modified message")
	}

	// IPv6 sources work as well.
	src6 := netip.MustParseAddrPort("[2001:db8::1]:1234")
	m6 := cookieRound(t, checker, gen, src6, epoch, 2)
	if !checker.CheckMAC2(m6, src6, epoch) || checker.CheckMAC2(m6, netip.MustParseAddrPort("[2001:db8::1]:1235"), epoch) {
		t.Fatal("IPv6 mac2 check wrong")
	}
}

func TestCookieSecretRotation(t *testing.T) {
	r := testRand(32)
	resp := mustKey(t, r).PublicKey()
	checker := NewCookieChecker(resp, r)
	gen := NewCookieGenerator(resp)
	src := netip.MustParseAddrPort("203.0.113.5:51820")

	// No secret yet: no mac2 can be valid.
	m0 := testInitiationBytes(9)
	if checker.CheckMAC2(m0, src, epoch) {
		t.Fatal("mac2 accepted before any secret")
	}

	m := cookieRound(t, checker, gen, src, epoch, 3)
	secret1 := checker.secret
	if !checker.CheckMAC2(m, src, epoch.Add(CookieRefreshTime-time.Second)) {
		t.Fatal("mac2 refused before the secret expired")
	}
	if checker.CheckMAC2(m, src, epoch.Add(CookieRefreshTime)) {
		t.Fatal("mac2 accepted once the secret is two minutes old")
	}
	// A reply within the lifetime keeps the secret.
	if _, err := checker.CreateReply(m, 1, src, epoch.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if checker.secret != secret1 {
		t.Fatal("secret changed before two minutes")
	}
	// After two minutes a reply rotates it, and the old cookie no longer
	// works even though the generator still considers it fresh.
	later := epoch.Add(CookieRefreshTime + time.Second)
	m2 := cookieRound(t, checker, gen, src, later, 4)
	if checker.secret == secret1 {
		t.Fatal("secret not rotated after two minutes")
	}
	if !checker.CheckMAC2(m2, src, later) {
		t.Fatal("mac2 with the new cookie refused")
	}
	if checker.CheckMAC2(m, src, later) {
		t.Fatal("mac2 with the old cookie accepted after rotation")
	}
}

func TestCookieGeneratorExpiry(t *testing.T) {
	r := testRand(33)
	resp := mustKey(t, r).PublicKey()
	checker := NewCookieChecker(resp, r)
	gen := NewCookieGenerator(resp)
	src := netip.MustParseAddrPort("203.0.113.5:51820")
	cookieRound(t, checker, gen, src, epoch, 5)

	m := testInitiationBytes(6)
	gen.AddMACs(m, epoch.Add(CookieRefreshTime-time.Millisecond))
	if isZero(m[MessageInitiationSize-16:]) {
		t.Fatal("mac2 not added with a cookie just under two minutes old")
	}
	gen.AddMACs(m, epoch.Add(CookieRefreshTime))
	if !isZero(m[MessageInitiationSize-16:]) {
		t.Fatal("mac2 added with an expired cookie")
	}
}

func TestCookieReplyNeedsMatchingMAC1(t *testing.T) {
	r := testRand(34)
	resp := mustKey(t, r).PublicKey()
	checker := NewCookieChecker(resp, r)
	gen := NewCookieGenerator(resp)
	src := netip.MustParseAddrPort("203.0.113.5:51820")

	m1 := testInitiationBytes(7)
	var reply MessageCookieReply
	var err error
	// No message sent yet.
	if reply, err = checker.CreateReply(m1, 1, src, epoch); err != nil {
		t.Fatal(err)
	}
	if err := gen.ConsumeReply(&reply, epoch); !errors.Is(err, ErrState) {
		t.Fatalf("reply before any message: %v", err)
	}

	gen.AddMACs(m1, epoch)
	reply1, err := checker.CreateReply(m1, 1, src, epoch)
	if err != nil {
		t.Fatal(err)
	}
	// The generator has since sent another message: the reply to the
	// first one no longer matches.
	m2 := testInitiationBytes(8)
	gen.AddMACs(m2, epoch)
	if err := gen.ConsumeReply(&reply1, epoch); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("reply to an older message: %v", err)
	}
	// A reply made by a checker for another key fails.
	wrong, err := NewCookieChecker(mustKey(t, r).PublicKey(), r).CreateReply(m2, 1, src, epoch)
	if err != nil {
		t.Fatal(err)
	}
	if err := gen.ConsumeReply(&wrong, epoch); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("reply under another key: %v", err)
	}
	// A tampered reply fails.
	reply2, err := checker.CreateReply(m2, 1, src, epoch)
	if err != nil {
		t.Fatal(err)
	}
	tampered := reply2
	tampered.Nonce[0] ^= 1
	if err := gen.ConsumeReply(&tampered, epoch); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("tampered reply: %v", err)
	}
	// The matching one works, once.
	if err := gen.ConsumeReply(&reply2, epoch); err != nil {
		t.Fatalf("matching reply: %v", err)
	}
	if err := gen.ConsumeReply(&reply2, epoch); !errors.Is(err, ErrState) {
		t.Fatalf("second reply to the same message: %v", err)
	}
	m3 := testInitiationBytes(10)
	gen.AddMACs(m3, epoch)
	if !checker.CheckMAC2(m3, src, epoch) {
		t.Fatal("mac2 refused after a good reply")
	}
}

func TestCreateReplyRandError(t *testing.T) {
	resp := mustKey(t, testRand(35)).PublicKey()
	checker := NewCookieChecker(resp, bytes.NewReader(make([]byte, 40)))
	m := testInitiationBytes(1)
	// Less than the secret and the nonce seed: fails cleanly.
	if _, err := checker.CreateReply(m, 1, netip.MustParseAddrPort("192.0.2.1:1"), epoch); err == nil {
		t.Fatal("CreateReply succeeded with an exhausted random source")
	}
}
