//go:build unix

package transport

import "golang.org/x/sys/unix"

// msgTrunc is the receive flag saying a datagram was longer than the buffer.
const msgTrunc = unix.MSG_TRUNC
