package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gotatun/gotatun/maybenot"
	"github.com/gotatun/gotatun/maybenot/sim"
)

// The synopsis and description of each daita command.
const (
	inspectUsage = `gotatun daita inspect [--json] [MACHINE...]
      Decode and validate machine strings given as arguments, or one per
      line on stdin (blank lines and lines starting with '#' are skipped).
      Prints each machine readably, or with --json one JSON object per
      line. Exits 1 if any string does not decode or validate. To read
      machine strings from a file: gotatun daita inspect < FILE.
`
	encodeUsage = `gotatun daita encode [FILE...]
      Read machines as JSON (the layout printed by inspect --json, or
      objects holding it under "machine") from the files or stdin ("-"),
      and print one machine string per machine.
`
	simulateUsage = `gotatun daita simulate --trace FILE [--client FILE] [--server FILE] [flags]
      Simulate a packet trace ("<ns>,<s|r>[,<size>]" per line) with the
      machines in the client and server files (one machine string per
      line) and print the defended trace (client view,
      "<ns>,<sn|sp|rn|rp>,<size>") on stdout and an overhead summary on
      stderr; with -o the trace goes to the file and the summary to
      stdout. With --fixed-times the trace is played at its recorded
      times, as through a live tunnel: delays hold packets but shift
      none of the later ones.
`
)

// daitaCommand is a subcommand of `gotatun daita`.
type daitaCommand struct {
	name  string
	usage string // the synopsis and description, as in daitaUsage
	run   func(args []string, stdin io.Reader, stdout, stderr io.Writer) int
}

// daitaCommands are the subcommands of `gotatun daita`, in the order the
// help lists them.
var daitaCommands = []daitaCommand{
	{"inspect", inspectUsage, daitaInspect},
	{"encode", encodeUsage, daitaEncode},
	{"simulate", simulateUsage, func(args []string, _ io.Reader, stdout, stderr io.Writer) int {
		return daitaSimulate(args, stdout, stderr)
	}},
	{"set", setUsage, daitaSet},
	{"show", showUsage, daitaShow},
}

// daitaUsage is the usage of `gotatun daita`.
func daitaUsage() string {
	var b strings.Builder
	b.WriteString("Usage:\n")
	for _, c := range daitaCommands {
		b.WriteString(indentUsage(c.usage))
	}
	b.WriteString("\nRun \"gotatun daita COMMAND --help\" for the flags of each.\n")
	return b.String()
}

// maxInputSize bounds what the daita tools read from a file or stdin.
const maxInputSize = 64 << 20

func runDaita(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, daitaUsage())
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, daitaUsage())
		return 0
	}
	for _, c := range daitaCommands {
		if c.name == args[0] {
			return c.run(args[1:], stdin, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "gotatun daita: unknown command %q\n%s", args[0], daitaUsage())
	return 2
}

// daitaFlags returns the flag set of a daita command.
func daitaFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("gotatun daita "+name, flag.ContinueOnError)
	fs.Usage = func() {}
	return fs
}

// indentUsage indents a command's usage for a list of commands.
func indentUsage(usage string) string {
	return "  " + strings.ReplaceAll(strings.TrimSuffix(usage, "\n"), "\n", "\n  ") + "\n"
}

// parseDaitaFlags parses args with fs. On --help it prints the command's
// usage to stdout, on a bad flag the error and the usage to stderr; then
// ok is false and code is the exit status.
func parseDaitaFlags(fs *flag.FlagSet, usage string, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if err == nil {
		return 0, true
	}
	w, code := stderr, 2
	if errors.Is(err, flag.ErrHelp) {
		w, code = stdout, 0
	} else {
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
	}
	fmt.Fprint(w, "Usage:\n"+indentUsage(usage))
	fs.SetOutput(w)
	if hasFlags(fs) {
		fmt.Fprintln(w, "\nFlags:")
		fs.PrintDefaults()
	}
	return code, false
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

func readLimited(r io.Reader, what string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxInputSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if len(data) > maxInputSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", what, maxInputSize)
	}
	return data, nil
}

// machineLines returns the non-empty, non-comment lines of data with the
// surrounding whitespace of each line removed.
func machineLines(data []byte) []string {
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	return out
}

