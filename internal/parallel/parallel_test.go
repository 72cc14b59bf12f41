package parallel

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
)

func TestForRunsEachIndexOnce(t *testing.T) {
	for _, n := range []int{0, 1, 7, 1000} {
		counts := make([]int32, n)
		if err := For(n, func(i int) error { atomic.AddInt32(&counts[i], 1); return nil }); err != nil {
			t.Fatal(err)
		}
		for i, c := range counts {
			if c != 1 {
				t.Fatalf("n=%d: index %d ran %d times", n, i, c)
			}
		}
	}
}

func TestForReturnsTheLowestFailure(t *testing.T) {
	var ran atomic.Int32
	err := For(100, func(i int) error {
		ran.Add(1)
		if i%10 == 3 {
			return fmt.Errorf("piece %d", i)
		}
		return nil
	})
	if err == nil || err.Error() != "piece 3" {
		t.Fatalf("error %v, want piece 3", err)
	}
	if ran.Load() != 100 {
		t.Fatalf("%d pieces ran, want all 100", ran.Load())
	}
	if err := For(3, func(int) error { return errors.New("x") }); err == nil {
		t.Fatal("no error")
	}
}
