//go:build linux

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"
)

// UDP echo helpers: "udpecho" answers every datagram on GOTATUN_E2E_ADDR
// with itself; "udpping" sends GOTATUN_E2E_COUNT datagrams of
// GOTATUN_E2E_BYTES bytes to it one at a time and checks each answer.
const helperCount = "GOTATUN_E2E_COUNT"

func runUDPHelper(mode string) error {
	addr := os.Getenv(helperAddr)
	if mode == "udpecho" {
		return helperUDPEcho(addr)
	}
	size, err := strconv.Atoi(os.Getenv(helperBytes))
	if err != nil {
		return err
	}
	count, err := strconv.Atoi(os.Getenv(helperCount))
	if err != nil {
		return err
	}
	return helperUDPPing(addr, size, count)
}

func helperUDPEcho(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return err
	}
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Println("listening")
	buf := make([]byte, 1<<16)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return err
		}
		c.WriteToUDPAddrPort(buf[:n], from)
	}
}

// helperUDPPing sends count datagrams of size bytes, each until its echo
// comes back intact (at most five tries), and prints how many came back.
func helperUDPPing(addr string, size, count int) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return err
	}
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return err
	}
	defer c.Close()
	out := make([]byte, size)
	in := make([]byte, size+1)
	r := rand.New(rand.NewPCG(uint64(size), uint64(count)))
	for i := range count {
		for j := range out {
			out[j] = byte(r.Uint32())
		}
		ok := false
		for try := 0; try < 5 && !ok; try++ {
			if _, err := c.Write(out); err != nil {
				return fmt.Errorf("datagram %d of %d bytes: %w", i, size, err)
			}
			c.SetReadDeadline(time.Now().Add(time.Second))
			for {
				n, err := c.Read(in)
				if err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						break
					}
					if errors.Is(err, net.ErrClosed) {
						return err
					}
					continue // ICMP errors from an earlier try
				}
				if n == size && bytes.Equal(in[:n], out) {
					ok = true
					break
				}
			}
		}
		if !ok {
			return fmt.Errorf("datagram %d of %d bytes: no intact echo after 5 tries", i, size)
		}
	}
	fmt.Printf("echoed %d\n", count)
	return nil
}

// udpEchoServer runs the echo helper at addr in n for the rest of the test.
func udpEchoServer(t *testing.T, n *netns, addr netip.AddrPort) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := n.command(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=udpecho", helperAddr+"="+addr.String())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	line := make([]byte, 10)
	if _, err := out.Read(line); err != nil {
		t.Fatalf("UDP echo server: %v", err)
	}
}

// udpPing sends count datagrams of size bytes from n to the echo server
// at addr and fails the test unless every one comes back intact.
func udpPing(t *testing.T, n *netns, addr netip.AddrPort, size, count int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := n.command(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=udpping", helperAddr+"="+addr.String(),
		helperBytes+"="+strconv.Itoa(size), helperCount+"="+strconv.Itoa(count))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("[%s] UDP to %s, %d bytes: %v\n%s", n.name, addr, size, err, out)
	}
}
