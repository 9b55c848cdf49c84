package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gotatun/gotatun/device"
	"github.com/gotatun/gotatun/pcap"
)

// pcapFlag is --pcap FILE: the plaintext packets of the tunnel go to FILE.
type pcapFlag struct{ path string }

func (p *pcapFlag) define(fs *flag.FlagSet) {
	fs.Func("pcap", "write the tunnel's plaintext packets to `FILE` (pcap, for tcpdump -r)", p.set)
}

// set takes the path made absolute now: the detached daemon runs in /.
func (p *pcapFlag) set(s string) error {
	if s == "" {
		return fmt.Errorf("empty file name")
	}
	abs, err := filepath.Abs(s)
	if err != nil {
		return err
	}
	p.path = abs
	return nil
}

// withAbsPcap rewrites the --pcap values in args to the absolute path a
// holds, for the detached daemon, which runs in /.
func withAbsPcap(args []string, p pcapFlag) []string {
	if p.path == "" {
		return args
	}
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			out = append(out, args[i:]...)
			break
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		if !strings.HasPrefix(arg, "-") || name != "pcap" {
			out = append(out, arg)
			continue
		}
		out = append(out, "--pcap="+p.path)
		if !hasValue {
			i++ // the value was the next argument
		}
	}
	return out
}

// captureFlushEvery is how often the daemon flushes the capture file, so
// that tcpdump -r sees packets of a quiet tunnel too.
const captureFlushEvery = time.Second

// openCapture creates the capture file of --pcap; nil and a no-op close
// when the flag is not given. Until closed, the file is flushed every
// captureFlushEvery.
func openCapture(p pcapFlag) (device.Capture, func() error, error) {
	if p.path == "" {
		return nil, func() error { return nil }, nil
	}
	f, err := os.OpenFile(p.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("packet capture: %w", err)
	}
	w, err := pcap.NewWriter(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("packet capture %s: %w", p.path, err)
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(captureFlushEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				w.Flush()
			case <-stop:
				return
			}
		}
	}()
	return w, func() error {
		close(stop)
		<-stopped
		ferr := w.Flush()
		if err := f.Close(); ferr == nil {
			ferr = err
		}
		return ferr
	}, nil
}