func daitaInspect(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := daitaFlags("inspect")
	asJSON := fs.Bool("json", false, "print each machine as one line of JSON")
	if code, ok := parseDaitaFlags(fs, inspectUsage, args, stdout, stderr); !ok {
		return code
	}
	machines := fs.Args()
	if len(machines) == 0 {
		data, err := readLimited(stdin, "stdin")
		if err != nil {
			fmt.Fprintf(stderr, "gotatun daita inspect: %v\n", err)
			return 1
		}
		machines = machineLines(data)
	}
	if len(machines) == 0 {
		fmt.Fprintln(stderr, "gotatun daita inspect: no machine strings given")
		return 2
	}
	bw := bufio.NewWriter(stdout)
	defer bw.Flush()
	code := 0
	for i, s := range machines {
		m, err := maybenot.ParseMachine(s)
		if err != nil {
			bw.Flush()
			if isFileName(s) {
				fmt.Fprintf(stderr, "gotatun daita inspect: machine %d: %q is a file, not a machine string; "+
					"inspect takes machine strings as arguments or on stdin: gotatun daita inspect < %s\n", i+1, s, s)
			} else {
				fmt.Fprintf(stderr, "gotatun daita inspect: machine %d: %v\n", i+1, oneLine(err))
			}
			code = 1
			continue
		}
		if *asJSON {
			js, _ := m.MarshalJSON()
			bw.Write(js)
			bw.WriteByte('\n')
			continue
		}
		if i > 0 {
			bw.WriteByte('\n')
		}
		describeMachine(bw, i+1, s, m)
	}
	return code
}

// isFileName reports whether s, given where a machine string belongs,
// names a file instead.
func isFileName(s string) bool {
	if strings.ContainsRune(s, os.PathSeparator) {
		return true
	}
	fi, err := os.Stat(s)
	return err == nil && !fi.IsDir()
}

// isMachineString reports whether s, given where a file name belongs, is a
// machine string instead.
func isMachineString(s string) bool {
	_, err := maybenot.ParseMachine(s)
	return err == nil
}

func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

func describeMachine(w io.Writer, n int, s string, m *maybenot.Machine) {
	short := s
	if len(short) > 60 {
		short = short[:57] + "..."
	}
	fmt.Fprintf(w, "machine %d: %s\n", n, short)
	fmt.Fprintf(w, "  allowed_padding_packets %d, max_padding_frac %v, allowed_blocked_microsec %d, max_blocking_frac %v\n",
		m.AllowedPaddingPackets, m.MaxPaddingFrac, m.AllowedBlockedMicrosec, m.MaxBlockingFrac)
	fmt.Fprintf(w, "  %d state(s)\n", len(m.States))
	for i := range m.States {
		st := &m.States[i]
		fmt.Fprintf(w, "  state %d: %s\n", i, describeAction(st.Action))
		for j, c := range []*maybenot.Counter{st.CounterA, st.CounterB} {
			if c == nil {
				continue
			}
			amount := "1"
			switch {
			case c.Copy:
				amount = "the other counter"
			case c.Dist != nil:
				amount = describeDist(c.Dist)
			}
			fmt.Fprintf(w, "    counter %c: %s by %s\n", "AB"[j], c.Operation, amount)
		}
		for ev, slot := range st.Transitions {
			if slot == nil {
				continue
			}
			var parts []string
			for _, t := range slot {
				target := strconv.FormatUint(t.To, 10)
				switch t.To {
				case maybenot.StateEnd:
					target = "END"
				case maybenot.StateSignal:
					target = "SIGNAL"
				}
				parts = append(parts, fmt.Sprintf("%s (p=%v)", target, t.Probability))
			}
			fmt.Fprintf(w, "    on %s -> %s\n", maybenot.Event(ev), strings.Join(parts, ", "))
		}
	}
}

func describeAction(a *maybenot.Action) string {
	if a == nil {
		return "no action"
	}
	limit := ""
	if a.Limit != nil {
		limit = ", limit " + describeDist(a.Limit)
	}
	switch a.Kind {
	case maybenot.ActionCancel:
		return fmt.Sprintf("Cancel %s timer", a.Timer)
	case maybenot.ActionSendPadding:
		return fmt.Sprintf("SendPadding after %s µs (bypass %t, replace %t%s)", describeDist(&a.Timeout), a.Bypass, a.Replace, limit)
	case maybenot.ActionBlockOutgoing:
		return fmt.Sprintf("BlockOutgoing after %s µs for %s µs (bypass %t, replace %t%s)",
			describeDist(&a.Timeout), describeDist(&a.Duration), a.Bypass, a.Replace, limit)
	case maybenot.ActionUpdateTimer:
		return fmt.Sprintf("UpdateTimer to %s µs (replace %t%s)", describeDist(&a.Duration), a.Replace, limit)
	}
	return a.Kind.String()
}

