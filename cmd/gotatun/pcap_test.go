package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gotatun/gotatun/pcap"
)

func TestPcapFlag(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	a, err := parseDaemonArgs([]string{"-f", "--pcap", "cap.pcap", "wg7"})
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(wd, "cap.pcap")
	if a.pcap.path != want || a.ifname != "wg7" {
		t.Fatalf("parsed pcap %q, interface %q; want %q, wg7", a.pcap.path, a.ifname, want)
	}
	if _, err := parseDaemonArgs([]string{"--pcap=", "wg7"}); err == nil {
		t.Fatal("empty --pcap accepted")
	}
	for _, args := range [][]string{
		{"--pcap", "cap.pcap", "wg7"},
		{"-pcap=cap.pcap", "wg7"},
		{"wg7", "--pcap", "cap.pcap"},
	} {
		got := withAbsPcap(args, a.pcap)
		if !slices.Contains(got, "--pcap="+want) || slices.Contains(got, "cap.pcap") || !slices.Contains(got, "wg7") {
			t.Errorf("withAbsPcap(%q) = %q", args, got)
		}
	}
	keep := []string{"--pcap", "x", "--", "--pcap"}
	if got := withAbsPcap(keep, a.pcap); !slices.Equal(got, []string{"--pcap=" + want, "--", "--pcap"}) {
		t.Errorf("withAbsPcap(%q) = %q", keep, got)
	}
}

func TestOpenCapture(t *testing.T) {
	c, closeFn, err := openCapture(pcapFlag{})
	if c != nil || err != nil || closeFn() != nil {
		t.Fatal("capture without --pcap")
	}
	path := filepath.Join(t.TempDir(), "c.pcap")
	c, closeFn, err = openCapture(pcapFlag{path: path})
	if err != nil {
		t.Fatal(err)
	}
	pkt := []byte{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2}
	// The first write flushes; the second, in the same second, waits for
	// the ticker: a quiet tunnel's packets reach the file without closing it.
	for range 2 {
		if err := c.WritePacket(time.Unix(5, 0), pkt); err != nil {
			t.Fatal(err)
		}
	}
	want := int64(24 + 2*(16+len(pkt)))
	deadline := time.Now().Add(5 * captureFlushEvery)
	for {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("capture file has %d bytes while open, want %d", st.Size(), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := closeFn(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcap.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Next()
	if err != nil || !bytes.Equal(p.Data, pkt) {
		t.Fatalf("read back %x, %v", p.Data, err)
	}
	if _, _, err := openCapture(pcapFlag{path: filepath.Join(t.TempDir(), "no", "such", "dir")}); err == nil {
		t.Fatal("capture in a missing directory opened")
	}
}
