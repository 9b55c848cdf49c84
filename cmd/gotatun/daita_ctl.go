package main

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gotatun/gotatun/daita"
	"github.com/gotatun/gotatun/noise"
)

const (
	setUsage = `gotatun daita set IFNAME PEER_PUBLIC_KEY [--machine STRING|@FILE]... [--max-decoy-frac F]
        [--max-delay-frac F] [--max-delayed-packets N] [--min-delay-capacity N]
gotatun daita set IFNAME PEER_PUBLIC_KEY off
      Turn DAITA on for a peer of a running interface with these settings
      (those not given take their defaults: no machines, no fraction caps,
      a 1024-packet delay queue, minimum capacity 50), or turn it off. The
      peer keeps its sessions. @FILE reads machine strings from FILE, one
      per line. Talks to the interface's UAPI socket, as wg(8) does.
`
	showUsage = `gotatun daita show [IFNAME]
      Print the DAITA settings and counters of every peer of IFNAME, or of
      every interface with a UAPI socket.
`
)

// socketDir is where the UAPI sockets are (wg(8)'s place).
var socketDir = "/var/run/wireguard"

// uapiTimeout bounds one exchange with a daemon.
const uapiTimeout = 10 * time.Second

func daitaSet(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := daitaFlags("set")
	var machines []string
	fs.Func("machine", "a machine string, or @FILE with one per line (repeatable)", func(v string) error {
		if name, ok := strings.CutPrefix(v, "@"); ok {
			data, err := readFile(name)
			if err != nil {
				return err
			}
			lines := machineLines(data)
			if len(lines) == 0 {
				return fmt.Errorf("%s holds no machine strings", name)
			}
			machines = append(machines, lines...)
			return nil
		}
		machines = append(machines, v)
		return nil
	})
	cfg := daita.DefaultConfig()
	fs.Float64Var(&cfg.MaxDecoyFrac, "max-decoy-frac", 0, "cap on the fraction of decoys among packets sent, 0 to 1 (0: none)")
	fs.Float64Var(&cfg.MaxDelayFrac, "max-delay-frac", 0, "cap on the fraction of time spent delaying, 0 to 1 (0: none)")
	fs.IntVar(&cfg.MaxDelayedPackets, "max-delayed-packets", daita.DefaultMaxDelayedPackets, "delay queue capacity")
	fs.IntVar(&cfg.MinDelayCapacity, "min-delay-capacity", daita.DefaultMinDelayCapacity, "end a delay when fewer places are free")
	var pos []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") && len(pos) < 2 {
		pos, args = append(pos, args[0]), args[1:]
	}
	off := len(args) == 1 && args[0] == "off" && len(pos) == 2
	if !off {
		if code, ok := parseDaitaFlags(fs, setUsage, args, stdout, stderr); !ok {
			return code
		}
		pos = append(pos, fs.Args()...)
	}
	if len(pos) != 2 {
		fmt.Fprintf(stderr, "gotatun daita set: want IFNAME and PEER_PUBLIC_KEY, got %d arguments\nUsage:\n%s", len(pos), indentUsage(setUsage))
		return 2
	}
	key, err := noise.ParseKey(pos[1])
	if err != nil {
		fmt.Fprintf(stderr, "gotatun daita set: peer public key %q: %v\n", pos[1], err)
		return 2
	}
	req := "set=1\npublic_key=" + hex.EncodeToString(key[:]) + "\nupdate_only=true\n"
	if off {
		req += "daita_enable=0\n"
	} else {
		cfg.Machines = machines
		if err := cfg.Validate(); err != nil {
			fmt.Fprintf(stderr, "gotatun daita set: %v\n", err)
			return 1
		}
		req += "daita_enable=1\n"
		for _, m := range cfg.Machines {
			req += "daita_machine=" + m + "\n"
		}
		req += fmt.Sprintf("daita_max_decoy_frac=%s\ndaita_max_delay_frac=%s\ndaita_max_delayed_packets=%d\ndaita_min_delay_capacity=%d\n",
			strconv.FormatFloat(cfg.MaxDecoyFrac, 'f', -1, 64), strconv.FormatFloat(cfg.MaxDelayFrac, 'f', -1, 64),
			cfg.MaxDelayedPackets, cfg.MinDelayCapacity)
	}
	_, err = uapiDo(pos[0], req+"\n")
	if err == nil {
		// update_only skips an unknown peer silently: say so.
		var peers []uapiPeer
		peers, err = uapiDo(pos[0], "get=1\n\n")
		if err == nil && !slices.ContainsFunc(peers, func(p uapiPeer) bool { return p.key == key }) {
			err = fmt.Errorf("interface %s has no peer %s", pos[0], pos[1])
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "gotatun daita set: %v\n", err)
		return 1
	}
	return 0
}

