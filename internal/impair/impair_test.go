package impair

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestRelayForwardsAndRebinds(t *testing.T) {
	srv, err := listen()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	r, err := New(srv.LocalAddr().(*net.UDPAddr).AddrPort(), Impairment{Duplicate: 1}, Impairment{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cli, err := listen()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	buf := make([]byte, 100)
	for round := 0; round < 2; round++ {
		if _, err := cli.WriteToUDPAddrPort([]byte("ping"), r.Addr()); err != nil {
			t.Fatal(err)
		}
		var from netip.AddrPort
		for i := 0; i < 2; i++ { // duplicated
			srv.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, f, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil || string(buf[:n]) != "ping" {
				t.Fatalf("round %d copy %d: %q, %v", round, i, buf[:n], err)
			}
			from = f
		}
		if from != r.BackAddr() {
			t.Fatalf("round %d: from %v, want %v", round, from, r.BackAddr())
		}
		srv.WriteToUDPAddrPort([]byte("pong"), from)
		cli.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _, err := cli.ReadFromUDPAddrPort(buf)
		if err != nil || string(buf[:n]) != "pong" {
			t.Fatalf("round %d reply: %q, %v", round, buf[:n], err)
		}
		if err := r.Rebind(); err != nil {
			t.Fatal(err)
		}
	}
	if s := r.Stats(); s.Duplicated != 2 || s.Received != 4 {
		t.Fatalf("stats %+v", s)
	}
}

func TestRelayLossAndBadConfig(t *testing.T) {
	if _, err := New(netip.MustParseAddrPort("127.0.0.1:9"), Impairment{Loss: 2}, Impairment{}, 1); err == nil {
		t.Fatal("loss 2 accepted")
	}
	r, err := New(netip.MustParseAddrPort("127.0.0.1:9"), Impairment{Loss: 1}, Impairment{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cli, _ := listen()
	defer cli.Close()
	for i := 0; i < 10; i++ {
		cli.WriteToUDPAddrPort([]byte("x"), r.Addr())
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.Stats().Received < 10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s := r.Stats(); s.Dropped != 10 || s.Sent != 0 {
		t.Fatalf("stats %+v", s)
	}
}
