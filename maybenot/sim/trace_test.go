package sim

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gotatun/gotatun/maybenot"
)

func TestParseTrace(t *testing.T) {
	in := "0,r,512\n\n# comment\n170000000,s\n180000000,sp,514\n190000000,rn,73\nlonely\n"
	got, err := ParseTrace(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []TracePacket{{0, false, 512}, {170 * time.Millisecond, true, 0}, {190 * time.Millisecond, false, 73}}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	for _, bad := range []string{"x,s\n", "1,q\n", "-5,s\n", "1,s,big\n", "1,s,-1\n", strings.Repeat("9", 5000) + ",s\n"} {
		if _, err := ParseTrace(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %q", bad[:min(len(bad), 20)])
		}
	}
}

func FuzzParseTrace(f *testing.F) {
	f.Add([]byte("0,r,512\n170000000,r,512\n180000000,s,512\n"))
	f.Add([]byte("0,sn\n5,rp\n#x\n,\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := ParseTrace(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, p := range ps {
			if p.Time < 0 || p.Size < 0 {
				t.Fatalf("bad packet %+v", p)
			}
		}
	})
}

func loadTrace(t *testing.T, name string) []TracePacket {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "traces", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ps, err := ParseTrace(f)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func TestSimulatorReadmeExample(t *testing.T) {
	// The reference README example: one padding packet 20 ms after the
	// first normal packet sent, 10 ms delay.
	m, err := maybenot.ParseMachine("02eNp1ibEJAEAIA5Nf7B3N0v1cSESwEL0m5A6YvBqSgP7WeXfM5UoBW7ICYg==")
	if err != nil {
		t.Fatal(err)
	}
	trace := "0,s\n19714282,r\n183976147,s\n243699564,r\n1696037773,s\n2047985926,s\n2055955094,r\n9401039609,s\n9401094589,s\n9420892765,r\n"
	ps, err := ParseTrace(strings.NewReader(trace))
	if err != nil {
		t.Fatal(err)
	}
	events, err := Run([]maybenot.Machine{*m}, nil, ps, Config{Delay: 10 * time.Millisecond, MaxTraceLength: 100, OnlyNetworkActivity: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	start := events[0].Time
	for _, e := range events {
		if !e.Client {
			continue
		}
		what := map[bool]string{true: "sent", false: "received"}[e.Kind == maybenot.EventTunnelSent]
		kind := map[bool]string{true: "padding", false: "normal"}[e.Padding]
		got = append(got, what+" "+kind+" "+(e.Time-start).Truncate(time.Millisecond).String())
	}
	want := []string{
		"sent normal 0s", "received normal 19ms", "sent padding 20ms", "sent normal 183ms",
		"received normal 243ms", "sent normal 1.696s", "sent normal 2.047s", "received normal 2.055s",
		"sent normal 9.401s", "sent normal 9.401s", "received normal 9.42s",
	}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Fatalf("got  %s\nwant %s", strings.Join(got, "; "), strings.Join(want, "; "))
	}
}

func TestDefendedTraceAndSummary(t *testing.T) {
	ps := loadTrace(t, "BE000.log")
	if len(ps) != 40 {
		t.Fatalf("%d packets", len(ps))
	}
	// The README machine (one padding packet 20 ms after the first normal
	// packet) at both sides.
	m, _ := maybenot.ParseMachine("02eNp1ibEJAEAIA5Nf7B3N0v1cSESwEL0m5A6YvBqSgP7WeXfM5UoBW7ICYg==")
	cfg := Config{Delay: 5 * time.Millisecond, MaxIterations: 200000, PaddingSize: 514,
		ClientRand: maybenot.NewRand(maybenot.NewSeededSource(1)), ServerRand: maybenot.NewRand(maybenot.NewSeededSource(2))}
	events, err := Run([]maybenot.Machine{*m}, []maybenot.Machine{*m}, ps, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteDefendedTrace(&buf, events, 514); err != nil {
		t.Fatal(err)
	}
	out, err := ParseTrace(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	s := Summarize(events, ps)
	if s.NormalSent+s.NormalRecv != 40 {
		t.Errorf("normal packets %d+%d, want 40", s.NormalSent, s.NormalRecv)
	}
	if s.PaddingSent != 1 || s.PaddingRecv != 1 || s.PaddingBytes != 2*514 {
		t.Errorf("padding %d sent, %d received", s.PaddingSent, s.PaddingRecv)
	}
	if len(out) != s.NormalSent+s.NormalRecv {
		t.Errorf("defended trace has %d normal packets", len(out))
	}
	if n := strings.Count(buf.String(), ",sp,514\n") + strings.Count(buf.String(), ",rp,514\n"); n != 2 {
		t.Errorf("defended trace has %d padding lines, want 2", n)
	}
	var sb strings.Builder
	s.WriteTo(&sb)
	if !strings.Contains(sb.String(), "padding packets: ") {
		t.Errorf("summary: %s", sb.String())
	}
	// Without machines the defended trace is the input trace.
	events, err = Run(nil, nil, ps, Config{Delay: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	WriteDefendedTrace(&buf, events, 512)
	raw, _ := os.ReadFile(filepath.Join("testdata", "traces", "BE000.log"))
	// Same packets at the same times; only the order within one instant
	// may differ (sent before received).
	want := strings.Split(strings.NewReplacer(",s,", ",sn,", ",r,", ",rn,").Replace(string(raw)), "\n")
	got := strings.Split(buf.String(), "\n")
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("undefended replay differs:\n%s", buf.String())
	}
}
