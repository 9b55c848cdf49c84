// Package cryptoimpl holds the one switch that makes gotatun use
// golang.org/x/crypto for ChaCha20-Poly1305, X25519 and the keyed BLAKE2s
// MACs instead of its own AVX-512 AEAD, X25519 ladder and stack-only
// BLAKE2s: for an audit that trusts only x/crypto,
// or to rule our code out when chasing a problem.
//
// It is on when the program is built with -tags purego, when the
// environment variable GOTATUN_CRYPTO is "xcrypto" at start-up, or once
// device.Options.XCrypto (which calls Force) has been set. It is
// process-wide: keys already in use keep the implementation they were
// created with, every key made afterwards uses x/crypto.
package cryptoimpl

import (
	"fmt"
	"os"
	"sync/atomic"
)

// Env is the environment variable read at start-up: "xcrypto" forces
// x/crypto, "" or "auto" leaves the choice to the CPU.
const Env = "GOTATUN_CRYPTO"

var (
	forced atomic.Bool
	envErr error
)

func init() {
	on, err := parseEnv(os.Getenv(Env))
	// An unknown value forces x/crypto, the conservative choice, until
	// device.New reports it.
	forced.Store(on || err != nil)
	envErr = err
}

func parseEnv(v string) (bool, error) {
	switch v {
	case "", "auto":
		return false, nil
	case "xcrypto":
		return true, nil
	}
	return false, fmt.Errorf("%s=%q: want \"xcrypto\", \"auto\" or unset", Env, v)
}

// XCrypto reports whether x/crypto is forced.
func XCrypto() bool { return purego || forced.Load() }

// Force forces x/crypto for every key made from now on.
func Force() { forced.Store(true) }

// Set turns the run-time switch on or off and returns its old value, for
// tests that compare both implementations. The purego build tag cannot be
// turned off.
func Set(on bool) (old bool) { return forced.Swap(on) }

// EnvError is the error for an invalid GOTATUN_CRYPTO value, or nil.
func EnvError() error { return envErr }
