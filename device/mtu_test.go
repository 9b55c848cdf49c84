package device

import (
	"bytes"
	"testing"
)

// TestMTUFollowedAtRunTime changes both TUN MTUs while the session is up:
// packets filling each new MTU cross both ways, and the buffers follow the
// MTU down as well as up.
func TestMTUFollowedAtRunTime(t *testing.T) {
	pr := newPair(t)
	pr.ping(t, "warmup")
	for _, mtu := range []int{9000, maxMTU - 20 - 8 - 32, 576, 1280, 34736, 1420} {
		for _, n := range []*node{pr.a, pr.b} {
			if err := n.tun.SetMTU(mtu); err != nil {
				t.Fatal(err)
			}
			eventually(t, "MTU followed", func() bool { return int(n.d.mtu.Load()) == mtu })
			if got, want := int(n.d.bufSize.Load()), bufSizeFor(mtu); got != want {
				t.Fatalf("MTU %d: buffers of %d bytes, want %d", mtu, got, want)
			}
		}
		payload := bytes.Repeat([]byte{byte(mtu)}, mtu-28)
		ab := ipv4Packet("10.0.0.1", "10.0.0.2", payload)
		pr.a.inject(ab)
		pr.b.expectPacket(ab)
		ba := ipv4Packet("10.0.0.2", "10.0.0.1", payload)
		pr.b.inject(ba)
		pr.a.expectPacket(ba)
	}
}

// TestBufferPoolDropsOtherSizes checks that buffers sized for an MTU no
// longer in use are not handed out again.
func TestBufferPoolDropsOtherSizes(t *testing.T) {
	pr := newPair(t)
	d := pr.a.d
	old := d.getBuf()
	d.setMTU(9000)
	if b := d.getBuf(); len(b.b) != bufSizeFor(9000) {
		t.Fatalf("buffer of %d bytes after the MTU grew, want %d", len(b.b), bufSizeFor(9000))
	}
	d.putBuf(old)
	for range 100 {
		if b := d.getBuf(); len(b.b) != bufSizeFor(9000) {
			t.Fatalf("buffer of %d bytes handed out, want %d", len(b.b), bufSizeFor(9000))
		}
	}
}

func TestBufSizeFor(t *testing.T) {
	for _, c := range []struct{ mtu, min int }{{576, 1500}, {1420, 1500}, {1500, 1500}, {9000, 9000}, {65535, 65535}, {70000, 65535}} {
		got := bufSizeFor(c.mtu)
		if got%64 != 0 || got < headroom+c.min+16+tagSize || got >= headroom+c.min+16+tagSize+64 {
			t.Errorf("bufSizeFor(%d) = %d", c.mtu, got)
		}
	}
}
