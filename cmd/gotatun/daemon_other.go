//go:build !linux

package main

import (
	"fmt"
	"io"
	"runtime"
)

func runForeground(a daemonArgs, stderr io.Writer) int {
	fmt.Fprintf(stderr, "gotatun: the daemon is not available on %s yet\n", runtime.GOOS)
	return 1
}

func daemonize(args []string, stderr io.Writer) int {
	fmt.Fprintf(stderr, "gotatun: the daemon is not available on %s yet\n", runtime.GOOS)
	return 1
}
