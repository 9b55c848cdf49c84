package noise

import (
	"errors"
	"strings"
	"testing"
)

// 44 base64 characters without padding decode to 33 bytes; ParseKey must
// reject them, not write past its 32-byte result.
func TestParseKeyUnpaddedBase64(t *testing.T) {
	for _, s := range []string{strings.Repeat("0", 44), strings.Repeat("A", 42) + "=="} {
		_, err := ParseKey(s)
		if !errors.Is(err, ErrKeyFormat) {
			t.Errorf("ParseKey(%q): %v", s, err)
		}
	}
	if k, err := ParseKey(strings.Repeat("A", 42) + "E="); err != nil || k[KeySize-1] != 1 {
		t.Errorf("ParseKey of a padded key: %v, %v", k, err)
	}
}
