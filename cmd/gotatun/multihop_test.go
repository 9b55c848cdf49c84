package main

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseEntryArgs(t *testing.T) {
	v4, v6 := netip.MustParseAddr("10.64.0.2"), netip.MustParseAddr("fc00::2")
	tests := []struct {
		args []string
		want entryArgs
		err  string
	}{
		{[]string{"wg0"}, entryArgs{}, ""},
		{[]string{"--entry", "wg0e", "--entry-address", "10.64.0.2", "wg0"}, entryArgs{name: "wg0e", addrs: [2]netip.Addr{v4}}, ""},
		{[]string{"-f", "wg0", "--entry=wg0e", "--entry-address=fc00::2,10.64.0.2", "--entry-mtu", "1500"},
			entryArgs{name: "wg0e", addrs: [2]netip.Addr{v4, v6}, mtu: 1500}, ""},
		{[]string{"--entry", "wg0e", "wg0"}, entryArgs{}, "needs --entry-address"},
		{[]string{"--entry-address", "10.64.0.2", "wg0"}, entryArgs{}, "need --entry"},
		{[]string{"--entry", "wg0", "--entry-address", "10.64.0.2", "wg0"}, entryArgs{}, "name of its own"},
		{[]string{"--entry", "dmeo", "--entry-address", "10.64.0.2", "wg0"}, entryArgs{}, "mistyped command"},
		{[]string{"--entry", "e", "--entry-address", "10.64.0.300", "wg0"}, entryArgs{}, "not an IP address"},
		{[]string{"--entry", "e", "--entry-address", "10.0.0.1,10.0.0.2", "wg0"}, entryArgs{}, "two addresses of one family"},
		{[]string{"--entry", "e", "--entry-address", "0.0.0.0", "wg0"}, entryArgs{}, "not a unicast address"},
		{[]string{"--entry", "e", "--entry-address", "10.0.0.1", "--entry-mtu", "600", "wg0"}, entryArgs{}, "from 656 to 65535"},
		{[]string{"--entry", "e", "--entry-address", "10.0.0.1", "--entry-mtu", "x", "wg0"}, entryArgs{}, "from 656"},
	}
	for _, tt := range tests {
		got, err := parseDaemonArgs(tt.args)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: error %v, want %q", tt.args, err, tt.err)
			}
			continue
		}
		if err != nil || got.entry != tt.want || got.ifname != "wg0" {
			t.Errorf("%q: got %+v, %v; want %+v", tt.args, got.entry, err, tt.want)
		}
	}
	if got := (&entryArgs{}).exitMTU(); got != 1340 {
		t.Errorf("default exit MTU %d, want 1340", got)
	}
}

func TestMultihopHelp(t *testing.T) {
	var b strings.Builder
	printUsage(&b)
	for _, want := range []string{"--entry ENTRYNAME", "--entry-address ADDR[,ADDR6]", "--entry-mtu MTU", "wg set wg0-entry"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}
