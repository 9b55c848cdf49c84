package sim

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gotatun/gotatun/maybenot"
)

type goldenCase struct {
	ID                  int      `json:"id"`
	RustTest            string   `json:"rust_test"`
	Input               string   `json:"input"`
	DelayUS             int64    `json:"delay_us"`
	ClientMachines      []string `json:"client_machines"`
	ServerMachines      []string `json:"server_machines"`
	View                string   `json:"view"`
	MaxTraceLength      int      `json:"max_trace_length"`
	OnlyNetworkActivity bool     `json:"only_network_activity"`
	Expected            string   `json:"expected"`
	Note                string   `json:"note"`
}

func parseMachines(t *testing.T, ss []string) []maybenot.Machine {
	t.Helper()
	var out []maybenot.Machine
	for _, s := range ss {
		m, err := maybenot.ParseMachine(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, *m)
	}
	return out
}

// parseGoldenInput reads "t,dir" tokens with t in microseconds.
func parseGoldenInput(t *testing.T, in string) []TracePacket {
	t.Helper()
	var out []TracePacket
	for _, tok := range strings.Fields(in) {
		f := strings.Split(tok, ",")
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, TracePacket{Time: time.Duration(v) * time.Microsecond, Sent: f[1] == "s" || f[1] == "sn"})
	}
	return out
}

// formatView prints one side's events as "t,code" with t in whole
// microseconds since the first recorded event of the run.
func formatView(events []Event, client bool) string {
	if len(events) == 0 {
		return ""
	}
	base := events[0].Time
	var b strings.Builder
	for _, e := range events {
		if e.Client != client {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d,%s", (e.Time-base)/time.Microsecond, e.Kind.Code())
	}
	return b.String()
}

func TestGolden(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "sim-golden.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	total, passed := 0, 0
	for sc.Scan() {
		var c goldenCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		total++
		cfg := Config{
			Delay:                  time.Duration(c.DelayUS) * time.Microsecond,
			MaxTraceLength:         c.MaxTraceLength,
			OnlyNetworkActivity:    c.OnlyNetworkActivity,
			ContinueAfterAllNormal: true,
			MaxIterations:          100000,
			ClientRand:             maybenot.NewRand(maybenot.NewSeededSource(0)),
			ServerRand:             maybenot.NewRand(maybenot.NewSeededSource(1)),
		}
		events, err := Run(parseMachines(t, c.ClientMachines), parseMachines(t, c.ServerMachines),
			parseGoldenInput(t, c.Input), cfg)
		if err != nil {
			t.Errorf("case %d (%s): %v", c.ID, c.RustTest, err)
			continue
		}
		got := formatView(events, c.View == "client")
		if len(got) > len(c.Expected) {
			got = got[:len(c.Expected)]
		}
		if got != c.Expected {
			t.Errorf("case %d (%s, %s view):\n got %s\nwant %s", c.ID, c.RustTest, c.View, got, c.Expected)
			continue
		}
		passed++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if total != 38 {
		t.Errorf("%d golden cases, want 38", total)
	}
	t.Logf("%d/%d golden cases pass", passed, total)
}
