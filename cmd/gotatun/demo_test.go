package main

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
)

func TestDemoTransfersAndVerifies(t *testing.T) {
	var out, errb bytes.Buffer
	code := runDemo([]string{"-mb", "4", "-size", "1000"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	for _, want := range []string{"handshake complete", "alice → bob  4195/4195 packets intact", "bob → alice  4195/4195 packets intact", "OK: every byte arrived intact"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestDemoHelpAndBadFlags(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runDemo([]string{"--help"}, &out, &errb); code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	if n := strings.Count(out.String(), "Usage: gotatun demo"); n != 1 || errb.Len() != 0 {
		t.Errorf("--help printed usage %d times to stdout, stderr %q", n, errb.String())
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-size", "10"}, "-size 10 out of range"},
		{[]string{"-mtu", "100"}, "-mtu 100 out of range"},
		{[]string{"-mb", "0"}, "-mb must be positive"},
		{[]string{"-window", "0"}, "-window must be at least 1"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"-nosuch"}, "flag provided but not defined: -nosuch"},
	} {
		out.Reset()
		errb.Reset()
		if code := runDemo(c.args, &out, &errb); code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", c.args, code, errb.String(), c.want)
		}
	}
}

// The checker must notice a single flipped byte anywhere in a packet.
func TestDemoPacketCheck(t *testing.T) {
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	p := buildDemoPacket(make([]byte, 300), src, dst, 42, 300)
	scratch := make([]byte, 300)
	if seq, ok := checkDemoPacket(p, scratch, src, dst); !ok || seq != 42 {
		t.Fatalf("intact packet: seq %d ok %v", seq, ok)
	}
	for i := 36; i < len(p); i += 37 {
		p[i] ^= 1
		if _, ok := checkDemoPacket(p, scratch, src, dst); ok {
			t.Fatalf("byte %d flipped, packet still accepted", i)
		}
		p[i] ^= 1
	}
}
