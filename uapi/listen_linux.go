package uapi

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// SocketDir is where wg(8) looks for the sockets of userspace interfaces.
const SocketDir = "/var/run/wireguard"

// ErrInUse means a live daemon already answers on the interface's socket.
var ErrInUse = errors.New("uapi: socket in use by a running daemon")

// SocketPath returns the socket path wg(8) uses for interface ifname.
func SocketPath(ifname string) string {
	return filepath.Join(SocketDir, ifname+".sock")
}

// Listen creates the configuration socket of interface ifname,
// SocketDir/IFNAME.sock (the directory mode 0755, the socket 0600 so only
// root may configure), and listens on it. A socket left behind by a daemon
// that is gone is replaced; one a live daemon answers on is refused with
// ErrInUse. Closing the listener removes the socket file.
func Listen(ifname string) (net.Listener, error) {
	return listenIn(SocketDir, ifname)
}

// ListenFile listens on an already bound and listening Unix socket, as
// handed over in WG_UAPI_FD. It takes ownership of f. The socket file, if
// any, is left in place on Close: whoever created it removes it.
func ListenFile(f *os.File) (net.Listener, error) {
	defer f.Close()
	l, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("uapi: listening on inherited socket: %w", err)
	}
	return l, nil
}

// checkName applies the kernel's rules for interface names (dev_valid_name),
// which also keep the socket path inside its directory.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("uapi: empty interface name")
	case len(name) > unix.IFNAMSIZ-1:
		return fmt.Errorf("uapi: interface name %q longer than %d bytes", name, unix.IFNAMSIZ-1)
	case name == "." || name == "..":
		return fmt.Errorf("uapi: invalid interface name %q", name)
	case strings.ContainsAny(name, "/: \t\n\v\f\r\x00"):
		return fmt.Errorf("uapi: interface name %q contains '/', ':' or white space", name)
	}
	return nil
}

func listenIn(dir, ifname string) (net.Listener, error) {
	if err := checkName(ifname); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("uapi: creating socket directory: %w", err)
	}
	path := filepath.Join(dir, ifname+".sock")
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("uapi: %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%w: %s", ErrInUse, path)
		}
		// A socket nobody answers on: left by a daemon that is gone. It
		// is replaced below.
	}
	// The socket is made ready under a name wg(8) ignores and then renamed
	// into place: wg(8) deletes a socket it finds refusing connections,
	// which a socket bound but not yet listening does.
	tmp := filepath.Join(dir, fmt.Sprintf(".%s.%d.tmp", ifname, os.Getpid()))
	os.Remove(tmp)
	l, err := bindListen(tmp)
	if err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		l.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("uapi: %w", err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("uapi: %w", err)
	}
	return &socketListener{Listener: l, path: path, fi: fi}, nil
}

// bindListen binds a Unix stream socket at path, restricts it to its owner
// before it starts listening (no client can connect in between), and
// listens.
func bindListen(path string) (net.Listener, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("uapi: socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return nil, fmt.Errorf("uapi: binding %s: %w", path, err)
	}
	fail := func(err error) (net.Listener, error) {
		os.Remove(path)
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fail(fmt.Errorf("uapi: %w", err))
	}
	if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
		return fail(fmt.Errorf("uapi: listen on %s: %w", path, err))
	}
	l, err := net.FileListener(f)
	if err != nil {
		return fail(fmt.Errorf("uapi: %w", err))
	}
	return l, nil
}

// socketListener removes its socket file on Close, unless another daemon
// has replaced it in the meantime.
type socketListener struct {
	net.Listener
	path string
	fi   os.FileInfo
	once sync.Once
	err  error
}

// Addr implements net.Listener: the socket's path, not the temporary name
// it was bound under.
func (l *socketListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

func (l *socketListener) Close() error {
	l.once.Do(func() {
		if fi, err := os.Lstat(l.path); err == nil && os.SameFile(fi, l.fi) {
			os.Remove(l.path)
		}
		l.err = l.Listener.Close()
	})
	return l.err
}