func daitaShow(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := daitaFlags("show")
	if code, ok := parseDaitaFlags(fs, showUsage, args, stdout, stderr); !ok {
		return code
	}
	var ifaces []string
	switch fs.NArg() {
	case 0:
		socks, _ := filepath.Glob(filepath.Join(socketDir, "*.sock"))
		for _, s := range socks {
			ifaces = append(ifaces, strings.TrimSuffix(filepath.Base(s), ".sock"))
		}
	case 1:
		ifaces = fs.Args()
	default:
		fmt.Fprintf(stderr, "gotatun daita show: at most one IFNAME\nUsage:\n%s", indentUsage(showUsage))
		return 2
	}
	code := 0
	for i, name := range ifaces {
		peers, err := uapiDo(name, "get=1\n\n")
		if err != nil {
			fmt.Fprintf(stderr, "gotatun daita show: %v\n", err)
			code = 1
			continue
		}
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		writeDaitaShow(stdout, name, peers)
	}
	return code
}

func writeDaitaShow(w io.Writer, name string, peers []uapiPeer) {
	fmt.Fprintf(w, "interface: %s\n", name)
	for _, p := range peers {
		fmt.Fprintf(w, "  peer: %s\n", noise.PublicKey(p.key))
		if !p.daita {
			fmt.Fprintln(w, "    daita: off")
			continue
		}
		v := p.values
		fmt.Fprintf(w, "    daita: on, %d machine(s), max decoy frac %s, max delay frac %s, delay queue %s (min capacity %s)\n",
			len(p.machines), v["daita_max_decoy_frac"], v["daita_max_delay_frac"], v["daita_max_delayed_packets"], v["daita_min_delay_capacity"])
		for _, m := range p.machines {
			fmt.Fprintf(w, "    machine: %s\n", m)
		}
		fmt.Fprintf(w, "    padding: %s B sent, %s B received\n", v["daita_tx_padding_bytes"], v["daita_rx_padding_bytes"])
		fmt.Fprintf(w, "    decoys: %s B sent, %s B received\n", v["daita_tx_decoy_packet_bytes"], v["daita_rx_decoy_packet_bytes"])
	}
}

// uapiPeer is what daita show needs of a peer in a get answer.
type uapiPeer struct {
	key      [noise.KeySize]byte
	daita    bool
	machines []string
	values   map[string]string // the other daita_ keys
}

// uapiDo sends one transaction to IFNAME's socket and returns the peers of
// a get answer (nil for a set); a non-zero errno is an error.
func uapiDo(ifname, req string) ([]uapiPeer, error) {
	if ifname == "" || strings.ContainsAny(ifname, "/\x00") || ifname == "." || ifname == ".." {
		return nil, fmt.Errorf("bad interface name %q", ifname)
	}
	path := filepath.Join(socketDir, ifname+".sock")
	c, err := net.DialTimeout("unix", path, uapiTimeout)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("interface %s: no daemon listens on %s", ifname, path)
		}
		return nil, fmt.Errorf("interface %s: %w", ifname, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(uapiTimeout))
	if _, err := io.WriteString(c, req); err != nil {
		return nil, fmt.Errorf("interface %s: %w", ifname, err)
	}
	var peers []uapiPeer
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		k, v, _ := strings.Cut(line, "=")
		switch {
		case k == "errno":
			if v != "0" {
				return nil, fmt.Errorf("interface %s refused the request: errno=%s (the daemon's log says why)", ifname, v)
			}
			return peers, nil
		case k == "public_key":
			key, err := hex.DecodeString(v)
			if err != nil || len(key) != noise.KeySize {
				return nil, fmt.Errorf("interface %s: bad public_key line %q", ifname, line)
			}
			peers = append(peers, uapiPeer{key: [noise.KeySize]byte(key), values: map[string]string{}})
		case len(peers) == 0:
		case k == "daita_enable":
			peers[len(peers)-1].daita = v == "1"
		case k == "daita_machine":
			peers[len(peers)-1].machines = append(peers[len(peers)-1].machines, v)
		case strings.HasPrefix(k, "daita_"):
			peers[len(peers)-1].values[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("interface %s: %w", ifname, err)
	}
	return nil, fmt.Errorf("interface %s: answer ended without errno", ifname)
}
