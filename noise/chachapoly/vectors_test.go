package chachapoly

import (
	"bytes"
	"crypto/cipher"
	"encoding/hex"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"testing"

	"golang.org/x/crypto/chacha20"
	"golang.org/x/crypto/chacha20poly1305"
	//lint:ignore SA1019 the raw Poly1305 is what RFC 8439 A.3 tests.
	"golang.org/x/crypto/poly1305"
)

// aeadPath is one implementation of the AEAD and of its two parts.
type aeadPath struct {
	name  string
	skip  string        // why it cannot run here, or ""
	setup func() func() // selects the path and returns the undo, or nil
	aead  func(key []byte) cipher.AEAD
	// xor XORs the ChaCha20 keystream from block ctr into src.
	xor func(t *testing.T, key, nonce []byte, ctr uint32, dst, src []byte)
	// mac is the raw Poly1305 of msg (RFC 8439 2.5).
	mac func(key *[32]byte, msg []byte) [16]byte
}

// vectorPaths are our paths (ourPaths, per build) and x/crypto's, which
// New returns without our assembly or when x/crypto is forced.
func vectorPaths() []aeadPath {
	return append(ourPaths(), aeadPath{
		name: "x-crypto",
		aead: func(key []byte) cipher.AEAD {
			a, err := chacha20poly1305.New(key)
			if err != nil {
				panic(err)
			}
			return a
		},
		xor: func(t *testing.T, key, nonce []byte, ctr uint32, dst, src []byte) {
			c, err := chacha20.NewUnauthenticatedCipher(key, nonce)
			if err != nil {
				t.Fatal(err)
			}
			c.SetCounter(ctr)
			c.XORKeyStream(dst, src)
		},
		mac: func(key *[32]byte, msg []byte) (tag [16]byte) {
			poly1305.Sum(&tag, msg, key)
			return tag
		},
	})
}

// forEachVectorPath runs f on every path, as subtests; a path this
// machine or build cannot run is a skip that names the reason (listed by
// go test -v, which make test runs for these tests).
func forEachVectorPath(t *testing.T, f func(t *testing.T, p aeadPath)) {
	for _, p := range vectorPaths() {
		t.Run(p.name, func(t *testing.T) {
			if p.skip != "" {
				t.Skip(p.skip)
			}
			if p.setup != nil {
				defer p.setup()()
			}
			f(t, p)
		})
	}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex in test vector: %v", err)
	}
	return b
}

func loadJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func panics(f func()) (panicked bool) {
	defer func() { panicked = recover() != nil }()
	f()
	return false
}

// checkUntouched fails unless every byte of out is what it was before
// (before[i]) or zero: a failed Open must leave no plaintext behind.
func checkUntouched(t *testing.T, what string, out, before []byte) {
	t.Helper()
	for i := range out {
		if out[i] != before[i] && out[i] != 0 {
			t.Errorf("%s: a failed Open wrote %#02x at byte %d (was %#02x)", what, out[i], i, before[i])
			return
		}
	}
}

type wycheproofAEAD struct {
	Algorithm     string `json:"algorithm"`
	NumberOfTests int    `json:"numberOfTests"`
	TestGroups    []struct {
		IvSize  int `json:"ivSize"`
		KeySize int `json:"keySize"`
		TagSize int `json:"tagSize"`
		Tests   []struct {
			TcID   int      `json:"tcId"`
			Flags  []string `json:"flags"`
			Key    string   `json:"key"`
			IV     string   `json:"iv"`
			AAD    string   `json:"aad"`
			Msg    string   `json:"msg"`
			CT     string   `json:"ct"`
			Tag    string   `json:"tag"`
			Result string   `json:"result"`
		} `json:"tests"`
	} `json:"testGroups"`
}

