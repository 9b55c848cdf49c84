package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gotatun/gotatun/maybenot"
)

var maybenotTestdata = filepath.Join("..", "..", "maybenot", "testdata")

func runDaitaTest(stdin string, args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := runDaita(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func machineStrings(t *testing.T, name string) (strs, comments []string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(maybenotTestdata, name))
	if err != nil {
		t.Fatal(err)
	}
	comment := ""
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSuffix(line, "\r")
		switch {
		case strings.HasPrefix(line, "#"):
			comment = line
		case line != "":
			strs = append(strs, line)
			comments = append(comments, comment)
		}
	}
	return strs, comments
}

func expectedJSON(t *testing.T, name string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(maybenotTestdata, name))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var e struct {
			Machine json.RawMessage `json:"machine"`
		}
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, string(e.Machine))
	}
	return out
}

func TestDaitaHelp(t *testing.T) {
	code, out, _ := runDaitaTest("", "--help")
	if code != 0 || !strings.Contains(out, "gotatun daita inspect") {
		t.Fatalf("exit %d, output %q", code, out)
	}
	if code, _, _ := runDaitaTest(""); code == 0 {
		t.Fatal("no arguments must fail")
	}
	if code, _, _ := runDaitaTest("", "bogus"); code == 0 {
		t.Fatal("unknown command must fail")
	}
}

func TestDaitaInspectJSON(t *testing.T) {
	for _, set := range []string{"machines-public", "machines-synthetic"} {
		strs, _ := machineStrings(t, set+".txt")
		want := expectedJSON(t, set+".json")
		// From stdin, with comments and blank lines.
		data, _ := os.ReadFile(filepath.Join(maybenotTestdata, set+".txt"))
		code, out, errOut := runDaitaTest(string(data), "inspect", "--json")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", set, code, errOut)
		}
		got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(got) != len(want) {
			t.Fatalf("%s: %d lines, want %d", set, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s[%d]:\n got %s\nwant %s", set, i, got[i], want[i])
			}
		}
		// As arguments.
		code, out, _ = runDaitaTest("", append([]string{"inspect", "--json"}, strs[:3]...)...)
		if code != 0 || strings.Count(out, "\n") != 3 || !strings.HasPrefix(out, want[0]+"\n") {
			t.Errorf("%s: arguments: exit %d, %q", set, code, out)
		}
	}
}

