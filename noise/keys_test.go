package noise

import "testing"

func TestGeneratePrivateKeyNilRand(t *testing.T) {
	a, err := GeneratePrivateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := GeneratePrivateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.IsZero() || a == b {
		t.Fatal("nil rand did not give fresh random keys")
	}
	if a[0]&7 != 0 || a[31]&128 != 0 || a[31]&64 == 0 {
		t.Fatalf("key not clamped: %x", a[:])
	}
}
