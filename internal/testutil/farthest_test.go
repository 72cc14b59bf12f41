package testutil

import "testing"

// TestFarthest: of the draws, the one farthest from the reference on
// either side is returned; no draws give the reference.
func TestFarthest(t *testing.T) {
	draws := []float64{1.1, 0.7, 1.2, 0.95}
	i := 0
	next := func() float64 { i++; return draws[i-1] }
	if got := Farthest(1, len(draws), next); got != 0.7 {
		t.Errorf("Farthest of %v from 1 = %v, want 0.7", draws, got)
	}
	if got := Farthest(1, 0, next); got != 1 {
		t.Errorf("Farthest of no draws = %v, want the reference 1", got)
	}
}
