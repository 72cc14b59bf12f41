package train

import "time"

// TotalPath is the schedule-length variable, for the external tests.
const TotalPath = totalPath

// SetClock makes l read the time from clock instead of time.Now.
func SetClock(l *Loop, clock func() time.Time) { l.clock = clock }
