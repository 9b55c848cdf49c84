package device

import (
	"testing"
	"time"
)

// A keypair wiped between decryption and the replay check (by the
// handshake goroutine or a private-key change) must not let the packet
// through, even though it decrypted fine.
func TestWipeBetweenDecryptAndReplayCheck(t *testing.T) {
	pr := newPair(t)
	pr.ping(t, "session")
	send := pr.a.peer(pr.b).keypairs.Current()
	p := pr.b.peer(pr.a)
	recv := p.keypairs.Current()
	if send == nil || recv == nil {
		t.Fatal("no session after ping")
	}
	d := pr.b.d
	b := d.getBatch()
	b.peer = p
	c, ok := send.NextCounter()
	if !ok {
		t.Fatal("no send counter")
	}
	buf := d.getBuf()
	pkt := ipv4Packet("10.0.0.1", "10.0.0.2", []byte("decrypted before the wipe"))
	copy(buf.b[headroom:], pkt)
	msg := send.SealTransport(buf.b, buf.b[headroom:headroom+len(pkt)], c)
	dup := d.getBuf() // the same message twice in one batch
	copy(dup.b, msg)
	b.elems = append(b.elems, elem{buf: buf, n: len(msg), kp: recv}, elem{buf: dup, n: len(msg), kp: recv})
	d.decrypt(b)
	for i, e := range b.elems {
		if !e.ok {
			t.Fatalf("packet %d did not decrypt", i)
		}
	}
	recv.Zero()
	d.pending.Add(1)
	d.finishInbound(b)
	pr.b.expectNoPacket(100 * time.Millisecond)
}
