package pcap

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 678901000, time.UTC)
	pkts := [][]byte{{0x45, 1, 2, 3}, {0x60}, bytes.Repeat([]byte{7}, 1400), {}}
	for i, p := range pkts {
		if err := w.WritePacket(t0.Add(time.Duration(i)*time.Millisecond), p); err != nil {
			t.Fatal(err)
		}
	}
	big := bytes.Repeat([]byte{9}, SnapLen+10)
	if err := w.WritePacket(t0, big); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != LinkTypeRaw {
		t.Fatalf("link type %d", r.LinkType())
	}
	for i, want := range pkts {
		p, err := r.Next()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if !bytes.Equal(p.Data, want) || p.OrigLen != len(want) || !p.Time.Equal(t0.Add(time.Duration(i)*time.Millisecond)) {
			t.Fatalf("packet %d: got %d bytes (orig %d) at %v", i, len(p.Data), p.OrigLen, p.Time)
		}
	}
	p, err := r.Next()
	if err != nil || len(p.Data) != SnapLen || p.OrigLen != len(big) {
		t.Fatalf("snapped packet: %d of %d bytes, %v", len(p.Data), p.OrigLen, err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("after the last packet: %v, want io.EOF", err)
	}
}

func TestConcurrentWrites(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for range 100 {
				w.WritePacket(time.Now(), []byte{0x45, byte(g)})
			}
		})
	}
	wg.Wait()
	w.Flush()
	r, err := NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil || len(p.Data) != 2 || p.Data[0] != 0x45 {
			t.Fatalf("record %d: %x %v", n, p.Data, err)
		}
		n++
	}
	if n != 400 {
		t.Fatalf("%d records, want 400", n)
	}
}

type failWriter struct{ after int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("disk full")
	}
	f.after--
	return len(p), nil
}

func TestWriteErrorSticks(t *testing.T) {
	w, err := NewWriter(&failWriter{after: 1})
	if err != nil {
		t.Fatal(err)
	}
	w.WritePacket(time.Now(), []byte{0x45})
	if err := w.Flush(); err == nil {
		t.Fatal("Flush to a failing writer succeeded")
	}
	if err := w.WritePacket(time.Now(), []byte{0x45}); err == nil {
		t.Fatal("write after an error succeeded")
	}
	if _, err := NewWriter(&failWriter{}); err == nil {
		t.Fatal("NewWriter on a failing writer succeeded")
	}
}

func TestReaderRejects(t *testing.T) {
	var good bytes.Buffer
	w, _ := NewWriter(&good)
	w.WritePacket(time.Unix(1, 0), []byte{0x45, 0, 0, 4})
	w.Flush()
	g := good.Bytes()
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(g)) }
	for name, b := range map[string][]byte{
		"empty":       nil,
		"short":       g[:10],
		"magic":       mod(func(b []byte) []byte { b[0] = 0; return b }),
		"version":     mod(func(b []byte) []byte { b[4] = 3; return b }),
		"cut header":  g[:30],
		"cut record":  g[:len(g)-1],
		"incl > orig": mod(func(b []byte) []byte { b[24+12] = 1; return b }),
		"huge":        mod(func(b []byte) []byte { b[24+10], b[24+14] = 0x7f, 0x7f; return b }),
		"usec":        mod(func(b []byte) []byte { b[24+6] = 0xff; return b }),
	} {
		r, err := NewReader(bytes.NewReader(b))
		if err == nil {
			_, err = r.Next()
		}
		if !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", name, err)
		}
	}
}

func FuzzReader(f *testing.F) {
	var good bytes.Buffer
	w, _ := NewWriter(&good)
	w.WritePacket(time.Unix(1, 0), []byte{0x45, 0, 0, 4})
	w.Flush()
	f.Add(good.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		for range 1000 {
			if _, err := r.Next(); err != nil {
				return
			}
		}
	})
}

func BenchmarkWritePacket(b *testing.B) {
	w, _ := NewWriter(io.Discard)
	pkt := make([]byte, 1420)
	now := time.Now()
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		w.WritePacket(now, pkt)
	}
}
