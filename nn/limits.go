package nn

import "fmt"

// The largest sizes a config may declare. They are far above anything this
// project trains (width 256, depth 6), and they keep a hostile or mistyped
// config.json from making Specs allocate billions of entries or overflow
// the size arithmetic before the memory estimate can refuse it.
const (
	MaxWidth = 1 << 16 // any width, length, channel or vocabulary count
	MaxDepth = 1024    // blocks of any stack
)

// Size is one declared size of a config, for CheckSizes.
type Size struct {
	Name  string
	Value int
	Depth bool // a count of blocks, bounded by MaxDepth instead of MaxWidth
}

// CheckSizes reports the first size that is not positive or is beyond the
// supported range, naming it.
func CheckSizes(what string, sizes ...Size) error {
	for _, s := range sizes {
		limit := MaxWidth
		if s.Depth {
			limit = MaxDepth
		}
		if s.Value <= 0 || s.Value > limit {
			return fmt.Errorf("%s: %s %d out of range (1…%d)", what, s.Name, s.Value, limit)
		}
	}
	return nil
}

// MemoryEstimate is a rough upper estimate, in bytes, of what a model of
// these weights needs with activations float32 activation values live at
// once: the weights, and when training also their gradients, two Adam
// moments, the EMA copy and the update's temporaries (6 copies in all).
// Commands compare it with the memory limit before they allocate anything.
func MemoryEstimate(specs []Spec, activations float64, training bool) float64 {
	copies := 2.0 // the host copy and the backend's
	if training {
		copies = 6
	}
	return 4 * (copies*float64(CountParams(specs)) + activations)
}
