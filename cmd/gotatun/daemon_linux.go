package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gotatun/gotatun/device"
	"github.com/gotatun/gotatun/tun"
	"github.com/gotatun/gotatun/uapi"
)

// defaultMTU is the MTU a new interface gets, as with wireguard-go;
// wg-quick sets its own afterwards.
const defaultMTU = 1420

// readyTimeout bounds how long the launching process waits for the
// daemon to report.
const readyTimeout = 30 * time.Second

// runForeground runs the daemon for ifname in this process until a signal,
// the interface's deletion or a failure of the configuration socket.
func runForeground(a daemonArgs, stderr io.Writer) int {
	ifname := a.ifname
	ready, err := takeFD(envReadyFD, "ready")
	if err != nil {
		fmt.Fprintf(stderr, "gotatun: %v\n", err)
		return 1
	}
	fail := func(format string, args ...any) int {
		msg := fmt.Sprintf(format, args...)
		if ready != nil {
			// The launching process prints it.
			fmt.Fprintln(ready, msg)
			ready.Close()
		} else {
			fmt.Fprintf(stderr, "gotatun: %s\n", msg)
		}
		return 1
	}

	mtu := defaultMTU
	if a.entry.name != "" {
		mtu = a.entry.exitMTU()
	}
	tdev, err := openTUN(ifname, mtu)
	if err != nil {
		return fail("cannot create interface %s: %v%s%s", ifname, err, privilegeHint(err), holderHint(ifname, err))
	}
	if name, err := tdev.Name(); err == nil {
		ifname = name
	}
	log := newLogger(stderr, a, ifname)

	ln, err := openUAPI(ifname)
	if err != nil {
		tdev.Close()
		hint := privilegeHint(err)
		if errors.Is(err, uapi.ErrInUse) {
			if h := socketHolder(uapi.SocketPath(ifname)); h != "" {
				hint = "; it is held by " + h
			}
		}
		return fail("cannot create configuration socket for %s: %v%s", ifname, err, hint)
	}
	capture, closeCapture, err := openCapture(a.pcap)
	if err != nil {
		ln.Close()
		tdev.Close()
		return fail("%v", err)
	}
	defer func() {
		if err := closeCapture(); err != nil {
			log.Error("packet capture", "err", err)
		}
	}()
	wt := watchTUN(tdev)
	var dev *device.Device
	var entry *entryHop
	if a.entry.name != "" {
		if entry, err = startEntryHop(a, wt, capture, log, stderr); err == nil {
			dev = entry.client.Exit
		}
	} else {
		dev, err = device.New(device.Options{TUN: wt, Bind: newBind(), Logger: log, Capture: capture})
	}
	if err != nil {
		ln.Close()
		wt.Close()
		return fail("cannot start device %s: %v", ifname, err)
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	served := make(chan error, 1)
	go func() { served <- uapi.Serve(ln, dev, log) }()

	if ready != nil {
		fmt.Fprintln(ready, "ok")
		ready.Close()
	}
	log.Info("device started", "socket", ln.Addr().String())

	stopTuner, tunerDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(tunerDone)
		tuneProcs(stopTuner, processCPU, procsTick, log)
	}()

	code := 0
	select {
	case s := <-sigs:
		log.Info("shutting down", "signal", s.String())
	case <-wt.Deleted():
		log.Info("interface deleted; shutting down")
	case err := <-served:
		log.Error("configuration socket failed; shutting down", "err", err)
		served = nil
		code = 1
	case <-entry.stopped():
		log.Error("entry device stopped; shutting down", "err", entry.err())
		code = 1
	}
	close(stopTuner)
	<-tunerDone
	ln.Close()
	if served != nil {
		<-served
	}
	entry.close()
	dev.Close()
	log.Info("stopped")
	return code
}

