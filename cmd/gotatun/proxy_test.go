package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestProxyArgs(t *testing.T) {
	a, err := parseProxyArgs([]string{"--socks5", "127.0.0.1:0", "wg.conf", "--forward", "tcp:127.0.0.1:8080=10.0.0.1:80",
		"--forward", "udp:[::1]:53=10.0.0.1:53", "--socks5-auth", "u:p:w"})
	if err != nil {
		t.Fatal(err)
	}
	if a.config != "wg.conf" || len(a.forwards) != 2 || a.forwards[1] != (forwardSpec{"udp", "[::1]:53", "10.0.0.1:53"}) ||
		a.user != "u" || a.pass != "p:w" || a.dialTimeout != 15*time.Second {
		t.Errorf("%+v", a)
	}
	for _, args := range [][]string{
		{"wg.conf"},
		{"--socks5", ":1"},
		{"--socks5", ":1", "a.conf", "b.conf"},
		{"--forward", "sctp:1:2=3:4", "wg.conf"},
		{"--forward", "tcp:127.0.0.1:1", "wg.conf"},
		{"--forward", "tcp:localhost=10.0.0.1:80", "wg.conf"},
		{"--http", ":1", "--socks5-auth", "u:p", "wg.conf"},
		{"--socks5", ":1", "--socks5-auth", "nocolon", "wg.conf"},
	} {
		if _, err := parseProxyArgs(args); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

func TestProxyBadConfig(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "wg0.conf")
	os.WriteFile(conf, []byte("[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\nAdress = 10.0.0.2/32\n"), 0o600)
	var out, errb bytes.Buffer
	if code := runProxy([]string{"--socks5", "127.0.0.1:0", conf}, &out, &errb, nil); code != 1 {
		t.Errorf("exit %d", code)
	}
	if want := conf + ":3: Adress: unknown key in [Interface]"; !strings.Contains(errb.String(), want) {
		t.Errorf("stderr %q, want %q", errb.String(), want)
	}
	errb.Reset()
	if code := runProxy([]string{conf}, &out, &errb, nil); code != 2 || !strings.Contains(errb.String(), "nothing to serve") {
		t.Errorf("exit %d, %q", code, errb.String())
	}
}
