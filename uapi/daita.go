package uapi

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/gotatun/gotatun/daita"
	"github.com/gotatun/gotatun/device"
)

// DAITA keys, GotaTun's UAPI extension. In a set, daita_enable comes first
// in a peer section: 1 resets the peer's DAITA settings to the defaults
// (no machines) for the keys after it to fill in, 0 turns DAITA off. A peer
// section with no daita_ key leaves DAITA as it is. In a get, a peer with
// DAITA has these lines after persistent_keepalive_interval and before its
// allowed_ip lines: the settings, then the four counters.
const (
	keyDAITAEnable            = "daita_enable"
	keyDAITAMachine           = "daita_machine"
	keyDAITAMaxDecoyFrac      = "daita_max_decoy_frac"
	keyDAITAMaxDelayFrac      = "daita_max_delay_frac"
	keyDAITAMaxDelayedPackets = "daita_max_delayed_packets"
	keyDAITAMinDelayCapacity  = "daita_min_delay_capacity"
)

// ErrDAITANotEnabled is a daita_ key not preceded by daita_enable=1 in its
// peer section.
var ErrDAITANotEnabled = errors.New("DAITA must be enabled with daita_enable=1")

func isDAITAKey(key string) bool {
	switch key {
	case keyDAITAEnable, keyDAITAMachine, keyDAITAMaxDecoyFrac, keyDAITAMaxDelayFrac,
		keyDAITAMaxDelayedPackets, keyDAITAMinDelayCapacity:
		return true
	}
	return false
}

// daitaLine handles a daita_ key of a peer section; every value is checked
// here, so a bad one fails the whole transaction.
func (p *setParser) daitaLine(pc *device.PeerConfig, key, value string) {
	if key == keyDAITAEnable {
		switch value {
		case "1":
			cfg := daita.DefaultConfig()
			pc.DAITA, pc.DisableDAITA = &cfg, false
			p.daitaOn = true
		case "0":
			pc.DAITA, pc.DisableDAITA = nil, true
			p.daitaOn = false
		default:
			p.fail(ErrnoInvalid, key, value, errors.New(`the only valid values are "1" and "0"`))
		}
		return
	}
	if !p.daitaOn || pc.DAITA == nil {
		p.fail(ErrnoInvalid, key, value, ErrDAITANotEnabled)
		return
	}
	cfg := pc.DAITA
	switch key {
	case keyDAITAMachine:
		if len(cfg.Machines) >= daita.MaxMachines {
			p.fail(ErrnoInvalid, key, value, fmt.Errorf("more than %d machines", daita.MaxMachines))
			return
		}
		one := daita.Config{Machines: []string{value}, MaxDelayedPackets: 1}
		if err := one.Validate(); err != nil {
			p.fail(ErrnoInvalid, key, value, err)
			return
		}
		cfg.Machines = append(cfg.Machines, value)
	case keyDAITAMaxDecoyFrac, keyDAITAMaxDelayFrac:
		f, err := strconv.ParseFloat(value, 64)
		if err == nil {
			err = daita.CheckFrac(key, f)
		} else {
			err = errors.New("not a decimal number")
		}
		if err != nil {
			p.fail(ErrnoInvalid, key, value, err)
			return
		}
		if key == keyDAITAMaxDecoyFrac {
			cfg.MaxDecoyFrac = f
		} else {
			cfg.MaxDelayFrac = f
		}
	case keyDAITAMaxDelayedPackets:
		n, err := parseUint(value, 32)
		if err == nil && (n < 1 || n > daita.MaxDelayedPacketsLimit) {
			err = fmt.Errorf("must be 1 to %d", daita.MaxDelayedPacketsLimit)
		}
		if err != nil {
			p.fail(ErrnoInvalid, key, value, err)
			return
		}
		cfg.MaxDelayedPackets = int(n)
	case keyDAITAMinDelayCapacity:
		n, err := parseUint(value, 32)
		if err == nil && n > daita.MaxDelayedPacketsLimit {
			err = fmt.Errorf("must be 0 to %d", daita.MaxDelayedPacketsLimit)
		}
		if err != nil {
			p.fail(ErrnoInvalid, key, value, err)
			return
		}
		cfg.MinDelayCapacity = int(n)
	}
}

// appendDAITA writes a peer's DAITA lines of a get answer.
func appendDAITA(b []byte, cfg *daita.Config, st *daita.Stats) []byte {
	if cfg == nil {
		return b
	}
	b = append(b, "daita_enable=1\n"...)
	b = appendDAITAConfig(b, cfg)
	if st != nil {
		b = appendUint(b, "daita_rx_padding_bytes", st.RxPaddingBytes)
		b = appendUint(b, "daita_tx_padding_bytes", st.TxPaddingBytes)
		b = appendUint(b, "daita_rx_decoy_packet_bytes", st.RxDecoyBytes)
		b = appendUint(b, "daita_tx_decoy_packet_bytes", st.TxDecoyBytes)
	}
	return b
}

// appendDAITAConfig writes the settings after daita_enable=1, machines
// echoed as given.
func appendDAITAConfig(b []byte, cfg *daita.Config) []byte {
	for _, m := range cfg.Machines {
		b = append(b, "daita_machine="...)
		b = append(b, m...)
		b = append(b, '\n')
	}
	b = appendUint(b, keyDAITAMaxDelayedPackets, uint64(cfg.MaxDelayedPackets))
	b = appendUint(b, keyDAITAMinDelayCapacity, uint64(cfg.MinDelayCapacity))
	b = appendFloat(b, keyDAITAMaxDecoyFrac, cfg.MaxDecoyFrac)
	b = appendFloat(b, keyDAITAMaxDelayFrac, cfg.MaxDelayFrac)
	return b
}

func appendFloat(b []byte, name string, f float64) []byte {
	b = append(b, name...)
	b = append(b, '=')
	b = strconv.AppendFloat(b, f, 'f', -1, 64)
	return append(b, '\n')
}

// appendDAITASet writes a peer change's DAITA lines of a set transaction.
func appendDAITASet(b []byte, pc *device.PeerConfig) []byte {
	switch {
	case pc.DAITA != nil:
		b = append(b, "daita_enable=1\n"...)
		b = appendDAITAConfig(b, pc.DAITA)
	case pc.DisableDAITA:
		b = append(b, "daita_enable=0\n"...)
	}
	return b
}
