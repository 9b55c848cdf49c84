package noise

import (
	"net/netip"
	"testing"
	"time"
)

func BenchmarkHandshake(b *testing.B) {
	r := testRand(90)
	x, y := newPair(b, r, PresharedKey{1}, PresharedKey{1})
	lookup := y.lookup(x)
	var ibuf [MessageInitiationSize]byte
	var rbuf [MessageResponseSize]byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now := epoch.Add(time.Duration(i) * time.Second)
		init, err := x.h.CreateInitiation(now, 1, r)
		if err != nil {
			b.Fatal(err)
		}
		var gotInit MessageInitiation
		if err := gotInit.Unmarshal(init.MarshalTo(ibuf[:])); err != nil {
			b.Fatal(err)
		}
		if _, err := ConsumeInitiation(y.id, &gotInit, lookup, now); err != nil {
			b.Fatal(err)
		}
		resp, err := y.h.CreateResponse(now, 2, r)
		if err != nil {
			b.Fatal(err)
		}
		var gotResp MessageResponse
		if err := gotResp.Unmarshal(resp.MarshalTo(rbuf[:])); err != nil {
			b.Fatal(err)
		}
		if err := x.h.ConsumeResponse(&gotResp, now); err != nil {
			b.Fatal(err)
		}
		if _, err := x.h.BeginSession(now); err != nil {
			b.Fatal(err)
		}
		if _, err := y.h.BeginSession(now); err != nil {
			b.Fatal(err)
		}
	}
}

const benchPayload = 1420

func BenchmarkSeal1420(b *testing.B) {
	k, _ := testKeypairs()
	buf := make([]byte, MessageTransportOverhead+benchPayload)
	b.SetBytes(benchPayload)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ctr, ok := k.NextCounter()
		if !ok {
			b.Fatal("counter exhausted")
		}
		k.SealTransport(buf, buf[MessageTransportHeaderSize:MessageTransportHeaderSize+benchPayload], ctr)
	}
}

// BenchmarkOpen1420 opens in place. Each iteration first restores the
// ciphertext (a 1452-byte copy), since opening in place consumes it.
func BenchmarkOpen1420(b *testing.B) {
	s, r := testKeypairs()
	orig := s.SealTransport(make([]byte, MessageTransportOverhead+benchPayload), make([]byte, benchPayload), 1)
	buf := make([]byte, len(orig))
	b.SetBytes(benchPayload)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		copy(buf, orig)
		if _, _, err := r.OpenTransport(buf[MessageTransportHeaderSize:MessageTransportHeaderSize], buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReplayFilter(b *testing.B) {
	b.Run("in-order", func(b *testing.B) {
		var f ReplayFilter
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			f.Accept(uint64(i))
		}
	})
	b.Run("reordered", func(b *testing.B) {
		// Pairs swapped and an occasional duplicate, as after parallel
		// decryption.
		var f ReplayFilter
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			c := uint64(i) ^ 1
			if i%64 == 0 {
				c = uint64(i) - 3
			}
			f.Accept(c)
		}
	})
	b.Run("keypair-locked", func(b *testing.B) {
		_, k := testKeypairs()
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			k.AcceptCounter(uint64(i))
		}
	})
}

func BenchmarkCheckMAC1(b *testing.B) {
	pub := mustKey(b, testRand(91)).PublicKey()
	c := NewCookieChecker(pub, testRand(92))
	m := testInitiationBytes(1)
	NewCookieGenerator(pub).AddMACs(m, epoch)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if !c.CheckMAC1(m) {
			b.Fatal("mac1 refused")
		}
	}
}

func BenchmarkCheckMAC2(b *testing.B) {
	pub := mustKey(b, testRand(93)).PublicKey()
	c := NewCookieChecker(pub, testRand(94))
	g := NewCookieGenerator(pub)
	src := netip.MustParseAddrPort("192.0.2.1:51820")
	m := testInitiationBytes(1)
	g.AddMACs(m, epoch)
	reply, err := c.CreateReply(m, 1, src, epoch)
	if err != nil {
		b.Fatal(err)
	}
	if err := g.ConsumeReply(&reply, epoch); err != nil {
		b.Fatal(err)
	}
	g.AddMACs(m, epoch)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if !c.CheckMAC2(m, src, epoch) {
			b.Fatal("mac2 refused")
		}
	}
}
