package cryptoimpl

import "testing"

func TestParseEnv(t *testing.T) {
	for _, c := range []struct {
		v      string
		on, ok bool
	}{
		{"", false, true},
		{"auto", false, true},
		{"xcrypto", true, true},
		{"XCRYPTO", false, false},
		{"x/crypto", false, false},
		{"1", false, false},
	} {
		on, err := parseEnv(c.v)
		if on != c.on || (err == nil) != c.ok {
			t.Errorf("%s=%q: forced %v, error %v", Env, c.v, on, err)
		}
	}
}

func TestSet(t *testing.T) {
	old := Set(true)
	defer Set(old)
	if !XCrypto() {
		t.Fatal("Set(true) did not force x/crypto")
	}
	Set(false)
	if XCrypto() != purego {
		t.Fatalf("Set(false): XCrypto() = %v with purego %v", XCrypto(), purego)
	}
}
