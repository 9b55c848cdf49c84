package noise

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"slices"
	"testing"

	"golang.org/x/crypto/curve25519"

	"github.com/gotatun/gotatun/internal/cryptoimpl"
)

type wycheproofXDH struct {
	Algorithm     string `json:"algorithm"`
	NumberOfTests int    `json:"numberOfTests"`
	TestGroups    []struct {
		Curve string `json:"curve"`
		Tests []struct {
			TcID    int      `json:"tcId"`
			Flags   []string `json:"flags"`
			Public  string   `json:"public"`
			Private string   `json:"private"`
			Shared  string   `json:"shared"`
			Result  string   `json:"result"`
		} `json:"tests"`
	} `json:"testGroups"`
}

// TestWycheproofX25519 runs Project Wycheproof's X25519 vectors through
// our ladder, x/crypto's X25519 and dh with either of them selected, and
// derives each private key's public key both ways. Every vector must give
// its shared value; dh and x/crypto must refuse exactly those flagged
// ZeroSharedSecret, which include every LowOrderPublic one, and accept the
// non-canonical and twist points that do not give zero.
func TestWycheproofX25519(t *testing.T) {
	data, err := os.ReadFile("testdata/wycheproof/x25519_test.json")
	if err != nil {
		t.Fatal(err)
	}
	var file wycheproofXDH
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	modes := []bool{false, true} // x/crypto forced
	if cryptoimpl.XCrypto() {
		t.Log("x/crypto is forced in this build or environment: dh is checked with x/crypto only; the ladder directly")
		modes = []bool{true}
	}
	n := 0
	counts := map[string]int{}
	for _, g := range file.TestGroups {
		if g.Curve != "curve25519" {
			t.Fatalf("curve %q", g.Curve)
		}
		for _, v := range g.Tests {
			n++
			var priv, pub, shared [32]byte
			for _, f := range []struct {
				dst *[32]byte
				s   string
			}{{&priv, v.Private}, {&pub, v.Public}, {&shared, v.Shared}} {
				if b, err := hex.DecodeString(f.s); err != nil || len(b) != 32 {
					t.Fatalf("tcId %d: bad hex %q", v.TcID, f.s)
				} else {
					copy(f.dst[:], b)
				}
			}
			zero := slices.Contains(v.Flags, "ZeroSharedSecret")
			if v.Result == "invalid" || zero != isZero(shared[:]) ||
				slices.Contains(v.Flags, "LowOrderPublic") && !zero {
				t.Fatalf("tcId %d: result %s, flags %v, shared %x: not what this test expects of the file", v.TcID, v.Result, v.Flags, shared)
			}

			var got [32]byte
			x25519Ladder(&got, &priv, &pub)
			if got != shared {
				t.Errorf("tcId %d (%v): ladder gives %x, want %x", v.TcID, v.Flags, got, shared)
			}
			ref, err := curve25519.X25519(priv[:], pub[:])
			if zero != (err != nil) || err == nil && !bytes.Equal(ref, shared[:]) {
				t.Errorf("tcId %d (%v): x/crypto gives %x, %v", v.TcID, v.Flags, ref, err)
			}
			for _, xc := range modes {
				old := cryptoimpl.Set(xc)
				out, err := dh(PrivateKey(priv), PublicKey(pub))
				cryptoimpl.Set(old)
				switch {
				case zero && err != ErrInvalidKey:
					t.Errorf("tcId %d (%v), x/crypto %v: dh error %v, want ErrInvalidKey", v.TcID, v.Flags, xc, err)
				case !zero && (err != nil || out != shared):
					t.Errorf("tcId %d (%v), x/crypto %v: dh = %x, %v; want %x", v.TcID, v.Flags, xc, out, err, shared)
				}
			}

			var pubEd, pubLadder [32]byte
			x25519Edwards(&pubEd, &priv)
			x25519Ladder(&pubLadder, &priv, &[32]byte{9})
			refPub, _ := curve25519.X25519(priv[:], curve25519.Basepoint)
			if pubEd != pubLadder || !bytes.Equal(pubEd[:], refPub) {
				t.Errorf("tcId %d: public key %x (Edwards), %x (ladder), %x (x/crypto)", v.TcID, pubEd, pubLadder, refPub)
			}
			for _, f := range v.Flags {
				counts[f]++
			}
			if zero {
				counts["refused"]++
			}
		}
	}
	if file.Algorithm != "XDH" || n != file.NumberOfTests || n < 500 {
		t.Fatalf("%s: %d tests, file says %d", file.Algorithm, n, file.NumberOfTests)
	}
	t.Logf("%d vectors, by flag: %v", n, counts)
}
