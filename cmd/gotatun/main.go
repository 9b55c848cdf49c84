// Command gotatun is a WireGuard implementation: a drop-in userspace daemon
// configured by wg(8) and wg-quick(8), a self-contained demo, and DAITA tools.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

// command is a subcommand: `gotatun NAME ARGS...`.
type command struct {
	name     string
	synopsis string // what follows the name in the usage
	summary  string // one line
	run      func(args []string, stdin io.Reader, stdout, stderr io.Writer) int
}

// commands are the subcommands. A first argument that names none of them
// (and is not -h, --help, -v or --version) starts the daemon. A command
// defined in its own file may add itself with registerCommand from an init
// function.
var commands = []command{
	{"demo", "[flags]", "two tunnels over loopback UDP in one process, no root needed",
		func(args []string, _ io.Reader, stdout, stderr io.Writer) int { return runDemo(args, stdout, stderr) }},
	{"daita", "inspect|encode|simulate|set|show …", "Maybenot machine tools; DAITA of a running interface", runDaita},
	// run handles these two itself.
	{"help", "", "print this help", nil},
	{"version", "", "print the version", nil},
}

// registerCommand adds a subcommand.
//
//lint:ignore U1000 the extension point for commands in their own files
func registerCommand(c command) {
	if findCommand(c.name) != nil {
		panic("gotatun: command " + c.name + " registered twice")
	}
	commands = append(commands, c)
}

func findCommand(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

// commandNames returns the subcommand names, sorted.
func commandNames() []string {
	names := make([]string, 0, len(commands))
	for _, c := range commands {
		names = append(names, c.name)
	}
	sort.Strings(names)
	return names
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printShortUsage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		printUsage(stdout)
		return 0
	case "-v", "-version", "--version", "version":
		fmt.Fprintln(stdout, versionString())
		return 0
	}
	if c := findCommand(args[0]); c != nil {
		return c.run(args[1:], stdin, stdout, stderr)
	}
	return runDaemon(args, stdout, stderr)
}

// printUsage prints the full usage: the commands, the daemon's flags, the
// interface name rule and the environment.
func printUsage(w io.Writer) {
	io.WriteString(w, commandList()+"\n"+daemonHelp()+"\nRun \"gotatun COMMAND --help\" for the flags of a command.\n")
}

// printShortUsage prints the list of commands, after a usage error.
func printShortUsage(w io.Writer) {
	io.WriteString(w, commandList()+"\nRun \"gotatun --help\" for the daemon's flags and environment.\n")
}

// commandList is the synopsis of every command.
func commandList() string {
	var b strings.Builder
	b.WriteString("Usage:\n")
	lines := [][2]string{{"gotatun [-f|--foreground] [flags] IFNAME", "run the WireGuard daemon for interface IFNAME"}}
	for _, name := range commandNames() {
		c := findCommand(name)
		synopsis := c.synopsis
		switch name {
		case "help", "version":
			synopsis = "| --" + name
		}
		lines = append(lines, [2]string{strings.TrimSpace("gotatun " + c.name + " " + synopsis), c.summary})
	}
	for _, l := range lines {
		writeTwoColumns(&b, l[0], l[1], 42)
	}
	return b.String()
}

// writeTwoColumns writes "  left  right", right starting at column
// width+4, or on a line of its own when left is wider.
func writeTwoColumns(b *strings.Builder, left, right string, width int) {
	if n := len([]rune(left)); n > width {
		fmt.Fprintf(b, "  %s\n  %*s  %s\n", left, width, "", right)
		return
	}
	fmt.Fprintf(b, "  %-*s  %s\n", width, left, right)
}

// versionString is the version, with the VCS revision the binary was built
// from when it was built from a checkout.
func versionString() string {
	info, _ := debug.ReadBuildInfo()
	return formatVersion(version, info)
}

func formatVersion(v string, info *debug.BuildInfo) string {
	s := "gotatun v" + strings.TrimPrefix(v, "v")
	if info == nil {
		return s
	}
	var rev, at string
	modified := false
	for _, kv := range info.Settings {
		switch kv.Key {
		case "vcs.revision":
			rev = kv.Value
		case "vcs.time":
			at = kv.Value
		case "vcs.modified":
			modified = kv.Value == "true"
		}
	}
	if rev == "" {
		return s
	}
	s += " (revision " + rev
	if modified {
		s += ", modified"
	}
	if at != "" {
		s += ", " + at
	}
	return s + ")"
}
