package uapi

import "strings"

// Error messages and log lines quote what was wrong, but never a secret:
// not the value of private_key or preshared_key, and not text that may be
// a key in the wrong place (a misspelt key name, a missing "=", a key
// pasted as the operation line).

// isSecretKey reports whether key's value is a secret.
func isSecretKey(key string) bool {
	return key == "private_key" || key == "preshared_key"
}

// keyLikeRun is the shortest run of hex or base64 characters treated as
// possibly part of a key. No value of the protocol other than a key has
// one this long: prefixes, endpoints and numbers are shorter or split by
// ':', '.', '/' or '['.
const keyLikeRun = 24

// isKeyChar reports whether c is in the base64 alphabet (hex included).
func isKeyChar(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '+' || c == '/' || c == '='
}

// scrub replaces every run of keyLikeRun or more base64 characters in s
// with "…".
func scrub(s string) string {
	var b strings.Builder
	run := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && isKeyChar(s[i]) {
			run++
			continue
		}
		if run >= keyLikeRun {
			b.WriteString("…")
		} else {
			b.WriteString(s[i-run : i])
		}
		run = 0
		if i < len(s) {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// quotable returns value as it may appear in an error or a log line: empty
// for a secret key, scrubbed of anything that may be a key and bounded in
// length otherwise.
func quotable(key, value string) string {
	if isSecretKey(key) {
		return ""
	}
	return shortValue(scrub(value))
}

// scrubbedError is err with what may be a key taken out of its message
// (parsers of addresses and numbers quote their input); errors.Is and
// errors.As still see err.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

func scrubError(err error) error {
	if msg := scrub(err.Error()); msg != err.Error() {
		return &scrubbedError{msg: msg, err: err}
	}
	return err
}
