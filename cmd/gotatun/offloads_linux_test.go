package main

import (
	"strings"
	"testing"
)

func TestOffloadsOff(t *testing.T) {
	for _, c := range []struct {
		v       string
		off, ok bool
	}{{"", false, true}, {"on", false, true}, {"off", true, true}, {"0", false, false}, {"OFF", false, false}} {
		t.Setenv(envOffloads, c.v)
		off, err := offloadsOff()
		if off != c.off || (err == nil) != c.ok {
			t.Errorf("%s=%q: off %v, err %v", envOffloads, c.v, off, err)
		}
		if err != nil && !strings.Contains(err.Error(), envOffloads) {
			t.Errorf("error %q does not name %s", err, envOffloads)
		}
	}
}
