//go:build amd64 && !purego

package chachapoly

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/big"
	"math/rand/v2"
	"testing"

	//lint:ignore SA1019 the raw Poly1305 is the reference for ours.
	"golang.org/x/crypto/poly1305"
)

// ifmaDetected is what the package detected, before any test flips useIFMA.
var ifmaDetected = useIFMA

// withPaths runs f once per implementation: "generic" always, "ifma" when
// the CPU and build support it (skipped, and saying so, otherwise).
func withPaths(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	t.Run("generic", func(t *testing.T) {
		defer setIFMA(false)()
		f(t)
	})
	t.Run("ifma", func(t *testing.T) {
		if !ifmaDetected {
			t.Skip("AVX-512 IFMA not available (CPU or purego build)")
		}
		defer setIFMA(true)()
		f(t)
	})
}

func setIFMA(on bool) (restore func()) {
	old := useIFMA
	useIFMA = on
	return func() { useIFMA = old }
}

// refMAC builds the padded AEAD message explicitly and MACs it with
// x/crypto.
func refMAC(key *[32]byte, ad, ct []byte) [16]byte {
	pad := func(b []byte) []byte {
		for len(b)%16 != 0 {
			b = append(b, 0)
		}
		return b
	}
	var msg []byte
	msg = pad(append(msg, ad...))
	msg = pad(append(msg, ct...))
	msg = binary.LittleEndian.AppendUint64(msg, uint64(len(ad)))
	msg = binary.LittleEndian.AppendUint64(msg, uint64(len(ct)))
	var tag [16]byte
	poly1305.Sum(&tag, msg, key)
	return tag
}

func checkMAC(t *testing.T, key *[32]byte, ad, ct []byte) bool {
	t.Helper()
	var got [16]byte
	macAEAD(&got, key, ad, ct)
	if want := refMAC(key, ad, ct); got != want {
		t.Errorf("len(ad)=%d len(ct)=%d key=%x: got %x, want %x", len(ad), len(ct), key[:], got, want)
		return false
	}
	return true
}

func TestMACLengths(t *testing.T) {
	withPaths(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		buf := make([]byte, 2100+100)
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		for _, adLen := range []int{0, 1, 13, 16, 32, 100} {
			for ctLen := 0; ctLen <= 2100; ctLen++ {
				var key [32]byte
				binary.LittleEndian.PutUint64(key[0:], rng.Uint64())
				binary.LittleEndian.PutUint64(key[8:], rng.Uint64())
				binary.LittleEndian.PutUint64(key[16:], rng.Uint64())
				binary.LittleEndian.PutUint64(key[24:], rng.Uint64())
				// Vary the offsets so slices are not always aligned.
				off := ctLen % 7
				ad := buf[off : off+adLen]
				ct := buf[100-off : 100-off+ctLen]
				if !checkMAC(t, &key, ad, ct) {
					return
				}
			}
		}
	})
}

// maxKey has every bit of r that clamping allows, and s all ones.
func maxKey() *[32]byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[0:], rClamp0)
	binary.LittleEndian.PutUint64(key[8:], rClamp1)
	for i := 16; i < 32; i++ {
		key[i] = 0xff
	}
	return &key
}

func TestMACEdgeValues(t *testing.T) {
	withPaths(t, func(t *testing.T) {
		ff := bytes.Repeat([]byte{0xff}, 4096)
		keys := map[string]*[32]byte{"max-r": maxKey()}
		var k1 [32]byte
		k1[0] = 1 // r = 1: h is the plain sum of the blocks mod p
		keys["r=1"] = &k1
		var k0 [32]byte
		keys["zero"] = &k0
		allFF := new([32]byte)
		for i := range allFF {
			allFF[i] = 0xff // clamps to max-r
		}
		keys["all-ff"] = allFF

		for name, key := range keys {
			for _, adLen := range []int{0, 15, 16, 300} {
				for _, ctLen := range []int{0, 1, 15, 16, 17, 127, 128, 129, 255, 256, 257, 1023, 1024, 1420, 1424, 2048, 4096 - 300} {
					if !checkMAC(t, key, ff[:adLen], ff[:ctLen]) {
						t.Logf("key %s", name)
					}
				}
			}
		}
	})
}

