//go:build linux

package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as the TCP sender and receiver of transfers:
// with helperEnv set, TestMain runs runHelper instead of the tests.
const (
	helperEnv   = "GOTATUN_E2E_HELPER"
	helperAddr  = "GOTATUN_E2E_ADDR"
	helperBytes = "GOTATUN_E2E_BYTES"
	helperSeed  = "GOTATUN_E2E_SEED"
	// progressStep is how often the receiver reports progress.
	progressStep = 8 << 20
)

func runHelper(mode string) int {
	var err error
	switch mode {
	case "recv":
		err = helperRecv(os.Getenv(helperAddr))
	case "send":
		var n, seed uint64
		n, err = strconv.ParseUint(os.Getenv(helperBytes), 10, 64)
		if err == nil {
			seed, err = strconv.ParseUint(os.Getenv(helperSeed), 10, 64)
		}
		if err == nil {
			err = helperSend(os.Getenv(helperAddr), int64(n), seed)
		}
	case "udpecho", "udpping":
		err = runUDPHelper(mode)
	case "fdexec":
		err = helperFDExec(os.Getenv(helperAddr), os.Getenv("GOTATUN_E2E_BIN"), os.Getenv("GOTATUN_E2E_FG") == "true")
	default:
		err = fmt.Errorf("unknown helper mode %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	return 0
}

// helperRecv accepts one connection on addr, reads it to the end and
// prints how many bytes arrived and their SHA-256.
func helperRecv(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Println("listening")
	c, err := l.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	var total, next int64 = 0, progressStep
	for {
		n, err := c.Read(buf)
		h.Write(buf[:n])
		total += int64(n)
		if total >= next {
			fmt.Printf("progress %d\n", total)
			next += progressStep
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("after %d bytes: %w", total, err)
		}
	}
	fmt.Printf("done bytes=%d sha256=%s\n", total, hex.EncodeToString(h.Sum(nil)))
	return nil
}

// helperSend sends n pseudo-random bytes (from seed) to addr and prints
// their count and SHA-256.
func helperSend(addr string, n int64, seed uint64) error {
	var c net.Conn
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err = net.DialTimeout("tcp", addr, 3*time.Second)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	src := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for sent := int64(0); sent < n; {
		chunk := buf[:min(int64(len(buf)), n-sent)]
		src.Read(chunk)
		h.Write(chunk)
		if _, err := c.Write(chunk); err != nil {
			return fmt.Errorf("after %d bytes: %w", sent, err)
		}
		sent += int64(len(chunk))
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	// Wait for the receiver to finish reading and close.
	io.Copy(io.Discard, c)
	fmt.Printf("done bytes=%d sha256=%s\n", n, hex.EncodeToString(h.Sum(nil)))
	return nil
}

// transfer sends n bytes over TCP from namespace from to toAddr in
// namespace to and checks that every byte arrived intact. If midway is
// not nil it is called once a quarter of the bytes have arrived; the
// transfer must survive whatever it does.
func transfer(t *testing.T, from, to *netns, toAddr netip.Addr, n int64, midway func()) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	port := 20000 + int(seq.Add(1))%10000
	addr := netip.AddrPortFrom(toAddr, uint16(port))
	listenAddr := netip.AddrPortFrom(netip.IPv6Unspecified(), uint16(port))
	if toAddr.Is4() {
		listenAddr = netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(port))
	}

	recv := to.command(ctx, os.Args[0])
	recv.Env = append(os.Environ(), helperEnv+"=recv", helperAddr+"="+listenAddr.String())
	recvErr := &syncBuffer{}
	recv.Stderr = recvErr
	rout, err := recv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := recv.Start(); err != nil {
		t.Fatal(err)
	}
	defer recv.Wait()
	defer cancel()
	rlines := make(chan string, 64)
	go lines(bufio.NewReader(rout), rlines)
	if l := <-rlines; l != "listening" {
		t.Fatalf("receiver: %q %s", l, recvErr.String())
	}

	start := time.Now()
	send := from.command(ctx, os.Args[0])
	seed := uint64(time.Now().UnixNano())
	send.Env = append(os.Environ(), helperEnv+"=send", helperAddr+"="+addr.String(),
		helperBytes+"="+strconv.FormatInt(n, 10), helperSeed+"="+strconv.FormatUint(seed, 10))
	sendDone := make(chan struct{})
	var sendOut []byte
	var sendErr error
	go func() {
		sendOut, sendErr = send.CombinedOutput()
		close(sendDone)
	}()

	var recvResult string
	midwayDone := make(chan struct{})
	called := false
	afterMidway := 0 // progress reports that came after midway returned
	for l := range rlines {
		if strings.HasPrefix(l, "progress ") {
			got, _ := strconv.ParseInt(strings.TrimPrefix(l, "progress "), 10, 64)
			if called {
				select {
				case <-midwayDone:
					afterMidway++
				default:
				}
			}
			if midway != nil && !called && got >= n/4 {
				called = true
				go func() { midway(); close(midwayDone) }()
			}
			continue
		}
		recvResult = l
	}
	<-sendDone
	elapsed := time.Since(start)
	if called {
		<-midwayDone
	}
	if sendErr != nil {
		t.Fatalf("sender: %v\n%s\nreceiver: %s %s", sendErr, sendOut, recvResult, recvErr.String())
	}
	if err := recv.Wait(); err != nil && ctx.Err() == nil {
		t.Fatalf("receiver: %v %s", err, recvErr.String())
	}
	sent := strings.TrimSpace(string(sendOut))
	if recvResult != sent || !strings.HasPrefix(sent, fmt.Sprintf("done bytes=%d ", n)) {
		t.Fatalf("transfer corrupted or cut short:\n sent:     %s\n received: %s %s", sent, recvResult, recvErr.String())
	}
	if midway != nil && (!called || afterMidway == 0) {
		t.Fatal("transfer finished before the midway change was done")
	}
	t.Logf("%d MB %s→%s in %v (%.0f Mbit/s)", n>>20, from.name, to.name, elapsed.Round(time.Millisecond), float64(n)*8/elapsed.Seconds()/1e6)
	return elapsed
}
