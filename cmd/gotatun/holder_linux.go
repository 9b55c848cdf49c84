package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gotatun/gotatun/uapi"
)

// holderHint says who holds the interface ifname when creating it failed
// with err because the name is taken: the process serving its
// configuration socket, or else the processes with a TUN descriptor of an
// interface of that name, or that the name belongs to an interface that
// is not a TUN interface.
func holderHint(ifname string, err error) string {
	switch {
	case errors.Is(err, syscall.EBUSY):
		if h := socketHolder(uapi.SocketPath(ifname)); h != "" {
			return "; it is held by " + h
		}
		if hs := tunHolders(ifname, "/proc"); len(hs) > 0 {
			return "; it is held by " + strings.Join(hs, ", ")
		}
		return "; another process holds it"
	case errors.Is(err, syscall.EINVAL):
		if _, ierr := net.InterfaceByName(ifname); ierr == nil {
			return "; an interface of that name exists and is not a TUN interface"
		}
	}
	return ""
}

// socketHolder names the process that answers on the Unix socket at path,
// with the socket: "NAME (pid N), which serves PATH"; "" if nobody
// answers.
func socketHolder(path string) string {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ""
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ""
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || credErr != nil || cred.Pid <= 0 {
		return "the process serving " + path
	}
	return fmt.Sprintf("%s, which serves %s", describeProcess("/proc", int(cred.Pid)), path)
}

// describeProcess is "NAME (pid N)", or "pid N" when its name is unknown.
func describeProcess(proc string, pid int) string {
	comm, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "comm"))
	if name := strings.TrimSpace(string(comm)); err == nil && name != "" {
		return fmt.Sprintf("%s (pid %d)", name, pid)
	}
	return fmt.Sprintf("pid %d", pid)
}

// tunHolders lists the processes other than this one with a TUN
// descriptor attached to an interface called ifname (in any namespace),
// from the descriptors' fdinfo under proc.
func tunHolders(ifname, proc string) []string {
	entries, err := os.ReadDir(proc)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if holdsTUN(filepath.Join(proc, e.Name()), ifname) {
			out = append(out, describeProcess(proc, pid))
		}
	}
	return out
}

// holdsTUN reports whether the process at dir (/proc/PID) has a TUN
// descriptor attached to ifname.
func holdsTUN(dir, ifname string) bool {
	fds, err := os.ReadDir(filepath.Join(dir, "fd"))
	if err != nil {
		return false
	}
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join(dir, "fd", fd.Name())); err != nil || target != "/dev/net/tun" {
			continue
		}
		if fdinfoIff(filepath.Join(dir, "fdinfo", fd.Name())) == ifname {
			return true
		}
	}
	return false
}

// fdinfoIff reads the interface name ("iff:" line) of a TUN descriptor's
// fdinfo; "" if there is none.
func fdinfoIff(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if name, ok := strings.CutPrefix(sc.Text(), "iff:"); ok {
			return strings.TrimSpace(name)
		}
	}
	return ""
}
