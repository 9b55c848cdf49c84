package tun

import (
	"bytes"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestFDDevice(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	other := fds[1]
	defer unix.Close(other)
	d, err := CreateTUNFromFD(fds[0], 1380)
	if err != nil {
		t.Fatal(err)
	}
	if mtu, err := d.MTU(); mtu != 1380 || err != nil {
		t.Fatalf("MTU %d, %v", mtu, err)
	}
	if ev := <-d.Events(); ev != EventUp {
		t.Fatalf("first event %v, want EventUp", ev)
	}

	// Packets in: one read returns both, each whole.
	p1, p2 := bytes.Repeat([]byte{0x45}, 100), bytes.Repeat([]byte{0x60}, 1300)
	for _, p := range [][]byte{p1, p2} {
		if _, err := unix.Write(other, p); err != nil {
			t.Fatal(err)
		}
	}
	const off = 16
	bufs := [][]byte{make([]byte, 2000), make([]byte, 2000), make([]byte, 2000)}
	sizes := make([]int, 3)
	got := 0
	for got < 2 {
		n, err := d.Read(bufs[got:], sizes[got:], off)
		if err != nil {
			t.Fatal(err)
		}
		got += n
	}
	if !bytes.Equal(bufs[0][off:off+sizes[0]], p1) || !bytes.Equal(bufs[1][off:off+sizes[1]], p2) {
		t.Fatalf("read %d and %d bytes, want %d and %d", sizes[0], sizes[1], len(p1), len(p2))
	}

	// Packets out.
	out := [][]byte{append(make([]byte, off), p2...), append(make([]byte, off), p1...)}
	if n, err := d.Write(out, off); n != 2 || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	rb := make([]byte, 2000)
	for _, want := range [][]byte{p2, p1} {
		n, err := unix.Read(other, rb)
		if err != nil || !bytes.Equal(rb[:n], want) {
			t.Fatalf("peer read %d bytes (%v), want %d", n, err, len(want))
		}
	}

	// A blocked Read returns at Close, which closes the descriptor.
	done := make(chan error, 1)
	go func() {
		_, err := d.Read(bufs, sizes, off)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Read after Close succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked after Close")
	}
	if _, ok := <-d.Events(); ok {
		t.Fatal("Events not closed by Close")
	}
	if n, err := unix.Read(other, rb); n != 0 || err != nil {
		t.Fatalf("peer end sees %d bytes (%v), want end of stream: descriptor not closed", n, err)
	}
}

func TestFDDeviceBad(t *testing.T) {
	if _, err := CreateTUNFromFD(-1, 0); err == nil {
		t.Fatal("descriptor -1 accepted")
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fds[1])
	unix.Close(fds[0])
	if _, err := CreateTUNFromFD(fds[0], 0); err == nil {
		t.Fatal("closed descriptor accepted")
	}
}
