// Package dnsname checks host names.
package dnsname

import "strings"

// Valid reports whether s looks like a DNS name: dot-separated labels of
// 1 to 63 letters, digits, '-' (not first or last) and '_', at most 253
// bytes, with an optional final dot.
func Valid(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
