//go:build linux

// Command capi is libgotatun, the C library for apps: the functions
// declared in gotatun.h, exported with cgo over package mobile. Build it
// with `make capi` (-buildmode=c-shared and c-archive).
package main

/*
#include <stdint.h>
#include <stdlib.h>
*/
import "C"

import (
	"log/slog"
	"runtime/debug"
	"sync"
	"syscall"
	"unsafe"

	"github.com/gotatun/gotatun/mobile"
)

func main() {}

var (
	tunnelsMu  sync.Mutex
	tunnels    = make(map[int64]*mobile.Tunnel)
	nextHandle int64
)

func lookup(h C.int64_t) *mobile.Tunnel {
	tunnelsMu.Lock()
	defer tunnelsMu.Unlock()
	return tunnels[int64(h)]
}

func negErrno(err error) int64 { return -int64(mobile.Errno(err)) }

//export gotatun_turn_on
func gotatun_turn_on(config *C.char, tunFD C.int32_t) C.int64_t {
	if config == nil {
		if tunFD >= 0 {
			syscall.Close(int(tunFD))
		}
		return C.int64_t(-int64(syscall.EINVAL))
	}
	log := slog.New(logHandler{})
	t, err := mobile.TurnOn(C.GoString(config), int(tunFD), log)
	if err != nil {
		log.Error("turning the tunnel on failed", "err", err)
		return C.int64_t(negErrno(err))
	}
	tunnelsMu.Lock()
	defer tunnelsMu.Unlock()
	h := nextHandle
	nextHandle++
	tunnels[h] = t
	return C.int64_t(h)
}

//export gotatun_turn_off
func gotatun_turn_off(h C.int64_t) {
	tunnelsMu.Lock()
	t := tunnels[int64(h)]
	delete(tunnels, int64(h))
	tunnelsMu.Unlock()
	if t != nil {
		t.Close()
	}
}

//export gotatun_set_config
func gotatun_set_config(h C.int64_t, config *C.char) C.int32_t {
	t := lookup(h)
	if t == nil {
		return -C.int32_t(syscall.EBADF)
	}
	if config == nil {
		return -C.int32_t(syscall.EINVAL)
	}
	if err := t.SetConfig(C.GoString(config)); err != nil {
		slog.New(logHandler{}).Error("configuration refused; nothing changed", "err", err)
		return C.int32_t(negErrno(err))
	}
	return 0
}

//export gotatun_get_config
func gotatun_get_config(h C.int64_t) *C.char {
	t := lookup(h)
	if t == nil {
		return nil
	}
	s, err := t.Config()
	if err != nil {
		return nil
	}
	return C.CString(s)
}

//export gotatun_free
func gotatun_free(p unsafe.Pointer) { C.free(p) }

//export gotatun_get_socket_v4
func gotatun_get_socket_v4(h C.int64_t) C.int32_t {
	if t := lookup(h); t != nil {
		v4, _ := t.Sockets()
		return C.int32_t(v4)
	}
	return -1
}

//export gotatun_get_socket_v6
func gotatun_get_socket_v6(h C.int64_t) C.int32_t {
	if t := lookup(h); t != nil {
		_, v6 := t.Sockets()
		return C.int32_t(v6)
	}
	return -1
}

// do runs fn on the tunnel of h, logging a failure.
func do(h C.int64_t, what string, fn func(*mobile.Tunnel) error) {
	t := lookup(h)
	if t == nil {
		return
	}
	if err := fn(t); err != nil {
		slog.New(logHandler{}).Error(what+" failed", "err", err)
	}
}

//export gotatun_suspend
func gotatun_suspend(h C.int64_t) { do(h, "suspend", (*mobile.Tunnel).Suspend) }

//export gotatun_resume
func gotatun_resume(h C.int64_t) { do(h, "resume", (*mobile.Tunnel).Resume) }

//export gotatun_network_changed
func gotatun_network_changed(h C.int64_t) {
	do(h, "rebinding after a network change", (*mobile.Tunnel).NetworkChanged)
}

//export gotatun_set_logger
func gotatun_set_logger(fn unsafe.Pointer, ctx unsafe.Pointer) { setLogger(fn, ctx) }

var versionC = C.CString(version())

// version is the module version the library was built from.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return "gotatun " + bi.Main.Version
	}
	return "gotatun (devel)"
}

//export gotatun_version
func gotatun_version() *C.char { return versionC }