func TestDaitaInspectText(t *testing.T) {
	strs, _ := machineStrings(t, "machines-synthetic.txt")
	code, out, errOut := runDaitaTest(strings.Join(strs, "\n"), "inspect")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"machine 18:", "SendPadding after Uniform(low 2, high 2)", "on Signal -> END (p=1)",
		"Cancel All timer", "counter B: Set by the other counter", "BlockOutgoing after"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestDaitaInspectInvalid(t *testing.T) {
	strs, comments := machineStrings(t, "machines-invalid.txt")
	for i, s := range strs {
		code, out, errOut := runDaitaTest("", "inspect", s)
		if code == 0 {
			t.Errorf("%s: accepted", comments[i])
			continue
		}
		if out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "machine 1: ") {
			t.Errorf("%s: want one error line, got stdout %q stderr %q", comments[i], out, errOut)
		}
	}
	// One bad string among good ones: the good ones are printed, exit 1.
	good, _ := machineStrings(t, "machines-public.txt")
	code, out, errOut := runDaitaTest(good[0]+"\nnot-a-machine\n"+good[1]+"\n", "inspect", "--json")
	if code != 1 || strings.Count(out, "\n") != 2 || !strings.Contains(errOut, "machine 2: version mismatch") {
		t.Errorf("mixed input: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestDaitaEncode(t *testing.T) {
	for _, set := range []string{"machines-public", "machines-synthetic"} {
		data, err := os.ReadFile(filepath.Join(maybenotTestdata, set+".json"))
		if err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runDaitaTest(string(data), "encode")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", set, code, errOut)
		}
		strs, _ := machineStrings(t, set+".txt")
		got := strings.Fields(out)
		if len(got) != len(strs) {
			t.Fatalf("%s: %d strings, want %d", set, len(got), len(strs))
		}
		for i := range got {
			a, err1 := maybenot.ParseMachine(got[i])
			b, err2 := maybenot.ParseMachine(strs[i])
			if err1 != nil || err2 != nil || !bytes.Equal(a.AppendBincode(nil), b.AppendBincode(nil)) {
				t.Errorf("%s[%d]: encoded machine differs (%v, %v)", set, i, err1, err2)
			}
		}
	}
	// The bare machine layout (as printed by inspect --json) works too.
	_, js, _ := runDaitaTest("", "inspect", "--json", "02eNpjYEAHjOgCAAA0AAI=")
	code, out, _ := runDaitaTest(js, "encode")
	noop, _ := maybenot.ParseMachine("02eNpjYEAHjOgCAAA0AAI=")
	if m, err := maybenot.ParseMachine(strings.TrimSpace(out)); code != 0 || err != nil ||
		!bytes.Equal(m.AppendBincode(nil), noop.AppendBincode(nil)) {
		t.Errorf("no-op machine: exit %d, %q", code, out)
	}
	// Invalid machines and malformed JSON are rejected.
	bad := strings.Replace(js, `"states": [`, `"states": [{"action": null, "counter_a": null, "counter_b": null, "transitions": {"NormalSent": [{"to": 9, "p": 1.0}]}}, `, 1)
	if code, _, errOut := runDaitaTest(bad, "encode"); code == 0 || !strings.Contains(errOut, "state 0: transitions[NormalSent][0]") {
		t.Errorf("invalid machine: exit %d, %q", code, errOut)
	}
	for _, in := range []string{"", "{", `{"allowed_padding_packets": 0}`, `[1, 2]`, strings.Replace(js, `"states"`, `"stats"`, 1)} {
		if code, _, _ := runDaitaTest(in, "encode"); code == 0 {
			t.Errorf("accepted %q", in)
		}
	}
}

func TestDaitaSimulate(t *testing.T) {
	dir := t.TempDir()
	machines := filepath.Join(dir, "client.txt")
	// One padding packet 20 ms after the first normal packet.
	os.WriteFile(machines, []byte("# README machine\n02eNp1ibEJAEAIA5Nf7B3N0v1cSESwEL0m5A6YvBqSgP7WeXfM5UoBW7ICYg==\n"), 0o644)
	trace := filepath.Join("..", "..", "maybenot", "sim", "testdata", "traces", "BE000.log")
	args := []string{"simulate", "--client", machines, "--server", machines, "--trace", trace, "--delay", "5ms", "--seed", "3"}
	code, out, errOut := runDaitaTest("", args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ",")
		if len(f) != 3 || !strings.Contains("sn sp rn rp", f[1]) {
			t.Fatalf("bad line %q", sc.Text())
		}
		lines++
	}
	if lines != 42 || strings.Count(out, ",sp,512") != 1 || strings.Count(out, ",rp,512") != 1 {
		t.Errorf("%d lines:\n%s", lines, out)
	}
	if !strings.Contains(errOut, "padding packets: 1 sent, 1 received (1024 bytes)") {
		t.Errorf("summary: %s", errOut)
	}
	// --fixed-times: a machine that delays traffic for 5 ms after every
	// packet sent holds the second packet until 6 ms, and the later ones
	// keep their times; the reference model shifts them by the 5 ms.
	var s0, s1 maybenot.State
	s0.Transitions[maybenot.EventNormalSent] = []maybenot.Trans{{To: 1, Probability: 1}}
	s1.Transitions[maybenot.EventNormalSent] = []maybenot.Trans{{To: 1, Probability: 1}}
	s1.Action = &maybenot.Action{Kind: maybenot.ActionBlockOutgoing,
		Duration: maybenot.Dist{Type: maybenot.DistUniform, Param1: 5000, Param2: 5000}}
	hold := maybenot.Machine{States: []maybenot.State{s0, s1}}
	holdFile, tinyTrace := filepath.Join(dir, "hold.txt"), filepath.Join(dir, "tiny.log")
	os.WriteFile(holdFile, []byte(hold.String()+"\n"), 0o644)
	os.WriteFile(tinyTrace, []byte("0,s,100\n1000000,s,100\n2000000,r,100\n8000000,s,100\n20000000,r,100\n"), 0o644)
	for _, c := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--fixed-times"}, "0,sn 2000000,rn 6000000,sn 8000000,sn 20000000,rn"},
		{nil, "0,sn 2000000,rn 6000000,sn 13000000,sn 25000000,rn"},
	} {
		args := append([]string{"simulate", "--client", holdFile, "--trace", tinyTrace, "--delay", "0s", "--seed", "1"}, c.flags...)
		code, out, errOut := runDaitaTest("", args...)
		var got []string
		for _, line := range strings.Fields(out) {
			f := strings.Split(line, ",")
			got = append(got, f[0]+","+f[1])
		}
		if code != 0 || strings.Join(got, " ") != c.want {
			t.Errorf("%v: exit %d, got %q, want %q (%s)", c.flags, code, got, c.want, errOut)
		}
	}
	// -o writes the trace to a file and the summary to stdout.
	outFile := filepath.Join(dir, "defended.log")
	code, out2, _ := runDaitaTest("", append(args, "-o", outFile)...)
	written, _ := os.ReadFile(outFile)
	if code != 0 || string(written) != out || !strings.Contains(out2, "blocking: client 0s, server 0s") {
		t.Errorf("-o: exit %d, stdout %q", code, out2)
	}
	// Errors.
	for _, bad := range [][]string{
		{"simulate"},
		{"simulate", "--trace", filepath.Join(dir, "missing.log")},
		{"simulate", "--trace", trace, "--client", filepath.Join(maybenotTestdata, "machines-invalid.txt")},
		{"simulate", "--trace", trace, "--delay", "-1ms"},
		{"simulate", "--trace", trace, "extra"},
		{"simulate", "--trace", trace, "--fixed-times", "--max-delayed-packets", "0"},
	} {
		if code, _, _ := runDaitaTest("", bad...); code == 0 {
			t.Errorf("%v: exit 0", bad)
		}
	}
}