func describeDist(d *maybenot.Dist) string { return d.String() }

func daitaEncode(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	type source struct {
		name string
		data []byte
	}
	fs := daitaFlags("encode")
	if code, ok := parseDaitaFlags(fs, encodeUsage, args, stdout, stderr); !ok {
		return code
	}
	var sources []source
	for _, a := range fs.Args() {
		var data []byte
		var err error
		if a == "-" {
			data, err = readLimited(stdin, "stdin")
		} else {
			data, err = readFile(a)
			if errors.Is(err, os.ErrNotExist) && isMachineString(a) {
				err = fmt.Errorf("%q is a machine string, not a file of JSON; encode turns JSON into machine strings, "+
					"gotatun daita inspect decodes them", a)
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "gotatun daita encode: %v\n", err)
			return 1
		}
		sources = append(sources, source{a, data})
	}
	if fs.NArg() == 0 {
		data, err := readLimited(stdin, "stdin")
		if err != nil {
			fmt.Fprintf(stderr, "gotatun daita encode: %v\n", err)
			return 1
		}
		sources = append(sources, source{"stdin", data})
	}
	code := 0
	count := 0
	for _, src := range sources {
		if lines := machineLines(src.data); len(lines) > 0 && isMachineString(lines[0]) {
			fmt.Fprintf(stderr, "gotatun daita encode: %s holds machine strings; encode expects JSON "+
				"(machines as printed by inspect --json), and gotatun daita inspect decodes machine strings\n", src.name)
			return 1
		}
		dec := json.NewDecoder(bytes.NewReader(src.data))
		for n := 1; ; n++ {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err == io.EOF {
				break
			} else if err != nil {
				fmt.Fprintf(stderr, "gotatun daita encode: %s: value %d: expected JSON (machines as printed by inspect --json): %v\n",
					src.name, n, oneLine(err))
				return 1
			}
			count++
			m, err := machineFromJSON(raw)
			if err == nil {
				err = m.Validate()
			}
			if err != nil {
				fmt.Fprintf(stderr, "gotatun daita encode: %s: machine %d: %v\n", src.name, n, oneLine(err))
				code = 1
				continue
			}
			fmt.Fprintln(stdout, m.String())
		}
	}
	if count == 0 {
		fmt.Fprintln(stderr, "gotatun daita encode: no machines in the input; expected JSON (machines as printed by inspect --json)")
		return 1
	}
	return code
}

// machineFromJSON accepts either a machine object or an object holding one
// under "machine" (the lines of the test data's .json files).
func machineFromJSON(raw json.RawMessage) (*maybenot.Machine, error) {
	var wrapper map[string]json.RawMessage
	if err := json.Unmarshal(raw, &wrapper); err != nil {
		return nil, errors.New("expected a JSON object (a machine as printed by inspect --json)")
	}
	if inner, ok := wrapper["machine"]; ok {
		raw = inner
	}
	m := new(maybenot.Machine)
	if err := m.UnmarshalJSON(raw); err != nil {
		return nil, err
	}
	return m, nil
}

func readFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLimited(f, name)
}

func loadMachineFile(name string) ([]maybenot.Machine, error) {
	if name == "" {
		return nil, nil
	}
	data, err := readFile(name)
	if errors.Is(err, os.ErrNotExist) && isMachineString(name) {
		return nil, fmt.Errorf("%q is a machine string; --client and --server take a file with one machine string per line", name)
	}
	if err != nil {
		return nil, err
	}
	var out []maybenot.Machine
	for i, s := range machineLines(data) {
		m, err := maybenot.ParseMachine(s)
		if err != nil {
			return nil, fmt.Errorf("%s: machine %d: %w", name, i+1, err)
		}
		out = append(out, *m)
	}
	return out, nil
}

