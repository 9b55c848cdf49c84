package uapi

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

// secretForms are the textual forms of hexPriv a leak could take.
func secretForms(t *testing.T) []string {
	t.Helper()
	raw, err := hex.DecodeString(hexPriv)
	if err != nil {
		t.Fatal(err)
	}
	return []string{hexPriv, strings.ToUpper(hexPriv), base64.StdEncoding.EncodeToString(raw)}
}

// leaked reports whether s holds 8 or more consecutive characters of a
// form of the secret.
func leaked(s string, forms []string) bool {
	for _, f := range forms {
		for i := 0; i+8 <= len(f); i++ {
			if strings.Contains(s, f[i:i+8]) {
				return true
			}
		}
	}
	return false
}

// secretInputs put the secret key hexPriv, whole or damaged, wherever a
// set transaction can go wrong.
func secretInputs(t *testing.T) map[string]string {
	b64 := secretForms(t)[2]
	peer := "public_key=" + hexPub1 + "\n"
	return map[string]string{
		"private_key after public_key":  peer + "private_key=" + hexPriv + "\n",
		"preshared_key before a peer":   "preshared_key=" + hexPriv + "\n",
		"private_key not hex":           "private_key=" + hexPriv[:40] + "g" + hexPriv[41:] + "\n",
		"private_key short":             "private_key=" + hexPriv[:62] + "\n",
		"private_key long":              "private_key=" + hexPriv + "00\n",
		"private_key base64":            "private_key=" + b64 + "\n",
		"preshared_key not hex":         peer + "preshared_key=" + hexPriv[:63] + "z\n",
		"preshared_key base64":          peer + "preshared_key=" + b64 + "\n",
		"misspelt private key":          "privatekey=" + hexPriv + "\n",
		"misspelt preshared key":        peer + "presharedkey=" + hexPriv + "\n",
		"no equals sign":                "private_key " + hexPriv + "\n",
		"bare key":                      hexPriv + "\n",
		"key as the key name":           hexPriv + "=1\n",
		"key in public_key":             "public_key=" + hexPriv[:63] + "q\n",
		"key in endpoint":               peer + "endpoint=" + hexPriv + "\n",
		"key in allowed_ip":             peer + "allowed_ip=" + hexPriv + "\n",
		"key in listen_port":            "listen_port=" + hexPriv + "\n",
		"key in remove":                 peer + "remove=" + hexPriv + "\n",
		"key in keepalive":              peer + "persistent_keepalive_interval=" + b64 + "\n",
		"private_key twice after error": "listen_port=x\nprivate_key=" + hexPriv + "\n",
		"key in replace_peers":          "replace_peers=" + hexPriv + "\n",
		"key in protocol_version":       peer + "protocol_version=" + hexPriv + "\n",
		"device key with key in fwmark": "fwmark=" + b64 + "\n",
		"key after peer in update_only": peer + "update_only=" + b64 + "\n",
	}
}

func TestParseErrorsNeverShowSecrets(t *testing.T) {
	forms := secretForms(t)
	for name, in := range secretInputs(t) {
		_, err := ParseSet(strings.NewReader(in + "\n"))
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		var ue *Error
		if !errors.As(err, &ue) {
			t.Errorf("%s: %T, want *Error", name, err)
			continue
		}
		if leaked(err.Error(), forms) || leaked(ue.Key, forms) || leaked(ue.Value, forms) {
			t.Errorf("%s: error shows the key: %v", name, err)
		}
		if strings.TrimSpace(err.Error()) == "" || err.Error() == "uapi: " {
			t.Errorf("%s: empty error", name)
		}
	}
}

// Served, the same transactions log nothing secret either, nor does a key
// sent where the operation line belongs.
func TestServeLogsNeverShowSecrets(t *testing.T) {
	forms := secretForms(t)
	path, logs := startServer(t, &fakeDevice{})
	for name, in := range secretInputs(t) {
		c := dial(t, path)
		if got := c.do("set=1\n" + in + "\n"); !strings.HasPrefix(got, "errno=-") {
			t.Errorf("%s: answer %q", name, got)
		}
	}
	for _, op := range []string{"private_key=" + hexPriv, hexPriv, "set=" + hexPriv} {
		c := dial(t, path)
		io.WriteString(c.c, op+"\n")
		if _, err := c.br.ReadByte(); err != io.EOF {
			t.Fatalf("connection not closed after %q: %v", op, err)
		}
	}
	// The server logs before it answers or closes the connection.
	if l := logs.String(); leaked(l, forms) {
		t.Errorf("log shows the key:\n%s", l)
	}
}