// takeFD returns the descriptor named by the environment variable env, if
// set, and unsets it so nothing started later inherits the setting.
func takeFD(env, name string) (*os.File, error) {
	v := os.Getenv(env)
	if v == "" {
		return nil, nil
	}
	os.Unsetenv(env)
	fd, err := strconv.ParseUint(v, 10, 31)
	if err != nil {
		return nil, fmt.Errorf("%s=%q is not a file descriptor number", env, v)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(fd), &st); err != nil {
		return nil, fmt.Errorf("%s=%d: %w", env, fd, err)
	}
	syscall.CloseOnExec(int(fd))
	return os.NewFile(uintptr(fd), name), nil
}

// openTUN creates the interface, or takes the one in WG_TUN_FD.
func openTUN(ifname string, mtu int) (tun.Device, error) {
	f, err := takeFD(envTUNFD, "tun")
	if err != nil {
		return nil, err
	}
	if f != nil {
		return tun.CreateTUNFromFile(f, 0)
	}
	return createTUN(ifname, mtu)
}

// openUAPI creates the configuration socket, or takes the one in
// WG_UAPI_FD.
func openUAPI(ifname string) (net.Listener, error) {
	f, err := takeFD(envUAPIFD, "uapi")
	if err != nil {
		return nil, err
	}
	if f != nil {
		return uapi.ListenFile(f)
	}
	return uapi.Listen(ifname)
}

// daemonize starts this program again as a detached daemon (its own
// session, no terminal, standard streams on /dev/null) and waits until it
// reports that the interface and its socket exist, or why not.
func daemonize(args []string, stderr io.Writer) int {
	failf := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "gotatun: "+format+"\n", a...)
		return 1
	}
	exe, err := os.Executable()
	if err != nil {
		return failf("cannot find own executable: %v", err)
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return failf("%v", err)
	}
	defer null.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return failf("%v", err)
	}
	defer r.Close()

	env := make([]string, 0, len(os.Environ())+4)
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case envForeground, envReadyFD, envTUNFD, envUAPIFD:
			continue
		}
		env = append(env, kv)
	}
	files := []*os.File{w}
	env = append(env, envForeground+"=1", envReadyFD+"=3")
	// Descriptors handed to us are handed on, renumbered.
	for _, name := range []string{envTUNFD, envUAPIFD} {
		v := os.Getenv(name)
		if v == "" {
			continue
		}
		fd, err := strconv.ParseUint(v, 10, 31)
		if err != nil {
			w.Close()
			return failf("%s=%q is not a file descriptor number", name, v)
		}
		files = append(files, os.NewFile(uintptr(fd), name))
		env = append(env, fmt.Sprintf("%s=%d", name, 2+len(files)))
	}

	// As with wireguard-go, the daemon's logs reach our stderr only when
	// LOG_LEVEL asks for them.
	var childErr io.Writer = null
	if lvl := os.Getenv(envLogLevel); lvl != "" && lvl != "silent" {
		if f, ok := stderr.(*os.File); ok {
			childErr = f
		}
	}
	cmd := &exec.Cmd{
		Path:        exe,
		Args:        append([]string{os.Args[0]}, args...),
		Env:         env,
		Dir:         "/",
		Stdin:       null,
		Stdout:      null,
		Stderr:      childErr,
		ExtraFiles:  files,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return failf("cannot start daemon: %v", err)
	}

	r.SetReadDeadline(time.Now().Add(readyTimeout))
	msg, rerr := io.ReadAll(io.LimitReader(r, 4096))
	report := strings.TrimSpace(string(msg))
	if rerr == nil && report == "ok" {
		cmd.Process.Release()
		return 0
	}
	if errors.Is(rerr, os.ErrDeadlineExceeded) {
		cmd.Process.Kill()
		cmd.Wait()
		return failf("daemon did not report within %v; killed it", readyTimeout)
	}
	werr := cmd.Wait()
	if report == "" {
		return failf("daemon exited before the interface was ready (%v)", werr)
	}
	fmt.Fprintf(stderr, "gotatun: %s\n", report)
	return 1
}
