package main

import (
	"fmt"
	"io"
)

// Placeholders until each subcommand lands; each file that implements one
// removes its line here.
func runDaemon(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "gotatun: daemon: not built yet")
	return 1
}