// TestWycheproof runs Project Wycheproof's ChaCha20-Poly1305 vectors on
// every path: Seal into a new slice and in place, Open into a new slice,
// after a prefix and in place; for the invalid ones, that Open fails and
// leaves neither destination holding plaintext; for nonces of the wrong
// size, that Seal and Open panic.
func TestWycheproof(t *testing.T) {
	var file wycheproofAEAD
	loadJSON(t, "testdata/wycheproof/chacha20_poly1305_test.json", &file)
	n := 0
	for _, g := range file.TestGroups {
		n += len(g.Tests)
	}
	if file.Algorithm != "CHACHA20-POLY1305" || n != file.NumberOfTests || n < 300 {
		t.Fatalf("%s: %d tests, file says %d", file.Algorithm, n, file.NumberOfTests)
	}
	forEachVectorPath(t, func(t *testing.T, p aeadPath) {
		counts := map[string]int{}
		for _, g := range file.TestGroups {
			if g.KeySize != 8*KeySize || g.TagSize != 8*Overhead {
				t.Fatalf("unexpected group: key %d bits, tag %d bits", g.KeySize, g.TagSize)
			}
			for _, v := range g.Tests {
				key, iv, aad := unhex(t, v.Key), unhex(t, v.IV), unhex(t, v.AAD)
				msg, sealed := unhex(t, v.Msg), unhex(t, v.CT+v.Tag)
				a := p.aead(key)
				switch {
				case g.IvSize != 8*NonceSize:
					if v.Result != "invalid" {
						t.Fatalf("tcId %d: a %d-bit nonce marked %s", v.TcID, g.IvSize, v.Result)
					}
					if !panics(func() { a.Seal(nil, iv, msg, aad) }) || !panics(func() { a.Open(nil, iv, sealed, aad) }) {
						t.Errorf("tcId %d: a %d-bit nonce did not panic", v.TcID, g.IvSize)
					}
					counts["bad nonce size"]++
				case v.Result == "valid":
					checkValid(t, v.TcID, a, iv, aad, msg, sealed)
					counts["valid"]++
				case v.Result == "invalid":
					checkInvalid(t, v.TcID, a, iv, aad, len(msg), sealed)
					counts["invalid"]++
				default:
					t.Fatalf("tcId %d: result %q", v.TcID, v.Result)
				}
			}
		}
		t.Logf("%d vectors: %v", n, counts)
	})
}

func checkValid(t *testing.T, id int, a cipher.AEAD, iv, aad, msg, sealed []byte) {
	t.Helper()
	if got := a.Seal(nil, iv, msg, aad); !bytes.Equal(got, sealed) {
		t.Errorf("tcId %d: Seal = %x, want %x", id, got, sealed)
	}
	buf := make([]byte, len(sealed))
	copy(buf, msg)
	if got := a.Seal(buf[:0], iv, buf[:len(msg)], aad); !bytes.Equal(got, sealed) {
		t.Errorf("tcId %d: Seal in place = %x, want %x", id, got, sealed)
	}
	if got, err := a.Open(nil, iv, sealed, aad); err != nil || !bytes.Equal(got, msg) {
		t.Errorf("tcId %d: Open = %x, %v; want %x", id, got, err, msg)
	}
	prefix := []byte{1, 2, 3}
	if got, err := a.Open(prefix, iv, sealed, aad); err != nil || !bytes.Equal(got, append([]byte{1, 2, 3}, msg...)) {
		t.Errorf("tcId %d: Open after a prefix = %x, %v", id, got, err)
	}
	copy(buf, sealed)
	if got, err := a.Open(buf[:0], iv, buf, aad); err != nil || !bytes.Equal(got, msg) {
		t.Errorf("tcId %d: Open in place = %x, %v; want %x", id, got, err, msg)
	}
}

func checkInvalid(t *testing.T, id int, a cipher.AEAD, iv, aad []byte, n int, sealed []byte) {
	t.Helper()
	dst := bytes.Repeat([]byte{0xa5}, 5+n+Overhead)
	before := slices.Clone(dst)
	if got, err := a.Open(dst[:5], iv, sealed, aad); err == nil || got != nil {
		t.Errorf("tcId %d: Open accepted an invalid message", id)
	}
	checkUntouched(t, "tcId "+strconv.Itoa(id)+", Open into dst", dst, before)
	buf := slices.Clone(sealed)
	if got, err := a.Open(buf[:0], iv, buf, aad); err == nil || got != nil {
		t.Errorf("tcId %d: Open in place accepted an invalid message", id)
	}
	checkUntouched(t, "tcId "+strconv.Itoa(id)+", Open in place", buf, sealed)
}

