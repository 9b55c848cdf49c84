// Package uapi implements the WireGuard cross-platform configuration
// protocol spoken by wg(8) over a Unix socket: `set=1` and `get=1`
// transactions of key=value lines ending at a blank line, answered with
// `errno=N`. It is an adapter between that text and the typed
// device.Config / device.State: a set transaction is parsed whole into one
// device.Config and applied once, so a transaction that fails anywhere
// changes nothing.
package uapi

import (
	"errors"
	"fmt"
	"strconv"
	"syscall"

	"github.com/gotatun/gotatun/device"
)

// Configurable is what the protocol configures: a device.
type Configurable interface {
	// Apply applies a whole change atomically: on error nothing changed.
	Apply(device.Config) error
	// State returns a snapshot of the configuration and counters.
	State() device.State
}

// Errno values answered for failures, the same ones wireguard-go answers
// for the same failures.
const (
	// ErrnoIO: the transaction could not be read or the answer written.
	ErrnoIO = syscall.EIO
	// ErrnoProtocol: a line is not key=value, or is too long.
	ErrnoProtocol = syscall.EPROTO
	// ErrnoInvalid: an unknown key, or a value that does not parse.
	ErrnoInvalid = syscall.EINVAL
	// ErrnoAddrInUse: the listen port cannot be bound.
	ErrnoAddrInUse = syscall.EADDRINUSE
)

// MaxLineLength is the longest line, without its newline, a transaction may
// contain: the longest wireguard-go accepts (its line scanner holds 64 KiB
// with the newline). Every line of wg(8) is far shorter, but a
// daita_machine line carries a whole machine string, and the Maybenot
// reference parses strings of up to about 43,700 characters.
const MaxLineLength = 65535

// Error is a failed transaction: the errno answered to the client and what
// was wrong. Values of secret keys are never included.
type Error struct {
	// Errno is the positive errno value (ErrnoInvalid, ErrnoProtocol, …).
	Errno syscall.Errno
	// Line is the 1-based line number within the transaction, 0 if the
	// failure is not tied to a line.
	Line int
	// Key is the key of the offending line, if any.
	Key string
	// Value is the offending value (truncated, and empty for secret keys).
	Value string
	// Err is the underlying problem.
	Err error
}

func (e *Error) Error() string {
	s := "uapi: "
	if e.Line > 0 {
		s += "line " + strconv.Itoa(e.Line) + ": "
	}
	if e.Key != "" {
		s += e.Key
		if e.Value != "" {
			s += "=" + strconv.Quote(e.Value)
		}
		s += ": "
	}
	return s + e.Err.Error()
}

// Unwrap returns the underlying problem.
func (e *Error) Unwrap() error { return e.Err }

// Sentinel problems wrapped in *Error.
var (
	// ErrUnknownKey is a key the protocol does not define at that place.
	ErrUnknownKey = errors.New("unknown key")
	// ErrSyntax is a line that is not key=value.
	ErrSyntax = errors.New("line is not key=value")
	// ErrLineTooLong is a line longer than MaxLineLength.
	ErrLineTooLong = fmt.Errorf("line longer than %d bytes", MaxLineLength)
	// ErrNoPeer is a peer key before any public_key line.
	ErrNoPeer = errors.New("peer key before any public_key")
	// ErrTruncated is a transaction cut off before its blank line.
	ErrTruncated = errors.New("transaction ended before its blank line")
)

// ErrnoOf returns the errno to answer for err: the one an *Error carries,
// else the first syscall.Errno in the chain (EADDRINUSE when the listen
// port cannot be bound, say), else EINVAL. It returns 0 for nil.
func ErrnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var ue *Error
	if errors.As(err, &ue) && ue.Errno != 0 {
		return ue.Errno
	}
	var en syscall.Errno
	if errors.As(err, &en) && en != 0 {
		return en
	}
	return ErrnoInvalid
}

// shortValue bounds a value quoted in an error message.
func shortValue(v string) string {
	const max = 80
	if len(v) > max {
		return v[:max] + "…"
	}
	return v
}
