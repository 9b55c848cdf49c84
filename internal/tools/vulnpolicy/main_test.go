package main

import (
	"bytes"
	"strings"
	"testing"
)

const header = `{"config":{"protocol_version":"v1.0.0","scanner_name":"govulncheck","go_version":"go1.26.8","db":"file:///db","db_last_modified":"2026-11-05T00:00:00Z"}}
{"progress":{"message":"Scanning your code"}}
{"osv":{"id":"GO-1","summary":"net/http: a bug"}}
{"osv":{"id":"GO-2","summary":"x/net: another bug"}}
{"osv":{"id":"GO-3","summary":"imported only"}}
`

const stdReach = `{"finding":{"osv":"GO-1","fixed_version":"v1.26.9","trace":[{"module":"stdlib","version":"v1.26.8","package":"net/http","function":"Get"},{"module":"github.com/gotatun/gotatun","package":"github.com/gotatun/gotatun/proxy","function":"serve"}]}}
{"finding":{"osv":"GO-1","fixed_version":"v1.26.9","trace":[{"module":"stdlib","version":"v1.26.8","package":"net/http","function":"Do","receiver":"*Client"}]}}
`

const modReach = `{"finding":{"osv":"GO-2","fixed_version":"v0.40.0","trace":[{"module":"golang.org/x/net","version":"v0.39.0","package":"golang.org/x/net/ipv4","function":"ReadBatch","receiver":"*PacketConn"}]}}
`

const importedOnly = `{"finding":{"osv":"GO-3","fixed_version":"v1.0.1","trace":[{"module":"example.com/m","version":"v1.0.0","package":"example.com/m/p"}]}}
{"finding":{"osv":"GO-3","fixed_version":"v1.0.1","trace":[{"module":"example.com/m","version":"v1.0.0"}]}}
`

func TestPolicy(t *testing.T) {
	cases := []struct {
		name               string
		in                 string
		fails, failsStrict bool
		want               []string
	}{
		{"clean", header, false, false, []string{"reachable: 0 in modules (fail), 0 in the standard library"}},
		{"imported only", header + importedOnly, false, false, []string{"imported but not reachable: 1"}},
		{"stdlib", header + stdReach, false, true, []string{
			"toolchain GO-1 stdlib@v1.26.8, fixed in v1.26.9: net/http: a bug",
			"reached through net/http.Client.Do, net/http.Get",
			"0 in modules (fail), 1 in the standard library of go1.26.8",
		}},
		{"module", header + stdReach + modReach, true, true, []string{
			"FAIL module GO-2 golang.org/x/net@v0.39.0, fixed in v0.40.0",
			"golang.org/x/net/ipv4.PacketConn.ReadBatch",
			"1 in modules (fail), 1 in the standard library",
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep, err := read(strings.NewReader(c.in))
			if err != nil {
				t.Fatal(err)
			}
			if got := rep.fails(false); got != c.fails {
				t.Errorf("fails(false) = %v, want %v", got, c.fails)
			}
			if got := rep.fails(true); got != c.failsStrict {
				t.Errorf("fails(true) = %v, want %v", got, c.failsStrict)
			}
			var out bytes.Buffer
			rep.print(&out)
			for _, w := range c.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	for _, in := range []string{
		"",
		"not json",
		`{"progress":{"message":"x"}}`,
		header + `{"finding":{"osv":"GO-9","trace":[]}}`,
	} {
		if _, err := read(strings.NewReader(in)); err == nil {
			t.Errorf("read(%q) succeeded", in)
		}
	}
}
