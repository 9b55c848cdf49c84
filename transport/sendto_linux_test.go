package transport

import "testing"

func TestLinuxBindSendTo(t *testing.T) { testSendTo(t, NewLinuxBind(LinuxBindConfig{})) }

// TestLinuxBindSendToSmallBatch sends more datagrams than fit one
// sendmmsg call.
func TestLinuxBindSendToSmallBatch(t *testing.T) {
	testSendTo(t, NewLinuxBind(LinuxBindConfig{BatchSize: 3}))
}