func daitaSimulate(args []string, stdout, stderr io.Writer) int {
	fs := daitaFlags("simulate")
	clientFile := fs.String("client", "", "file with the client's machine strings, one per line")
	serverFile := fs.String("server", "", "file with the server's machine strings, one per line")
	traceFile := fs.String("trace", "", "input trace file (required)")
	outFile := fs.String("o", "", "write the defended trace to this file instead of stdout")
	delay := fs.Duration("delay", 5*time.Millisecond, "one-way network delay between client and server")
	seed := fs.Int64("seed", -1, "seed for a reproducible run (client uses seed, server seed+1); -1 = secure random")
	maxEvents := fs.Int("max-events", 0, "stop after this many recorded events (0 = no limit)")
	maxIter := fs.Int("max-iterations", 10_000_000, "stop after this many simulation steps (0 = no limit)")
	keepGoing := fs.Bool("continue", false, "keep simulating after all trace packets are delivered (needs a limit)")
	paddingSize := fs.Int("padding-size", 0, "size recorded for padding packets (0 = largest packet of the trace, or 1420)")
	padFracC := fs.Float64("max-padding-frac-client", 0, "client framework max_padding_frac")
	blockFracC := fs.Float64("max-blocking-frac-client", 0, "client framework max_blocking_frac")
	padFracS := fs.Float64("max-padding-frac-server", 0, "server framework max_padding_frac")
	blockFracS := fs.Float64("max-blocking-frac-server", 0, "server framework max_blocking_frac")
	fixed := fs.Bool("fixed-times", false, "play the trace at its recorded times, as a live tunnel does, instead of shifting it by what blocking held")
	maxDelayed := fs.Int("max-delayed-packets", 1024, "with --fixed-times: how many packets a delay may hold")
	minCapacity := fs.Int("min-delay-capacity", 50, "with --fixed-times: end a delay when fewer places are free")
	if code, ok := parseDaitaFlags(fs, simulateUsage, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gotatun daita simulate: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *traceFile == "" {
		fmt.Fprintln(stderr, "gotatun daita simulate: --trace is required")
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "gotatun daita simulate: %v\n", oneLine(err))
		return 1
	}
	if *delay < 0 {
		return fail(errors.New("--delay must not be negative"))
	}
	if *maxDelayed < 1 || *minCapacity < 0 {
		return fail(errors.New("--max-delayed-packets must be at least 1 and --min-delay-capacity not negative"))
	}
	if *keepGoing && *maxEvents == 0 && *maxIter == 0 {
		return fail(errors.New("--continue needs --max-events or --max-iterations"))
	}
	client, err := loadMachineFile(*clientFile)
	if err != nil {
		return fail(err)
	}
	server, err := loadMachineFile(*serverFile)
	if err != nil {
		return fail(err)
	}
	data, err := readFile(*traceFile)
	if err != nil {
		return fail(err)
	}
	trace, err := sim.ParseTrace(bytes.NewReader(data))
	if err != nil {
		return fail(fmt.Errorf("%s: %w", *traceFile, err))
	}
	if len(trace) == 0 {
		return fail(fmt.Errorf("%s: no packets", *traceFile))
	}
	padSize := *paddingSize
	if padSize <= 0 {
		for _, p := range trace {
			padSize = max(padSize, p.Size)
		}
		if padSize == 0 {
			padSize = 1420
		}
	}
	cfg := sim.Config{
		Delay:                  *delay,
		MaxTraceLength:         *maxEvents,
		MaxIterations:          *maxIter,
		ContinueAfterAllNormal: *keepGoing,
		MaxPaddingFracClient:   *padFracC,
		MaxBlockingFracClient:  *blockFracC,
		MaxPaddingFracServer:   *padFracS,
		MaxBlockingFracServer:  *blockFracS,
		PaddingSize:            padSize,
	}
	if *fixed {
		cfg.FixedTraceTimes = true
		cfg.MaxBlockedPackets, cfg.MinBlockedCapacity = *maxDelayed, *minCapacity
	}
	if *seed >= 0 {
		cfg.ClientRand = maybenot.NewRand(maybenot.NewSeededSource(uint64(*seed)))
		cfg.ServerRand = maybenot.NewRand(maybenot.NewSeededSource(uint64(*seed) + 1))
	}
	events, err := sim.Run(client, server, trace, cfg)
	if err != nil {
		return fail(err)
	}
	traceOut, summaryOut := stdout, stderr
	var f *os.File
	if *outFile != "" {
		if f, err = os.Create(*outFile); err != nil {
			return fail(err)
		}
		traceOut, summaryOut = f, stdout
	}
	if err := sim.WriteDefendedTrace(traceOut, events, padSize); err != nil {
		return fail(err)
	}
	if f != nil {
		if err := f.Close(); err != nil {
			return fail(err)
		}
	}
	sim.Summarize(events, trace).WriteTo(summaryOut)
	return 0
}
