package clock

import (
	"testing"
	"time"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestFake(t *testing.T) {
	c := NewFake(epoch)
	var fired []string
	c.AfterFunc(2*time.Second, func() { fired = append(fired, "b") })
	ta := c.AfterFunc(time.Second, func() { fired = append(fired, "a") })
	tc := c.AfterFunc(3*time.Second, func() { fired = append(fired, "c") })
	if !tc.Stop() || tc.Stop() {
		t.Fatal("Stop should report armed once")
	}
	c.Advance(999 * time.Millisecond)
	if len(fired) != 0 {
		t.Fatalf("fired early: %v", fired)
	}
	c.Advance(time.Millisecond)
	if len(fired) != 1 || fired[0] != "a" {
		t.Fatalf("fired %v", fired)
	}
	if ta.Reset(5 * time.Second) {
		t.Fatal("a was not armed any more")
	}
	// A callback that arms another timer due within the same step.
	c.AfterFunc(time.Second, func() {
		fired = append(fired, "d")
		c.AfterFunc(500*time.Millisecond, func() {
			fired = append(fired, "e:"+c.Now().Sub(epoch).String())
		})
	})
	c.Advance(10 * time.Second)
	want := []string{"a", "b", "d", "e:2.5s", "a"}
	if len(fired) != len(want) {
		t.Fatalf("fired %v, want %v", fired, want)
	}
	for i := range want {
		if fired[i] != want[i] {
			t.Fatalf("fired %v, want %v", fired, want)
		}
	}
	if !c.Now().Equal(epoch.Add(11 * time.Second)) {
		t.Fatalf("now = %v", c.Now())
	}
}

// TestFakeAdvanceBefore checks that a timer due exactly at the end of an
// AdvanceBefore step waits for the next step, while one due earlier fires.
func TestFakeAdvanceBefore(t *testing.T) {
	c := NewFake(epoch)
	var fired []string
	c.AfterFunc(time.Second, func() { fired = append(fired, "at") })
	c.AfterFunc(time.Second-time.Nanosecond, func() { fired = append(fired, "before") })
	c.AdvanceBefore(time.Second)
	if len(fired) != 1 || fired[0] != "before" {
		t.Fatalf("fired %v, want [before]", fired)
	}
	if got := c.Now().Sub(epoch); got != time.Second {
		t.Fatalf("now is epoch+%v, want 1s", got)
	}
	if c.Pending() != 1 {
		t.Fatalf("%d timers pending, want 1", c.Pending())
	}
	c.AdvanceBefore(0)
	if len(fired) != 1 {
		t.Fatalf("a zero step fired %v", fired)
	}
	c.Advance(0)
	if len(fired) != 2 || fired[1] != "at" {
		t.Fatalf("fired %v, want [before at]", fired)
	}
}

// TestRealIsClock checks that Real arms timers that fire.
func TestRealIsClock(t *testing.T) {
	var c Clock = Real{}
	done := make(chan struct{})
	c.AfterFunc(time.Millisecond, func() { close(done) })
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Real timer never fired")
	}
}
