package uapi

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gotatun/gotatun/daita"
	"github.com/gotatun/gotatun/maybenot"
)

const (
	noopMachine = "02eNpjYEAHjOgCAAA0AAI="
	padMachine  = "02eNp1ibEJAEAIA5Nf7B3N0v1cSESwEL0m5A6YvBqSgP7WeXfM5UoBW7ICYg=="
)

func TestParseSetDAITA(t *testing.T) {
	in := "public_key=" + hexPub1 + "\ndaita_enable=1\ndaita_machine=" + padMachine + "\ndaita_machine=" + noopMachine +
		"\ndaita_max_decoy_frac=0.5\ndaita_max_delay_frac=0.25\ndaita_max_delayed_packets=100\ndaita_min_delay_capacity=0\n" +
		"public_key=" + hexPub2 + "\ndaita_enable=0\n" +
		"public_key=" + hexPub3 + "\ndaita_enable=1\n" +
		"public_key=" + hexPub3 + "\nallowed_ip=10.0.0.0/8\n\n"
	cfg, err := ParseSet(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := daita.Config{Machines: []string{padMachine, noopMachine}, MaxDecoyFrac: 0.5, MaxDelayFrac: 0.25, MaxDelayedPackets: 100}
	if p := cfg.Peers[0]; p.DAITA == nil || !p.DAITA.Equal(want) || p.DisableDAITA {
		t.Fatalf("peer 1: %+v", p.DAITA)
	}
	if p := cfg.Peers[1]; p.DAITA != nil || !p.DisableDAITA {
		t.Fatalf("peer 2: %+v %v", p.DAITA, p.DisableDAITA)
	}
	if p := cfg.Peers[2]; p.DAITA == nil || !p.DAITA.Equal(daita.DefaultConfig()) {
		t.Fatalf("peer 3: %+v", p.DAITA)
	}
	if p := cfg.Peers[3]; p.DAITA != nil || p.DisableDAITA {
		t.Fatal("a section without daita_ keys changed DAITA")
	}
	// AppendSet is the inverse.
	again, err := ParseSet(strings.NewReader(string(AppendSet(nil, cfg)) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !again.Peers[0].DAITA.Equal(want) || !again.Peers[1].DisableDAITA {
		t.Fatalf("round trip: %+v", again.Peers[0].DAITA)
	}
}

func TestParseSetDAITARefused(t *testing.T) {
	peer := "public_key=" + hexPub1 + "\n"
	on := peer + "daita_enable=1\n"
	for _, in := range []string{
		"daita_enable=1\n",                           // before any peer
		peer + "daita_machine=" + noopMachine + "\n", // not enabled
		peer + "daita_max_decoy_frac=0.5\n",
		on + "daita_enable=0\ndaita_max_delay_frac=0\n", // disabled again
		on + "public_key=" + hexPub2 + "\ndaita_max_decoy_frac=0.1\n",
		peer + "daita_enable=true\n",
		peer + "daita_enable=2\n",
		on + "daita_machine=02eNpjYEAHjOgCAAA0AAI\n", // bad base64 padding
		on + "daita_machine=\n",
		on + "daita_machine=" + noopMachine + "x\n",
		on + "daita_max_decoy_frac=1.5\n",
		on + "daita_max_decoy_frac=-0.1\n",
		on + "daita_max_delay_frac=NaN\n",
		on + "daita_max_delay_frac=inf\n",
		on + "daita_max_delay_frac=half\n",
		on + "daita_max_delayed_packets=0\n",
		on + "daita_max_delayed_packets=-1\n",
		on + "daita_max_delayed_packets=1000000\n",
		on + "daita_min_delay_capacity=-1\n",
		on + "daita_min_delay_capacity=x\n",
		on + "daita_unknown=1\n",
	} {
		cfg, err := ParseSet(strings.NewReader(in + "\n"))
		var ue *Error
		if !errors.As(err, &ue) || ue.Errno != ErrnoInvalid {
			t.Errorf("%q: got %v, want EINVAL", in, err)
			continue
		}
		if len(cfg.Peers) != 0 {
			t.Errorf("%q: partial config returned", in)
		}
	}
}

// TestDAITASetGet: set through the socket, then get: the DAITA lines come
// after persistent_keepalive_interval (after tx_bytes) and before the
// allowed_ip lines, machines echoed as given; a failed set changes nothing.
func TestDAITASetGet(t *testing.T) {
	dev := newRealDevice(t)
	path, _ := startServer(t, dev)
	c := dial(t, path)
	set := "set=1\nprivate_key=" + hexPriv + "\npublic_key=" + hexPub1 + "\nallowed_ip=10.0.0.0/24\n" +
		"daita_enable=1\ndaita_machine=" + padMachine + "\ndaita_machine=" + noopMachine + "\ndaita_max_decoy_frac=0.5\n\n"
	if got := c.do(set); got != "errno=0\n\n" {
		t.Fatal(got)
	}
	get := c.do("get=1\n\n")
	want := "tx_bytes=0\nrx_bytes=0\npersistent_keepalive_interval=0\n" +
		"daita_enable=1\ndaita_machine=" + padMachine + "\ndaita_machine=" + noopMachine +
		"\ndaita_max_delayed_packets=1024\ndaita_min_delay_capacity=50\ndaita_max_decoy_frac=0.5\ndaita_max_delay_frac=0\n" +
		"daita_rx_padding_bytes=0\ndaita_tx_padding_bytes=0\ndaita_rx_decoy_packet_bytes=0\ndaita_tx_decoy_packet_bytes=0\n" +
		"allowed_ip=10.0.0.0/24\nerrno=0\n\n"
	if !strings.HasSuffix(get, want) {
		t.Fatalf("get:\n%s\nwant it to end:\n%s", get, want)
	}
	// A bad value late in a transaction: nothing of it is applied.
	bad := "set=1\npublic_key=" + hexPub1 + "\ndaita_enable=0\npublic_key=" + hexPub2 + "\nallowed_ip=10.1.0.0/24\n" +
		"daita_enable=1\ndaita_max_delay_frac=2\n\n"
	if got := c.do(bad); got != "errno=-22\n\n" {
		t.Fatal(got)
	}
	if again := c.do("get=1\n\n"); again != get {
		t.Fatalf("failed set changed the device:\n%s", again)
	}
	// Off.
	if got := c.do("set=1\npublic_key=" + hexPub1 + "\ndaita_enable=0\n\n"); got != "errno=0\n\n" {
		t.Fatal(got)
	}
	if got := c.do("get=1\n\n"); strings.Contains(got, "daita_") {
		t.Fatalf("DAITA lines after daita_enable=0:\n%s", got)
	}
}

// FuzzParseSetDAITA: DAITA sections of any content never panic, and what
// parses serializes back to an equal configuration.
func FuzzParseSetDAITA(f *testing.F) {
	f.Add("daita_enable=1\ndaita_machine=" + padMachine + "\ndaita_max_decoy_frac=0.5\n")
	f.Add("daita_enable=1\ndaita_max_delayed_packets=1\ndaita_min_delay_capacity=7\ndaita_max_delay_frac=1e-3\n")
	f.Add("daita_enable=0\n")
	f.Add("daita_enable=1\ndaita_machine=02eNpjYEAHjOgCAAA0AAI=\ndaita_enable=1\n")
	f.Fuzz(func(t *testing.T, body string) {
		in := "public_key=" + hexPub1 + "\n" + body + "\n\n"
		cfg, err := ParseSet(strings.NewReader(in))
		if err != nil {
			return
		}
		again, err := ParseSet(strings.NewReader(string(AppendSet(nil, cfg)) + "\n"))
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		for i := range cfg.Peers {
			a, b := cfg.Peers[i].DAITA, again.Peers[i].DAITA
			if (a == nil) != (b == nil) || a != nil && !a.Equal(*b) {
				t.Fatalf("peer %d: %+v became %+v", i, a, b)
			}
		}
	})
}

// bigMachine returns a valid machine string of at least n characters: a
// chain of padding states with random timeouts, which deflate cannot shrink.
func bigMachine(tb testing.TB, n int) string {
	tb.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	for states := 64; states <= maybenot.StateMax; states *= 2 {
		m := maybenot.Machine{States: make([]maybenot.State, states)}
		for i := range m.States {
			low := rng.Float64() * 1000
			m.States[i].Action = &maybenot.Action{Kind: maybenot.ActionSendPadding,
				Timeout: maybenot.Dist{Type: maybenot.DistUniform, Param1: low, Param2: low + rng.Float64()*1000}}
			next := uint64(i + 1)
			if i == states-1 {
				next = maybenot.StateEnd
			}
			m.States[i].Transitions[maybenot.EventPaddingSent] = []maybenot.Trans{{To: next, Probability: 1}}
		}
		if s := m.String(); len(s) >= n {
			return s
		}
	}
	tb.Fatalf("no machine of %d characters", n)
	return ""
}

// TestDAITALongMachine: a machine string longer than 4 KiB, as a machine
// with many states has, is set and read back whole over the socket; a line
// past MaxLineLength is refused with EPROTO and the device keeps running.
func TestDAITALongMachine(t *testing.T) {
	long := bigMachine(t, 20000)
	dev := newRealDevice(t)
	path, _ := startServer(t, dev)
	c := dial(t, path)
	set := "set=1\nprivate_key=" + hexPriv + "\npublic_key=" + hexPub1 + "\ndaita_enable=1\ndaita_machine=" + long + "\n\n"
	if got := c.do(set); got != "errno=0\n\n" {
		t.Fatalf("set of a %d-character machine: %s", len(long), got)
	}
	if get := c.do("get=1\n\n"); !strings.Contains(get, "\ndaita_machine="+long+"\n") {
		t.Fatalf("get does not give back the %d-character machine", len(long))
	}
	tooLong := "set=1\npublic_key=" + hexPub1 + "\ndaita_machine=" + strings.Repeat("A", MaxLineLength) + "\n\n"
	if got := c.do(tooLong); got != "errno=-71\n\n" {
		t.Fatalf("over-long line: %q, want EPROTO", got)
	}
	if got := c.do("get=1\n\n"); !strings.HasSuffix(got, "errno=0\n\n") {
		t.Fatalf("after an over-long line: %q", got)
	}
}
