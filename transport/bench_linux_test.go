package transport

import "testing"

func BenchmarkBindLinux(b *testing.B) {
	for _, c := range []struct {
		name string
		cfg  LinuxBindConfig
	}{
		{"mmsg", LinuxBindConfig{DisableGSO: true, DisableGRO: true}},
		{"gso", LinuxBindConfig{DisableGRO: true}},
		{"gso+gro", LinuxBindConfig{}},
	} {
		b.Run(c.name, func(b *testing.B) {
			benchmarkBind(b, func() Bind { return NewLinuxBind(c.cfg) })
		})
	}
}
