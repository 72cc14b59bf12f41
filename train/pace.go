package train

import "time"

// pacer fits the length of a run to a time budget (Loop.Deadline): it
// watches the steps done against the clock and says at which step the
// run must end so that its cosine schedule reaches its floor when the time
// is up. A run's first steps are slow and unrepresentative (on an XLA GPU
// each new input shape compiles for seconds), so the pace is measured over
// a recent window that leaves out the budget's first tenth, and nothing is
// fitted before 15% of it has passed: until then the schedule keeps the
// length it started with (Loop.Steps, the most steps the run may take),
// which holds the rate near its peak.
type pacer struct {
	start, deadline time.Time
	budget          time.Duration
	limit           int64 // the most steps the run may take
	every           time.Duration
	next            time.Time
	marks           []paceMark
}

type paceMark struct {
	at   time.Time
	step int64
}

func newPacer(start time.Time, budget time.Duration, limit int64) *pacer {
	budget = max(budget, 0)
	every := max(budget/100, 100*time.Millisecond)
	return &pacer{start: start, deadline: start.Add(budget), budget: budget, limit: limit, every: every, next: start}
}

// observe records that done steps are complete at now. When it returns ok,
// last is the step the run should end at: done itself once the time is up,
// otherwise done plus the steps the recent pace fits into the time left,
// at most the limit.
func (p *pacer) observe(now time.Time, done int64) (last int64, ok bool) {
	if !now.Before(p.deadline) || done >= p.limit {
		return min(done, p.limit), true
	}
	if now.Before(p.next) {
		return 0, false
	}
	p.next = now.Add(p.every)
	p.marks = append(p.marks, paceMark{now, done})
	if now.Sub(p.start) < p.budget*15/100 {
		return 0, false
	}
	from := now.Add(-p.budget / 5)
	if settled := p.start.Add(p.budget / 10); from.Before(settled) {
		from = settled
	}
	for len(p.marks) > 0 && p.marks[0].at.Before(from) {
		p.marks = p.marks[1:]
	}
	first := p.marks[0]
	span := now.Sub(first.at)
	if span < p.budget/20 || done <= first.step {
		return 0, false
	}
	perSecond := float64(done-first.step) / span.Seconds()
	last = done + int64(perSecond*p.deadline.Sub(now).Seconds())
	return max(done+1, min(last, p.limit)), true
}
