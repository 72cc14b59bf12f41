package tts

import (
	"context"
	"slices"
	"testing"
)

// TestSetOptions: after SetOptions a request's frames depend only on its
// options, not on the requests before it (the seed restarts the streams);
// another seed or another number of steps (a rebuilt engine) changes
// them; options out of range are refused and leave the model as it was.
func TestSetOptions(t *testing.T) {
	opts := DefaultOptions()
	opts.MaxSeconds = 0.2 // 5 frames
	m := neverEnds(t, 40, nil, opts)
	prompt := frames(3, testChannels, func(k, j int) float32 { return 0.1 * float32(k+j) })
	speak := func(o Options) []float32 {
		t.Helper()
		if err := m.SetOptions(o); err != nil {
			t.Fatal(err)
		}
		res, err := m.Generate(context.Background(), []Request{{Text: "nine", Prompt: prompt}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var flat []float32
		for _, z := range res[0].Frames {
			flat = append(flat, z...)
		}
		return flat
	}
	first := speak(opts)
	again := speak(opts) // the streams continued without SetOptions
	if !slices.Equal(first, again) {
		t.Error("the same options and seed gave other frames on the second request")
	}
	other := opts
	other.Seed = 2
	if slices.Equal(first, speak(other)) {
		t.Error("seed 2 gave the frames of seed 1")
	}
	fewer := opts
	fewer.Steps = 2
	if got := speak(fewer); slices.Equal(first, got) || len(got) != len(first) {
		t.Errorf("2 steps gave %d values equal to those of 5 steps", len(got))
	}
	if !slices.Equal(first, speak(opts)) {
		t.Error("back to the first options (engine rebuilt twice), the frames differ")
	}
	bad := opts
	bad.MaxSeconds = 0
	if err := m.SetOptions(bad); err == nil {
		t.Error("MaxSeconds 0 accepted")
	}
	if m.Options() != opts {
		t.Errorf("a refused SetOptions changed the options to %+v", m.Options())
	}
}
