package device

import (
	"bytes"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/gotatun/gotatun/pcap"
	"github.com/gotatun/gotatun/transport"
)

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

func TestCapture(t *testing.T) {
	var file syncBuffer
	w, err := pcap.NewWriter(&file)
	if err != nil {
		t.Fatal(err)
	}
	nw := transport.NewNetwork()
	clock := NewFakeClock(testEpoch)
	a := newNodeOpts(t, nw, "192.0.2.1", 51820, clock, 1, func(o *Options) { o.Capture = w })
	b := newNode(t, nw, "192.0.2.2", 51820, clock, 2)
	a.addPeer(b, true, "10.0.0.2/32")
	b.addPeer(a, false, "10.0.0.1/32")

	out := ipv4Packet("10.0.0.1", "10.0.0.2", []byte("out"))
	a.inject(out)
	b.expectPacket(out)
	// Not routed: not captured.
	a.inject(ipv4Packet("10.0.0.1", "10.9.9.9", []byte("nowhere")))
	in := ipv4Packet("10.0.0.2", "10.0.0.1", []byte("in"))
	b.inject(in)
	a.expectPacket(in)
	// Not from B's allowed IPs: dropped, not captured.
	b.inject(ipv4Packet("10.0.0.66", "10.0.0.1", []byte("spoof")))
	b.inject(in)
	a.expectPacket(in)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}

	r, err := pcap.NewReader(bytes.NewReader(file.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != pcap.LinkTypeRaw {
		t.Fatalf("link type %d, want %d", r.LinkType(), pcap.LinkTypeRaw)
	}
	for i, want := range [][]byte{out, in, in} {
		p, err := r.Next()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if !bytes.Equal(p.Data, want) || !p.Time.Equal(testEpoch) {
			t.Fatalf("packet %d: %x at %v, want %x at %v", i, p.Data, p.Time, want, testEpoch)
		}
	}
	if p, err := r.Next(); err != io.EOF {
		t.Fatalf("extra record %x (%v)", p.Data, err)
	}
}

// failingCapture fails every write.
type failingCapture struct{ calls int }

func (f *failingCapture) WritePacket(time.Time, []byte) error {
	f.calls++
	return io.ErrShortWrite
}

func TestCaptureErrorKeepsTunnel(t *testing.T) {
	nw := transport.NewNetwork()
	fc := &failingCapture{}
	a := newNodeOpts(t, nw, "192.0.2.1", 51820, nil, 3, func(o *Options) { o.Capture = fc; o.Workers = -1 })
	b := newNode(t, nw, "192.0.2.2", 51820, nil, 4)
	a.addPeer(b, true, "10.0.0.2/32")
	b.addPeer(a, false, "10.0.0.1/32")
	pr := &pair{nw: nw, a: a, b: b}
	pr.ping(t, "1")
	pr.ping(t, "2")
	if !a.d.captureFailed.Load() {
		t.Fatal("capture failure not noted")
	}
}

// BenchmarkDataPathCapture is BenchmarkDataPath1420 with capture on, to a
// pcap file on io.Discard; compare the two for the cost of capturing (off,
// it is one nil check per packet).
func BenchmarkDataPathCapture(b *testing.B) {
	w, err := pcap.NewWriter(io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	newDataPathCapture(b, 1420-28, w).bench(b)
}