type rfc8439 struct {
	ChaCha20Block []struct {
		Name, Key, Nonce, Keystream string
		Counter                     uint32
	}
	ChaCha20Encrypt []struct {
		Name, Key, Nonce, Plaintext, PlaintextText, Ciphertext string
		Counter                                                uint32
	}
	Poly1305 []struct {
		Name, Key, Msg, MsgText, Tag string
	}
	Poly1305KeyGen []struct {
		Name, Key, Nonce, OneTimeKey string
	}
	AEAD []struct {
		Name, Key, Nonce, AAD, Ciphertext, Tag, PlaintextText string
	}
}

// textOrHex is text when it is set, the bytes of hx otherwise.
func textOrHex(t *testing.T, text, hx string) []byte {
	if text != "" {
		return []byte(text)
	}
	return unhex(t, hx)
}

// TestRFC8439 runs every test vector of RFC 8439 appendix A on every
// path: the ChaCha20 block function (A.1) and encryption (A.2), Poly1305
// (A.3), the one-time key (A.4) and the AEAD (A.5, opened into a new
// slice and in place, sealed, and refused with a changed tag).
func TestRFC8439(t *testing.T) {
	var v rfc8439
	loadJSON(t, "testdata/rfc8439_appendix_a.json", &v)
	if len(v.ChaCha20Block) != 5 || len(v.ChaCha20Encrypt) != 3 || len(v.Poly1305) != 11 || len(v.Poly1305KeyGen) != 4 || len(v.AEAD) != 1 {
		t.Fatal("testdata/rfc8439_appendix_a.json does not hold all of appendix A")
	}
	forEachVectorPath(t, func(t *testing.T, p aeadPath) {
		for _, c := range v.ChaCha20Block {
			want := unhex(t, c.Keystream)
			got := make([]byte, len(want))
			p.xor(t, unhex(t, c.Key), unhex(t, c.Nonce), c.Counter, got, make([]byte, len(want)))
			if !bytes.Equal(got, want) {
				t.Errorf("%s: keystream %x, want %x", c.Name, got, want)
			}
		}
		for _, c := range v.ChaCha20Encrypt {
			plain, want := textOrHex(t, c.PlaintextText, c.Plaintext), unhex(t, c.Ciphertext)
			if len(plain) != len(want) {
				t.Fatalf("%s: %d bytes of plaintext, %d of ciphertext", c.Name, len(plain), len(want))
			}
			got := make([]byte, len(plain))
			p.xor(t, unhex(t, c.Key), unhex(t, c.Nonce), c.Counter, got, plain)
			if !bytes.Equal(got, want) {
				t.Errorf("%s: ciphertext %x, want %x", c.Name, got, want)
			}
		}
		for _, c := range v.Poly1305 {
			if got, want := p.mac((*[32]byte)(unhex(t, c.Key)), textOrHex(t, c.MsgText, c.Msg)), unhex(t, c.Tag); !bytes.Equal(got[:], want) {
				t.Errorf("%s: tag %x, want %x", c.Name, got, want)
			}
		}
		for _, c := range v.Poly1305KeyGen {
			got := make([]byte, 32)
			p.xor(t, unhex(t, c.Key), unhex(t, c.Nonce), 0, got, make([]byte, 32))
			if want := unhex(t, c.OneTimeKey); !bytes.Equal(got, want) {
				t.Errorf("%s: one-time key %x, want %x", c.Name, got, want)
			}
		}
		for _, c := range v.AEAD {
			a, iv, aad := p.aead(unhex(t, c.Key)), unhex(t, c.Nonce), unhex(t, c.AAD)
			sealed, plain := unhex(t, c.Ciphertext+c.Tag), []byte(c.PlaintextText)
			checkValid(t, 0, a, iv, aad, plain, sealed)
			sealed[len(sealed)-1] ^= 1
			checkInvalid(t, 0, a, iv, aad, len(plain), sealed)
		}
	})
}
