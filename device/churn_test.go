package device

import (
	"sync"
	"testing"
	"time"

	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/transport"
)

// entries returns every entry of the index table.
func (t *indexTable) entries() []*indexEntry {
	var out []*indexEntry
	for i := range t.shards {
		if m := t.shards[i].m.Load(); m != nil {
			for _, e := range *m {
				out = append(out, e)
			}
		}
	}
	return out
}

// Removing and re-adding peers every few milliseconds while both sides send
// and handshake must leave no index entry and no usable keypair behind for
// any removed peer, whatever handshake step the removal interrupted.
func TestPeerChurnLeavesNoIndicesOrKeys(t *testing.T) {
	nw := transport.NewNetwork()
	a := newNode(t, nw, "192.0.2.1", 51820, nil, 11)
	b := newNode(t, nw, "192.0.2.2", 51820, nil, 12)
	a.addPeer(b, true, "10.0.0.2/32")
	b.addPeer(a, true, "10.0.0.1/32")

	var (
		mu      sync.Mutex
		removed = map[*Peer]bool{}
		kps     []*noise.Keypair // keypairs removed peers held just before removal
		wg      sync.WaitGroup
	)
	stop := make(chan struct{})
	for _, n := range []*node{a, b} {
		wg.Add(1)
		go func() { // read the TUN so writes never block
			defer wg.Done()
			for {
				select {
				case pkt := <-n.tun.Outbound():
					n.tun.Recycle(pkt)
				case <-stop:
					return
				}
			}
		}()
	}
	traffic := func(n *node, src, dst string) {
		defer wg.Done()
		pkt := ipv4Packet(src, dst, []byte("churn"))
		for {
			select {
			case <-stop:
				return
			default:
			}
			n.inject(pkt)
			time.Sleep(100 * time.Microsecond)
		}
	}
	churn := func(n, other *node, allowed string) {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			p := n.d.peer(other.pub)
			var held []*noise.Keypair
			for _, kp := range []*noise.Keypair{p.keypairs.Previous(), p.keypairs.Current(), p.keypairs.Next()} {
				if kp != nil {
					held = append(held, kp)
				}
			}
			if err := n.d.Apply(Config{Peers: []PeerConfig{{PublicKey: other.pub, Remove: true}}}); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			removed[p] = true
			kps = append(kps, held...)
			mu.Unlock()
			n.addPeer(other, true, allowed)
		}
	}
	wg.Add(4)
	go traffic(a, "10.0.0.1", "10.0.0.2")
	go traffic(b, "10.0.0.2", "10.0.0.1")
	go churn(a, b, "10.0.0.2/32")
	go churn(b, a, "10.0.0.1/32")
	// At least 1.5 s, and on a loaded machine until some removals caught
	// a session (up to 10 s).
	start := time.Now()
	for {
		time.Sleep(100 * time.Millisecond)
		mu.Lock()
		enough := len(removed) >= 20 && len(kps) >= 10
		mu.Unlock()
		if since := time.Since(start); since >= 10*time.Second || enough && since >= 1500*time.Millisecond {
			break
		}
	}
	close(stop)
	wg.Wait()
	eventually(t, "handshake and data queues to drain", func() bool {
		return a.d.pending.Load() == 0 && b.d.pending.Load() == 0
	})
	time.Sleep(50 * time.Millisecond) // anything past the queues

	mu.Lock()
	defer mu.Unlock()
	if len(removed) < 20 || len(kps) == 0 {
		t.Fatalf("churn too slow to test anything: %d removals, %d keypairs held", len(removed), len(kps))
	}
	for _, n := range []*node{a, b} {
		for _, e := range n.d.indices.entries() {
			if removed[e.peer] {
				t.Errorf("index entry of a removed peer left (keypair %v)", e.keypair.Load() != nil)
			}
		}
	}
	for p := range removed {
		if p.keypairs.Previous() != nil || p.keypairs.Current() != nil || p.keypairs.Next() != nil {
			t.Error("removed peer still holds a keypair")
		}
		p.hsMu.Lock()
		if p.hsEntry != nil {
			t.Error("removed peer still holds a handshake index")
		}
		p.hsMu.Unlock()
	}
	live := 0
	for _, kp := range kps {
		if kp.SealTransport(make([]byte, 64), nil, 0) != nil {
			live++
		}
	}
	if live > 0 {
		t.Errorf("%d of %d keypairs of removed peers still usable", live, len(kps))
	}
	t.Logf("%d removals, %d keypairs checked", len(removed), len(kps))
}
