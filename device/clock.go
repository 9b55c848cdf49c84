package device

import (
	"time"

	"github.com/gotatun/gotatun/clock"
)

// Clock is the device's source of time; see package clock.
type Clock = clock.Clock

// Timer is a stoppable, re-armable timer created by a Clock.
type Timer = clock.Timer

// RealClock is the Clock of package time.
type RealClock = clock.Real

// FakeClock is a Clock for tests that only moves when told to; see
// clock.Fake.
type FakeClock = clock.Fake

// NewFakeClock returns a FakeClock reading start.
func NewFakeClock(start time.Time) *FakeClock { return clock.NewFake(start) }