// TestMACNearP picks messages so that the final accumulator is congruent
// to p+delta for small delta, i.e. h mod p lands just below p or just
// above 0, exercising the final conditional subtraction. With r = 1 and
// two ct blocks, the accumulator is never reduced on the way, so it even
// ends exactly at p+delta.
func TestMACNearP(t *testing.T) {
	withPaths(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		keys := []*[32]byte{maxKey(), new([32]byte), new([32]byte)}
		keys[1][0] = 1 // r = 1
		for i := range keys[2] {
			keys[2][i] = byte(rng.Uint32())
		}
		ran := 0
		for _, key := range keys {
			for _, nBlocks := range []int{1, 2, 3, 8, 16, 17, 40, 89, 130} {
				for delta := int64(-3); delta <= 3; delta++ {
					ct := nearP(rng, key, nBlocks, delta)
					if ct == nil {
						// Not every residue is reachable with
						// one block, or with r = 1 and a few
						// blocks; the count below checks that
						// the rest were.
						continue
					}
					ran++
					if !checkMAC(t, key, nil, ct) {
						t.Logf("nBlocks=%d delta=%d", nBlocks, delta)
					}
				}
			}
		}
		if ran < 7*(8*len(keys)-3) {
			t.Errorf("only %d of the near-p cases could be built", ran)
		}
	})
}

// nearP returns nBlocks·16 bytes of ct, without ad, whose Poly1305
// accumulator under key ends congruent to p+delta. The leading blocks
// are random; the last one is solved for (retrying while the solution is
// not below 2^128).
func nearP(rng *rand.Rand, key *[32]byte, nBlocks int, delta int64) []byte {
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 130), big.NewInt(5))
	two128 := new(big.Int).Lsh(big.NewInt(1), 128)
	le := func(b []byte) *big.Int {
		be := make([]byte, len(b))
		for i := range b {
			be[len(b)-1-i] = b[i]
		}
		return new(big.Int).SetBytes(be)
	}
	var rb [16]byte
	copy(rb[:], key[:16])
	binary.LittleEndian.PutUint64(rb[0:], binary.LittleEndian.Uint64(rb[0:])&rClamp0)
	binary.LittleEndian.PutUint64(rb[8:], binary.LittleEndian.Uint64(rb[8:])&rClamp1)
	r := le(rb[:])
	rInv := new(big.Int).ModInverse(r, p)
	ct := make([]byte, 16*nBlocks)
	var lenBlock [16]byte
	binary.LittleEndian.PutUint64(lenBlock[8:], uint64(len(ct)))
	L := new(big.Int).Add(le(lenBlock[:]), two128)
	target := new(big.Int).Add(p, big.NewInt(delta))
	for range 100 {
		for i := range ct[:len(ct)-16] {
			ct[i] = byte(rng.Uint32())
		}
		// h before the last ct block
		h := new(big.Int)
		for i := 0; i+16 < len(ct); i += 16 {
			h.Add(h, le(ct[i:i+16]))
			h.Add(h, two128)
			h.Mul(h, r)
			h.Mod(h, p)
		}
		// ((h + m + 2^128)·r + L)·r ≡ target
		m := new(big.Int).Mul(target, rInv)
		m.Sub(m, L)
		m.Mul(m, rInv)
		m.Sub(m, h)
		m.Sub(m, two128)
		m.Mod(m, p)
		if m.Cmp(two128) >= 0 {
			continue
		}
		last := ct[len(ct)-16:]
		clear(last)
		mb := m.Bytes()
		for i := range mb {
			last[i] = mb[len(mb)-1-i]
		}
		return ct
	}
	return nil
}

