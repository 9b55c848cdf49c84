package dnsname

import (
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	for s, want := range map[string]bool{
		"example.com": true, "example.com.": true, "a": true, "_srv.x-y.test": true, "1.2.3.4": true,
		"": false, ".": false, "a..b": false, "-a.b": false, "a-.b": false, "a b": false, "a/b": false,
		strings.Repeat("a", 63): true, strings.Repeat("a", 64): false,
		strings.Repeat("a.", 126) + "a": true, strings.Repeat("a.", 127) + "a": false,
	} {
		if got := Valid(s); got != want {
			t.Errorf("Valid(%q) = %v, want %v", s, got, want)
		}
	}
}
