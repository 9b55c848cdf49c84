package mobile

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/gotatun/gotatun/uapi"
)

func TestParseConfig(t *testing.T) {
	body := "private_key=" + strings.Repeat("11", 32) + "\nlisten_port=1234\npublic_key=" + strings.Repeat("22", 32) + "\nallowed_ip=10.0.0.2/32\n"
	for _, text := range []string{body, "set=1\n" + body, "set=1\n" + body + "\n", body + "\n\n"} {
		cfg, err := ParseConfig(text)
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		if cfg.ListenPort == nil || *cfg.ListenPort != 1234 || len(cfg.Peers) != 1 || len(cfg.Peers[0].AllowedIPs) != 1 {
			t.Fatalf("%q: parsed %+v", text, cfg)
		}
	}
	for _, bad := range []string{
		"listen_port=x\n",
		"set=1\nset=1\n",
		"get=1\n",
		body + "\nlisten_port=1\n",
		"public_key=zz\n",
	} {
		_, err := ParseConfig(bad)
		if err == nil {
			t.Errorf("%q accepted", bad)
			continue
		}
		var ue *uapi.Error
		if !errors.As(err, &ue) || Errno(err) == 0 {
			t.Errorf("%q: error %v is not a UAPI error with an errno", bad, err)
		}
	}
	if Errno(ErrClosed) != syscall.EBADF || Errno(nil) != 0 {
		t.Fatal("Errno of ErrClosed or nil")
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add("set=1\nprivate_key=" + strings.Repeat("11", 32) + "\nlisten_port=1\n")
	f.Add("public_key=" + strings.Repeat("22", 32) + "\nallowed_ip=10.0.0.0/8\n\nx")
	f.Fuzz(func(t *testing.T, text string) {
		// Never a panic, and every refusal carries an errno for C.
		if _, err := ParseConfig(text); err != nil && Errno(err) == 0 {
			t.Fatalf("error %v has no errno", err)
		}
	})
}
