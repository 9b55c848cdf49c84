package device

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/gotatun/gotatun/noise"
)

// No fmt verb of the device's state or configuration shows a secret key.
func TestStateFormatHidesSecrets(t *testing.T) {
	priv, err := noise.GeneratePrivateKey(seededRand(40))
	if err != nil {
		t.Fatal(err)
	}
	var psk noise.PresharedKey
	seededRand(41).Read(psk[:])
	st := State{
		PrivateKey: priv,
		PublicKey:  priv.PublicKey(),
		ListenPort: 51820,
		Peers: []PeerState{{
			PublicKey:    priv.PublicKey(),
			PresharedKey: psk,
			AllowedIPs:   []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		}},
	}
	cfg := Config{PrivateKey: &priv, Peers: []PeerConfig{{PublicKey: priv.PublicKey(), PresharedKey: &psk}}}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x"} {
		for _, v := range []any{st, &st, st.Peers[0], cfg, *cfg.PrivateKey, *cfg.Peers[0].PresharedKey} {
			out := fmt.Sprintf(verb, v)
			for name, key := range map[string][32]byte{"private": priv, "preshared": psk} {
				for _, form := range []string{hex.EncodeToString(key[:]), base64.StdEncoding.EncodeToString(key[:]), strings.Trim(fmt.Sprint(key[:]), "[]")} {
					if strings.Contains(out, form[:16]) {
						t.Errorf("%s of %T shows the %s key: %s", verb, v, name, out)
					}
				}
			}
		}
	}
}
