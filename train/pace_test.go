package train

import (
	"math"
	"testing"
	"time"
)

// simulatePace runs a pacer over a run whose step k (1-based) takes
// stepTime(k), and returns the step it ended at and when.
func simulatePace(budget time.Duration, limit int64, stepTime func(k int64) time.Duration) (int64, time.Duration) {
	start := time.Unix(0, 0)
	p := newPacer(start, budget, limit)
	now, last := start, limit
	for done := int64(1); done <= last; done++ {
		now = now.Add(stepTime(done))
		if l, ok := p.observe(now, done); ok {
			last = l
		}
	}
	return last, now.Sub(start)
}

// TestPacerFitsTheBudget checks the fitted length against the arithmetic of
// a steady pace after a slow start, a pace that doubles half-way, and a
// limit below what the time allows.
func TestPacerFitsTheBudget(t *testing.T) {
	budget := 600 * time.Second
	steady := func(k int64) time.Duration {
		if k == 1 {
			return 60 * time.Second // compiling
		}
		return 50 * time.Millisecond
	}
	last, took := simulatePace(budget, 1e9, steady)
	want := int64((600 - 60) * 20)
	if math.Abs(float64(last-want)) > 0.01*float64(want) || took > budget || took < budget*99/100 {
		t.Errorf("steady pace: ended at step %d after %s, want about %d steps in %s", last, took, want, budget)
	}

	faster := func(k int64) time.Duration {
		if k < 5000 {
			return 50 * time.Millisecond // 250 s
		}
		return 25 * time.Millisecond
	}
	last, took = simulatePace(budget, 1e9, faster)
	want = 5000 + 350*40
	if took > budget || took < budget*97/100 || math.Abs(float64(last-want)) > 0.03*float64(want) {
		t.Errorf("pace doubling at 250 s: ended at step %d after %s, want about %d steps in %s", last, took, want, budget)
	}

	last, took = simulatePace(budget, 3000, steady)
	if last != 3000 || took != 60*time.Second+2999*50*time.Millisecond {
		t.Errorf("limit 3000: ended at step %d after %s, want step 3000 after 209.95 s", last, took)
	}
	// The same when the step at the limit is one the pacer looks at (one
	// step a second, every step observed): it must not ask for one more
	// (on 2026-12-04 a run given --steps 8 took 15, one at a time, until
	// its deadline).
	last, took = simulatePace(10*time.Second, 8, func(int64) time.Duration { return time.Second })
	if last != 8 || took != 8*time.Second {
		t.Errorf("limit 8 at one step a second for 10 s: ended at step %d after %s, want step 8 after 8 s", last, took)
	}
}
