// Package daita is the DAITA runtime of a WireGuard device: per peer, a
// Maybenot framework running the peer's machines, and the actions those
// machines ask for carried out on the tunnel: decoy packets, delays of
// outgoing traffic through a bounded queue, and the accounting of
// constant-size padding.
//
// It knows nothing of WireGuard sessions or sockets. The device reports
// traffic events through the methods of [Peer] and lends it a [Tunnel] to
// seal decoys and send messages. All timers of all peers of one device live
// in one [Scheduler] (a timer heap driven by one re-armed clock timer), so
// the number of goroutines does not grow with the number of DAITA peers.
//
// Terms follow GotaTun: a decoy is what Maybenot calls a padding packet;
// a delay is what Maybenot calls blocking; padding is the constant-size
// padding of normal packets to the TUN MTU.
package daita

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/gotatun/gotatun/maybenot"
)

// Defaults of a DAITA configuration, as GotaTun has them.
const (
	DefaultMaxDelayedPackets = 1024
	DefaultMinDelayCapacity  = 50
	// MaxDelayedPacketsLimit bounds MaxDelayedPackets: a queue holds one
	// packet buffer (about 1.5 KiB) per entry.
	MaxDelayedPacketsLimit = 1 << 16
	// MaxMachines bounds the machines of one peer.
	MaxMachines = 64
)

// ErrInvalidConfig is wrapped by every error of Config.Validate.
var ErrInvalidConfig = errors.New("daita: invalid configuration")

// Config is a peer's DAITA settings.
type Config struct {
	// Machines are Maybenot machine strings (version "02"); machine i of
	// the framework is Machines[i]. They are kept as given, to be echoed.
	Machines []string
	// MaxDecoyFrac and MaxDelayFrac are the framework-wide caps on the
	// fraction of decoys among sent packets and of time spent delaying, in
	// [0, 1]; 0 means no cap.
	MaxDecoyFrac float64
	MaxDelayFrac float64
	// MaxDelayedPackets is the capacity of the delay queue (at least 1).
	MaxDelayedPackets int
	// MinDelayCapacity ends a delay early when the queue's free space
	// drops below it.
	MinDelayCapacity int
}

// DefaultConfig returns the settings DAITA starts from: no machines, no
// fraction caps, a 1024-packet delay queue that ends a delay when fewer
// than 50 places are left.
func DefaultConfig() Config {
	return Config{MaxDelayedPackets: DefaultMaxDelayedPackets, MinDelayCapacity: DefaultMinDelayCapacity}
}

// Clone returns a copy of c that shares nothing with it.
func (c Config) Clone() Config {
	c.Machines = slices.Clone(c.Machines)
	return c
}

// Equal reports whether c and o are the same settings.
func (c Config) Equal(o Config) bool {
	return slices.Equal(c.Machines, o.Machines) && c.MaxDecoyFrac == o.MaxDecoyFrac &&
		c.MaxDelayFrac == o.MaxDelayFrac && c.MaxDelayedPackets == o.MaxDelayedPackets &&
		c.MinDelayCapacity == o.MinDelayCapacity
}

// CheckFrac checks a fraction setting: a finite number in [0, 1].
func CheckFrac(name string, f float64) error {
	if math.IsNaN(f) || f < 0 || f > 1 {
		return fmt.Errorf("%w: %s %v is outside [0, 1]", ErrInvalidConfig, name, f)
	}
	return nil
}

// Validate checks every setting, parsing every machine string.
func (c *Config) Validate() error {
	if err := CheckFrac("max_decoy_frac", c.MaxDecoyFrac); err != nil {
		return err
	}
	if err := CheckFrac("max_delay_frac", c.MaxDelayFrac); err != nil {
		return err
	}
	if c.MaxDelayedPackets < 1 || c.MaxDelayedPackets > MaxDelayedPacketsLimit {
		return fmt.Errorf("%w: max_delayed_packets %d is outside 1 to %d", ErrInvalidConfig, c.MaxDelayedPackets, MaxDelayedPacketsLimit)
	}
	if c.MinDelayCapacity < 0 || c.MinDelayCapacity > MaxDelayedPacketsLimit {
		return fmt.Errorf("%w: min_delay_capacity %d is outside 0 to %d", ErrInvalidConfig, c.MinDelayCapacity, MaxDelayedPacketsLimit)
	}
	if len(c.Machines) > MaxMachines {
		return fmt.Errorf("%w: %d machines, at most %d", ErrInvalidConfig, len(c.Machines), MaxMachines)
	}
	for i, s := range c.Machines {
		if _, err := parseMachine(s); err != nil {
			return fmt.Errorf("%w: machine %d: %w", ErrInvalidConfig, i, err)
		}
	}
	return nil
}

// machines returns the parsed machines of c, sharing their states with
// every other peer that runs the same strings.
func (c *Config) machines() ([]maybenot.Machine, error) {
	ms := make([]maybenot.Machine, len(c.Machines))
	for i, s := range c.Machines {
		m, err := parseMachine(s)
		if err != nil {
			return nil, fmt.Errorf("%w: machine %d: %w", ErrInvalidConfig, i, err)
		}
		ms[i] = *m
	}
	return ms, nil
}

// The machine cache: a relay gives thousands of peers the same few
// machines, and a parsed machine is much larger than its string.
var (
	cacheMu sync.Mutex
	cache   = map[string]*maybenot.Machine{}
)

const maxCached = 256

func parseMachine(s string) (*maybenot.Machine, error) {
	cacheMu.Lock()
	m := cache[s]
	cacheMu.Unlock()
	if m != nil {
		return m, nil
	}
	m, err := maybenot.ParseMachine(s)
	if err != nil {
		return nil, err
	}
	cacheMu.Lock()
	if len(cache) >= maxCached {
		clear(cache)
	}
	cache[s] = m
	cacheMu.Unlock()
	return m, nil
}

// Stats are a peer's DAITA counters, in bytes of plaintext payload.
type Stats struct {
	// TxPaddingBytes: zeros appended to normal packets sent.
	TxPaddingBytes uint64
	// RxPaddingBytes: what received normal packets carried beyond their
	// IP length rounded up to 16.
	RxPaddingBytes uint64
	// TxDecoyBytes: payload of decoys sent or queued to be sent.
	TxDecoyBytes uint64
	// RxDecoyBytes: payload of decoys received.
	RxDecoyBytes uint64
	// RxMalformedDecoys counts received decoys whose length field is
	// larger than their payload (dropped like any decoy).
	RxMalformedDecoys uint64
	// TxDecoysDropped counts decoys that had to be dropped (delay queue
	// full); decoys with no session or endpoint are not counted.
	TxDecoysDropped uint64
	// Delayed counts data messages that went through the delay queue.
	Delayed uint64
}
