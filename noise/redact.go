package noise

import (
	"fmt"
	"log/slog"
	"strconv"
)

// The secret key types never print themselves: String, every fmt verb
// (%v, %+v, %#v, %s, %q, %x, …) and log/slog show only whether the key is
// set, so a key cannot reach a log line or an error message by accident,
// not even inside a struct such as device.State, and encoding/json (which
// slog's JSON handler uses for nested values) writes String too. Base64
// and Hex give the key itself where it is really wanted.

const (
	redactedSet   = "(redacted)"
	redactedUnset = "(unset)"
)

func redacted(name string, zero bool) string {
	if zero {
		return name + redactedUnset
	}
	return name + redactedSet
}

// String returns "PrivateKey(redacted)", or "PrivateKey(unset)" for the
// zero key.
func (k PrivateKey) String() string { return redacted("PrivateKey", k.IsZero()) }

// GoString is String.
func (k PrivateKey) GoString() string { return k.String() }

// Format writes String for every verb.
func (k PrivateKey) Format(f fmt.State, verb rune) { formatRedacted(f, verb, k.String()) }

// LogValue makes log/slog print String.
func (k PrivateKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// MarshalJSON writes String as a JSON string.
func (k PrivateKey) MarshalJSON() ([]byte, error) { return strconv.AppendQuote(nil, k.String()), nil }

// String returns "PresharedKey(redacted)", or "PresharedKey(unset)" when
// there is no preshared key.
func (k PresharedKey) String() string { return redacted("PresharedKey", k.IsZero()) }

// GoString is String.
func (k PresharedKey) GoString() string { return k.String() }

// Format writes String for every verb.
func (k PresharedKey) Format(f fmt.State, verb rune) { formatRedacted(f, verb, k.String()) }

// LogValue makes log/slog print String.
func (k PresharedKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// MarshalJSON writes String as a JSON string.
func (k PresharedKey) MarshalJSON() ([]byte, error) { return strconv.AppendQuote(nil, k.String()), nil }

func formatRedacted(f fmt.State, verb rune, s string) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", s)
		return
	}
	fmt.Fprint(f, s)
}
