package sim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/gotatun/gotatun/maybenot"
)

// Input limits for ParseTrace.
const (
	MaxTraceLines    = 10_000_000
	maxTraceLineSize = 4096
)

// ParseTrace reads a trace: one packet per line, "<time>,<direction>[,<size>]"
// with time in integer nanoseconds since the trace's first packet and
// direction "s"/"sn" (sent by the client) or "r"/"rn" (received by the
// client). Padding directions "sp"/"rp" are skipped, as are empty lines,
// lines starting with '#' and lines with fewer than two fields. Anything
// else is an error naming the line.
func ParseTrace(r io.Reader) ([]TracePacket, error) {
	var out []TracePacket
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), maxTraceLineSize)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Split(text, ",")
		if len(fields) < 2 {
			continue
		}
		ns, err := strconv.ParseInt(strings.TrimSpace(fields[0]), 10, 64)
		if err != nil || ns < 0 {
			return nil, fmt.Errorf("trace line %d: bad time %q", line, fields[0])
		}
		p := TracePacket{Time: time.Duration(ns)}
		switch strings.TrimSpace(fields[1]) {
		case "s", "sn":
			p.Sent = true
		case "r", "rn":
		case "sp", "rp":
			continue
		default:
			return nil, fmt.Errorf("trace line %d: bad direction %q", line, fields[1])
		}
		if len(fields) >= 3 {
			size, err := strconv.Atoi(strings.TrimSpace(fields[2]))
			if err != nil || size < 0 || size > 1<<20 {
				return nil, fmt.Errorf("trace line %d: bad size %q", line, fields[2])
			}
			p.Size = size
		}
		if len(out) >= MaxTraceLines {
			return nil, fmt.Errorf("trace: more than %d packets", MaxTraceLines)
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("trace line %d: longer than %d bytes", line+1, maxTraceLineSize)
		}
		return nil, fmt.Errorf("trace: %w", err)
	}
	return out, nil
}

// WriteDefendedTrace writes the client's view of the network activity in
// the trace format: "<ns>,<sn|sp|rn|rp>,<size>", time relative to the
// first such event, sn/rn for normal and sp/rp for padding packets sent and
// received by the client. Packets of unknown size are written with
// defaultSize.
func WriteDefendedTrace(w io.Writer, events []Event, defaultSize int) error {
	bw := bufio.NewWriter(w)
	first := true
	var base time.Duration
	for _, e := range events {
		var dir string
		switch {
		case !e.Client || e.Action != nil:
			continue
		case e.Kind == maybenot.EventTunnelSent && e.Padding:
			dir = "sp"
		case e.Kind == maybenot.EventTunnelSent:
			dir = "sn"
		case e.Kind == maybenot.EventTunnelRecv && e.Padding:
			dir = "rp"
		case e.Kind == maybenot.EventTunnelRecv:
			dir = "rn"
		default:
			continue
		}
		if first {
			base, first = e.Time, false
		}
		size := e.Size
		if size == 0 {
			size = defaultSize
		}
		fmt.Fprintf(bw, "%d,%s,%d\n", int64(e.Time-base), dir, size)
	}
	return bw.Flush()
}

// Summary describes the overhead of a defence in a simulated trace, seen
// at the client.
type Summary struct {
	NormalSent, NormalRecv   int // normal packets sent / received by the client
	PaddingSent, PaddingRecv int // padding packets sent / received by the client
	NormalBytes              int64
	PaddingBytes             int64
	ClientBlocked            time.Duration // total time the client blocked
	ServerBlocked            time.Duration // total time the server blocked
	Duration                 time.Duration // first to last client network event
	UndefendedDuration       time.Duration // of the input trace
}

// Summarize computes the overhead summary of a simulation run.
func Summarize(events []Event, input []TracePacket) Summary {
	var s Summary
	var first, last time.Duration
	seen := false
	var blockStart [2]time.Duration
	var blocking [2]bool
	for _, e := range events {
		if e.Action != nil {
			continue
		}
		idx := 0
		if !e.Client {
			idx = 1
		}
		switch e.Kind {
		case maybenot.EventBlockingBegin:
			if !blocking[idx] {
				blocking[idx], blockStart[idx] = true, e.Time
			}
		case maybenot.EventBlockingEnd:
			if blocking[idx] {
				d := e.Time - blockStart[idx]
				if e.Client {
					s.ClientBlocked += d
				} else {
					s.ServerBlocked += d
				}
				blocking[idx] = false
			}
		}
		if !e.Client || (e.Kind != maybenot.EventTunnelSent && e.Kind != maybenot.EventTunnelRecv) {
			continue
		}
		if !seen {
			first, seen = e.Time, true
		}
		last = e.Time
		sent := e.Kind == maybenot.EventTunnelSent
		switch {
		case e.Padding && sent:
			s.PaddingSent++
			s.PaddingBytes += int64(e.Size)
		case e.Padding:
			s.PaddingRecv++
			s.PaddingBytes += int64(e.Size)
		case sent:
			s.NormalSent++
			s.NormalBytes += int64(e.Size)
		default:
			s.NormalRecv++
			s.NormalBytes += int64(e.Size)
		}
	}
	s.Duration = last - first
	if len(input) > 0 {
		lo, hi := input[0].Time, input[0].Time
		for _, p := range input {
			lo, hi = min(lo, p.Time), max(hi, p.Time)
		}
		s.UndefendedDuration = hi - lo
	}
	return s
}

func pct(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return strconv.FormatFloat(100*a/b, 'f', 1, 64) + "%"
}

// WriteTo prints the summary as text.
func (s Summary) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	normal := s.NormalSent + s.NormalRecv
	padding := s.PaddingSent + s.PaddingRecv
	fmt.Fprintf(&b, "normal packets:  %d sent, %d received (%d bytes)\n", s.NormalSent, s.NormalRecv, s.NormalBytes)
	fmt.Fprintf(&b, "padding packets: %d sent, %d received (%d bytes)\n", s.PaddingSent, s.PaddingRecv, s.PaddingBytes)
	fmt.Fprintf(&b, "padding overhead: %s of packets (sent %s, received %s), %s of bytes\n",
		pct(float64(padding), float64(normal)), pct(float64(s.PaddingSent), float64(s.NormalSent)),
		pct(float64(s.PaddingRecv), float64(s.NormalRecv)), pct(float64(s.PaddingBytes), float64(s.NormalBytes)))
	fmt.Fprintf(&b, "blocking: client %v, server %v\n", s.ClientBlocked, s.ServerBlocked)
	fmt.Fprintf(&b, "duration: %v defended, %v undefended (overhead %s)\n", s.Duration, s.UndefendedDuration,
		pct(float64(s.Duration-s.UndefendedDuration), float64(s.UndefendedDuration)))
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}
