//go:build !linux

package mobile

import (
	"fmt"
	"log/slog"
	"runtime"
	"syscall"
)

// TurnOn is not supported outside Linux and Android yet.
func TurnOn(config string, tunFD int, log *slog.Logger) (*Tunnel, error) {
	return nil, fmt.Errorf("mobile: TUN descriptors are not supported on %s: %w", runtime.GOOS, syscall.ENOSYS)
}
