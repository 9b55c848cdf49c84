package uapi

import (
	"bytes"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
)

// FuzzServe feeds arbitrary bytes to a configuration connection, as a local
// client could: the server must not panic, must answer only with complete
// answers, and must not log anything that could be a key.
func FuzzServe(f *testing.F) {
	f.Add([]byte("get=1\n\n"))
	f.Add([]byte("set=1\nprivate_key=" + hexPriv + "\nlisten_port=51820\npublic_key=" + hexPub1 + "\nallowed_ip=10.0.0.0/8\n\nget=1\n\n"))
	f.Add([]byte("set=1\npublic_key=" + hexPub1 + "\nprivate_key=" + hexPriv + "\n\n"))
	f.Add([]byte("set=1\npreshared_key=" + hexPriv + "\n\n"))
	f.Add([]byte("private_key=" + hexPriv + "\n"))
	f.Add([]byte("set=1\n" + hexPriv + "\n\n"))
	f.Add([]byte("get=1\nx\n\nget=1\n\n"))
	f.Add([]byte("set=1\nlisten_port=1\n"))
	answer := regexp.MustCompile(`\Aerrno=-?[0-9]+\n\n\z`)
	f.Fuzz(func(t *testing.T, in []byte) {
		var logs bytes.Buffer
		log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		var out bytes.Buffer
		serveTransactions(struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(in), &out}, &fakeDevice{}, log, nil)
		// Answers: a get's key=value lines, then errno=N and a blank line.
		rest := out.String()
		for rest != "" {
			i := strings.Index(rest, "errno=")
			if i < 0 {
				t.Fatalf("answer without errno: %q", rest)
			}
			body, tail, ok := strings.Cut(rest[i:], "\n\n")
			if !ok || !answer.MatchString(body+"\n\n") {
				t.Fatalf("malformed answer: %q", rest[i:])
			}
			rest = tail
		}
		// No run of the input that may be a key reaches the log. '=' is
		// left out: it ends a key name as well as a base64 key, and
		// Error writes key names with it. The window is 3 longer than
		// the runs scrub removes: quoting writes a byte like 0 as \x00,
		// whose "x00" can lengthen a shorter run that is rightly shown.
		const window = keyLikeRun + 3
		l := logs.String()
		run := 0
		for i := 0; i <= len(in); i++ {
			if i < len(in) && isKeyChar(in[i]) && in[i] != '=' {
				run++
				if run >= window && strings.Contains(l, string(in[i+1-window:i+1])) {
					t.Fatalf("log shows %q of the input:\n%s", in[i+1-window:i+1], l)
				}
				continue
			}
			run = 0
		}
	})
}
