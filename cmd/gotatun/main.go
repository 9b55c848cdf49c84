// Command gotatun is a WireGuard implementation: a drop-in userspace daemon
// configured by wg(8) and wg-quick(8), a self-contained demo, and DAITA tools.
package main

import (
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

const usage = `Usage:
  gotatun [-f|--foreground] IFNAME   run the WireGuard daemon for interface IFNAME
  gotatun demo [flags]               two tunnels over loopback UDP in one process, no root needed
  gotatun daita inspect|encode|simulate …   Maybenot machine tools
  gotatun --version                  print the version
  gotatun --help                     print this help

Run "gotatun demo --help" or "gotatun daita --help" for their flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "-v", "--version", "version":
		fmt.Fprintf(stdout, "gotatun v%s\n", version)
		return 0
	case "demo":
		return runDemo(args[1:], stdout, stderr)
	case "daita":
		return runDaita(args[1:], stdin, stdout, stderr)
	}
	return runDaemon(args, stdout, stderr)
}