// TestPolyVectorKernel drives polyBlocksVector directly, so that every
// shape of its input (no chunk in place, one or two tail chunks, a last
// chunk of 1 to 8 blocks, either set holding it) is covered, from
// arbitrary accumulator states, against polyBlocksGeneric.
func TestPolyVectorKernel(t *testing.T) {
	if !ifmaDetected {
		t.Skip("AVX-512 IFMA not available (CPU or purego build)")
	}
	func() {
		rng := rand.New(rand.NewPCG(5, 6))
		data := make([]byte, 128*9+256)
		for round := range 4 {
			for i := range data {
				switch round {
				case 0:
					data[i] = byte(rng.Uint32())
				default:
					data[i] = 0xff
				}
			}
			for inPlace := 0; inPlace <= 9; inPlace++ {
				for nTail := 0; nTail <= 16; nTail++ {
					if inPlace == 0 && nTail == 0 {
						continue
					}
					st := polyState{
						h0: rng.Uint64(), h1: rng.Uint64(), h2: rng.Uint64N(5),
						r0: rng.Uint64() & rClamp0, r1: rng.Uint64() & rClamp1,
					}
					if round >= 2 {
						st.r0, st.r1 = rClamp0, rClamp1
					}
					if round == 3 {
						// Largest accumulator polyBlocksGeneric can leave.
						st.h0, st.h1, st.h2 = ^uint64(0), ^uint64(0), 4
					}
					msg := data[:128*inPlace]
					var tail [256]byte
					copy(tail[:16*nTail], data[128*inPlace:])
					want := st
					polyBlocksGeneric(&want, msg)
					polyBlocksGeneric(&want, tail[:16*nTail])
					got := st
					polyBlocksVector(&got, msg, &tail, nTail)
					var wt, gt [16]byte
					var key [32]byte
					want.finish(&wt, &key)
					got.finish(&gt, &key)
					if wt != gt || got.h2 > 4 {
						t.Fatalf("round %d, %d chunks in place, %d tail blocks: h = %x %x %x, want %x %x %x",
							round, inPlace, nTail, got.h2, got.h1, got.h0, want.h2, want.h1, want.h0)
					}
				}
			}
		}
	}()
}

func FuzzMAC(f *testing.F) {
	f.Add(make([]byte, 32), []byte{}, make([]byte, 1420))
	f.Add(maxKey()[:], []byte("ad"), bytes.Repeat([]byte{0xff}, 300))
	f.Add(bytes.Repeat([]byte{0xff}, 32), bytes.Repeat([]byte{0xff}, 17), bytes.Repeat([]byte{0xff}, 2000))
	f.Fuzz(func(t *testing.T, keyb, ad, ct []byte) {
		if len(keyb) < 32 {
			return
		}
		key := (*[32]byte)(keyb[:32])
		want := refMAC(key, ad, ct)
		for _, ifma := range []bool{false, true} {
			if ifma && !ifmaDetected {
				continue
			}
			restore := setIFMA(ifma)
			var got [16]byte
			macAEAD(&got, key, ad, ct)
			restore()
			if got != want {
				t.Fatalf("ifma=%v len(ad)=%d len(ct)=%d: got %x, want %x", ifma, len(ad), len(ct), got, want)
			}
		}
	})
}

func TestMACNoAllocs(t *testing.T) {
	withPaths(t, func(t *testing.T) {
		var key [32]byte
		var tag [16]byte
		ad := make([]byte, 13)
		ct := make([]byte, 1420)
		if n := testing.AllocsPerRun(100, func() { macAEAD(&tag, &key, ad, ct) }); n != 0 {
			t.Errorf("macAEAD allocates %v times per call", n)
		}
	})
}

func BenchmarkMAC(b *testing.B) {
	sizes := []int{64, 576, 1420, 8192}
	var key [32]byte
	for i := range key {
		key[i] = byte(i * 7)
	}
	for _, size := range sizes {
		ct := make([]byte, size)
		paths := []struct {
			name string
			on   bool
		}{{"generic", false}, {"ifma", true}}
		for _, p := range paths {
			b.Run(fmt.Sprintf("%s/%d", p.name, size), func(b *testing.B) {
				if p.on && !ifmaDetected {
					b.Skip("AVX-512 IFMA not available")
				}
				defer setIFMA(p.on)()
				var tag [16]byte
				b.SetBytes(int64(size))
				for b.Loop() {
					key[0]++ // a fresh key per packet, as in WireGuard
					macAEAD(&tag, &key, nil, ct)
				}
			})
		}
		// x/crypto over the same amount of data (the unpadded ct; the
		// AEAD framing adds at most two blocks).
		b.Run(fmt.Sprintf("xcrypto/%d", size), func(b *testing.B) {
			var tag [16]byte
			b.SetBytes(int64(size))
			for b.Loop() {
				key[0]++
				poly1305.Sum(&tag, ct, &key)
			}
		})
	}
}
