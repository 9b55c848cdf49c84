//go:build !linux

// Command bench measures gotatun against wireguard-go in Linux network
// namespaces; elsewhere it only says so.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "bench: needs Linux (network namespaces, TUN, /proc)")
	os.Exit(1)
}
