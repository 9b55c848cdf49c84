package device

import (
	"testing"

	"github.com/gotatun/gotatun/noise"
)

// TestCloseWipesKeys checks that after Close the device holds no private
// key, no preshared key and no session, and that a removed peer keeps no
// preshared key either.
func TestCloseWipesKeys(t *testing.T) {
	pr := newPair(t)
	psk := noise.PresharedKey{7}
	for _, n := range []*node{pr.a, pr.b} {
		other := pr.b
		if n == pr.b {
			other = pr.a
		}
		if err := n.d.Apply(Config{Peers: []PeerConfig{{PublicKey: other.pub, PresharedKey: &psk, UpdateOnly: true}}}); err != nil {
			t.Fatal(err)
		}
	}
	pr.ping(t, "before close")
	p := pr.a.peer(pr.b)
	kp := p.keypairs.Current()
	if kp == nil {
		t.Fatal("no session after a ping")
	}
	pr.a.d.Close()
	if id := pr.a.d.ident.Load(); !id.priv.IsZero() {
		t.Fatal("Close left the private key")
	}
	if !p.psk.IsZero() || p.keypairs.Current() != nil {
		t.Fatal("Close left the preshared key or a session")
	}
	if kp.SealTransport(make([]byte, 64), nil, 0) != nil {
		t.Fatal("the session still seals after Close")
	}

	q := pr.b.peer(pr.a)
	if err := pr.b.d.Apply(Config{Peers: []PeerConfig{{PublicKey: pr.a.pub, Remove: true}}}); err != nil {
		t.Fatal(err)
	}
	if !q.psk.IsZero() || q.keypairs.Current() != nil {
		t.Fatal("removing the peer left its preshared key or a session")
	}
}
