package noise

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestGeneratePrivateKeyNilRand(t *testing.T) {
	a, err := GeneratePrivateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := GeneratePrivateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.IsZero() || a == b {
		t.Fatal("nil rand did not give fresh random keys")
	}
	if a[0]&7 != 0 || a[31]&128 != 0 || a[31]&64 == 0 {
		t.Fatalf("key not clamped: %x", a[:])
	}
}

// leaks reports which textual forms of key appear in s.
func leaks(s string, key [KeySize]byte) []string {
	forms := map[string]string{
		"hex":     hex.EncodeToString(key[:]),
		"HEX":     strings.ToUpper(hex.EncodeToString(key[:])),
		"base64":  base64.StdEncoding.EncodeToString(key[:]),
		"decimal": strings.Trim(fmt.Sprint(key[:]), "[]"),
	}
	var found []string
	for name, f := range forms {
		// Any 8 consecutive characters of the form (6 bytes of hex).
		for i := 0; i+12 <= len(f); i++ {
			if strings.Contains(s, f[i:i+12]) {
				found = append(found, name)
				break
			}
		}
	}
	return found
}

func TestSecretKeysRedacted(t *testing.T) {
	priv, err := GeneratePrivateKey(testRand(7))
	if err != nil {
		t.Fatal(err)
	}
	var psk PresharedKey
	testRand(8).Read(psk[:])
	type holder struct {
		Priv PrivateKey
		PSK  PresharedKey
		List []PresharedKey
	}
	h := holder{Priv: priv, PSK: psk, List: []PresharedKey{psk}}
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v", "%10.3v", "%08x"} {
		out = append(out, fmt.Sprintf(verb, priv), fmt.Sprintf(verb, psk), fmt.Sprintf(verb, h), fmt.Sprintf(verb, &h))
	}
	out = append(out, priv.String(), priv.GoString(), psk.String(), psk.GoString(), fmt.Sprint(priv, psk), fmt.Sprintln(priv, psk))
	var logs bytes.Buffer
	for _, hd := range []slog.Handler{slog.NewTextHandler(&logs, nil), slog.NewJSONHandler(&logs, nil)} {
		slog.New(hd).Info("keys", "priv", priv, "psk", psk, "holder", h)
	}
	j, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, logs.String(), string(j))
	for _, s := range out {
		if l := append(leaks(s, priv), leaks(s, psk)...); len(l) > 0 {
			t.Errorf("%s form of a secret key in %q", l, s)
		}
	}
	if !strings.Contains(fmt.Sprint(priv), "redacted") || fmt.Sprint(PrivateKey{}) != "PrivateKey(unset)" {
		t.Errorf("String: %v, %v", priv, PrivateKey{})
	}
	// The explicit encodings still give the key.
	if k, err := ParsePrivateKey(priv.Base64()); err != nil || k != priv {
		t.Errorf("Base64 round trip: %v", err)
	}
	if k, err := ParsePresharedKey(psk.Hex()); err != nil || k != psk {
		t.Errorf("Hex round trip: %v", err)
	}
}

// FuzzParseKey checks ParseKey against the standard decoders: it accepts
// exactly the 64-character hex and 44-character padded base64 strings of
// 32 bytes, with the same bytes, and names the key format otherwise.
func FuzzParseKey(f *testing.F) {
	k := [KeySize]byte{1, 2, 3, 250}
	f.Add(hex.EncodeToString(k[:]))
	f.Add(strings.ToUpper(hex.EncodeToString(k[:])))
	f.Add(base64.StdEncoding.EncodeToString(k[:]))
	f.Add(base64.RawStdEncoding.EncodeToString(k[:]) + "A")
	f.Add(strings.Repeat("=", 44))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseKey(s)
		var want []byte
		var refErr error
		switch len(s) {
		case 2 * KeySize:
			want, refErr = hex.DecodeString(s)
		case 44:
			want, refErr = base64.StdEncoding.DecodeString(s)
			if refErr == nil && len(want) != KeySize {
				refErr = errors.New("not 32 bytes")
			}
		default:
			refErr = errors.New("wrong length")
		}
		if (err == nil) != (refErr == nil) {
			t.Fatalf("ParseKey(%q): %v, reference: %v", s, err, refErr)
		}
		if err != nil {
			if !errors.Is(err, ErrKeyFormat) {
				t.Fatalf("error %v does not wrap ErrKeyFormat", err)
			}
			return
		}
		if !bytes.Equal(got[:], want) {
			t.Fatalf("ParseKey(%q) = %x, want %x", s, got, want)
		}
	})
}
