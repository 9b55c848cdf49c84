package tun

import (
	"bytes"
	"testing"
)

// TestMemoryGrowBuffers checks that a packet too large for the reader's
// buffers makes Read return 0 at once and is kept for one more call, as
// after an MTU increase, and that SetMTU reports the change.
func TestMemoryGrowBuffers(t *testing.T) {
	m := NewMemory("m", 1420, 16)
	defer m.Close()
	if ev := <-m.Events(); ev != EventUp {
		t.Fatalf("first event %v", ev)
	}
	if err := m.SetMTU(9000); err != nil {
		t.Fatal(err)
	}
	if ev := <-m.Events(); ev != EventMTUUpdate {
		t.Fatalf("event %v, want EventMTUUpdate", ev)
	}
	if mtu, _ := m.MTU(); mtu != 9000 {
		t.Fatalf("MTU %d after SetMTU(9000)", mtu)
	}
	big := bytes.Repeat([]byte{7}, 5000)
	small := [][]byte{make([]byte, 1500)}
	large := [][]byte{make([]byte, 9000)}
	sizes := make([]int, 1)
	read := func(bufs [][]byte) int {
		t.Helper()
		n, err := m.Read(bufs, sizes, 0)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := m.Inject(big); err != nil {
		t.Fatal(err)
	}
	if n := read(small); n != 0 {
		t.Fatalf("read %d packets into buffers too small", n)
	}
	if n := read(large); n != 1 || !bytes.Equal(large[0][:sizes[0]], big) {
		t.Fatalf("read %d packets, want the kept one", n)
	}
	// Too large twice: dropped, and the next packet is read.
	m.Inject(big)
	m.Inject([]byte("next"))
	if n := read(small); n != 0 {
		t.Fatalf("read %d packets into buffers too small", n)
	}
	if n := read(small); n != 1 || string(small[0][:sizes[0]]) != "next" {
		t.Fatalf("read %d packets (%q), want the one after the dropped", n, small[0][:sizes[0]])
	}
	if err := m.SetMTU(70000); err == nil {
		t.Fatal("SetMTU(70000) succeeded")
	}
}

// TestMemoryWriteRecycleAllocs checks that a packet written, taken from
// Outbound and recycled costs no allocation once the pool is warm.
func TestMemoryWriteRecycleAllocs(t *testing.T) {
	m := NewMemory("m", 1420, 16)
	defer m.Close()
	pkt := [][]byte{make([]byte, 1000)}
	round := func() {
		if _, err := m.Write(pkt, 0); err != nil {
			t.Fatal(err)
		}
		m.Recycle(<-m.Outbound())
	}
	round()
	if n := testing.AllocsPerRun(1000, round); n != 0 {
		t.Fatalf("%v allocations per Write and Recycle, want 0", n)
	}
}