func TestDaitaCommandHelp(t *testing.T) {
	for _, c := range []struct{ cmd, want string }{
		{"inspect", "-json"}, {"encode", "gotatun daita encode [FILE...]"}, {"simulate", "-max-padding-frac-client"},
	} {
		for _, h := range []string{"--help", "-h"} {
			code, out, errOut := runDaitaTest("", c.cmd, h)
			if code != 0 || errOut != "" || !strings.HasPrefix(out, "Usage:\n  gotatun daita "+c.cmd) || !strings.Contains(out, c.want) {
				t.Errorf("%s %s: exit %d, stdout %q, stderr %q", c.cmd, h, code, out, errOut)
			}
			for _, other := range []string{"inspect", "encode", "simulate"} {
				if other != c.cmd && strings.Contains(out, "gotatun daita "+other) {
					t.Errorf("%s %s: help also covers %s", c.cmd, h, other)
				}
			}
		}
		code, out, errOut := runDaitaTest("", c.cmd, "--bogus")
		if code != 2 || out != "" || !strings.HasPrefix(errOut, "gotatun daita "+c.cmd+": flag provided but not defined: -bogus\n") ||
			!strings.Contains(errOut, "Usage:\n  gotatun daita "+c.cmd) {
			t.Errorf("%s --bogus: exit %d, stdout %q, stderr %q", c.cmd, code, out, errOut)
		}
	}
}

func TestDaitaWrongKindOfArgument(t *testing.T) {
	const machine = "02eNpjYEAHjOgCAAA0AAI="
	dir := t.TempDir()
	file := filepath.Join(dir, "machines.txt")
	os.WriteFile(file, []byte(machine+"\n"), 0o644)
	// inspect wants machine strings and says so when given a file.
	code, _, errOut := runDaitaTest("", "inspect", file)
	if code != 1 || !strings.Contains(errOut, "is a file, not a machine string") || !strings.Contains(errOut, "inspect < "+file) {
		t.Errorf("inspect FILE: exit %d, %q", code, errOut)
	}
	// encode wants JSON, in files.
	for _, c := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"", []string{"encode", machine}, "is a machine string, not a file of JSON"},
		{"", []string{"encode", file}, "holds machine strings; encode expects JSON"},
		{machine + "\n", []string{"encode"}, "holds machine strings; encode expects JSON"},
		{"hello\n", []string{"encode"}, "expected JSON"},
		{"[1]\n", []string{"encode"}, "expected a JSON object"},
		{"", []string{"encode"}, "expected JSON"},
		{"", []string{"simulate", "--trace", file, "--client", machine}, "is a machine string; --client and --server take a file"},
	} {
		code, out, errOut := runDaitaTest(c.stdin, c.args...)
		if code != 1 || out != "" || !strings.Contains(errOut, c.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %q", c.args, code, out, errOut, c.want)
		}
	}
}
