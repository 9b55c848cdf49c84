package transport

import "testing"

func TestLinuxBindRebind(t *testing.T) { testRebind(t, NewLinuxBind(LinuxBindConfig{})) }
