package recipe

import (
	"strings"
	"testing"
)

// TestBudgetSteps: a FLOP budget sets the steps whose summed work is
// nearest it, at least one, whether each step costs the same or its own;
// a budget past maxBudgetSteps is refused rather than run.
func TestBudgetSteps(t *testing.T) {
	same := func(int64) float64 { return 1 }
	growing := func(step int64) float64 { return float64(step + 1) } // sums 1, 3, 6, 10, …
	for _, c := range []struct {
		name   string
		budget float64
		cost   func(int64) float64
		want   int64
	}{
		{"2.4 steps", 2.4, same, 2},
		{"2.6 steps", 2.6, same, 3},
		{"exactly 3", 3, same, 3},
		{"under one step", 0.1, same, 1},
		{"5 of 3|6", 5, growing, 3},
		{"4 of 3|6", 4, growing, 2},
		{"exactly 10", 10, growing, 4},
	} {
		got, err := budgetSteps(c.budget, c.cost)
		if err != nil || got != c.want {
			t.Errorf("%s: %d steps (%v), want %d", c.name, got, err, c.want)
		}
	}
	if _, err := budgetSteps(1e9, func(int64) float64 { return 1e-3 }); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("a budget of 10¹² steps: %v, want it refused", err)
	}
}
