package latentlm

import (
	"context"
	"testing"

	"github.com/latentlm/latentlm/lm"
)

// counted wraps a sampler to count Close calls.
type counted struct {
	sampler
	closed *int
}

func (c counted) Close() {
	*c.closed++
	c.sampler.Close()
}

// TestSamplerLifecycle checks that one compiled sampler at most is alive:
// reused while the options are unchanged, closed when they change, and
// closed by Close.
func TestSamplerLifecycle(t *testing.T) {
	g, err := Load("weights/latentlm-mnist")
	if err != nil {
		t.Fatal(err)
	}
	opened, closed := 0, 0
	orig := g.newSampler
	g.newSampler = func(o lm.SampleOptions) (sampler, error) {
		s, err := orig(o)
		if err != nil {
			return nil, err
		}
		opened++
		return counted{s, &closed}, nil
	}
	gen := func(opts SampleOptions) {
		t.Helper()
		if _, err := g.Generate(context.Background(), Request{Class: 2, N: 1}, opts); err != nil {
			t.Fatal(err)
		}
	}
	opts := SampleOptions{Steps: 1, CFG: 2, Temperature: 1, Seed: 1}
	gen(opts)
	opts.Seed = 2
	gen(opts)
	if opened != 1 || closed != 0 {
		t.Errorf("after two calls differing in seed only: %d samplers opened, %d closed; want 1, 0", opened, closed)
	}
	opts.Temperature = 0.5
	gen(opts)
	if opened != 2 || closed != 1 {
		t.Errorf("after a change of temperature: %d opened, %d closed; want 2, 1", opened, closed)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if closed != 2 || g.cached != nil || g.tok != nil || g.store != nil || g.backend != nil {
		t.Errorf("after Close: %d of 2 samplers closed; cached %v, tokenizer %v, store %v, backend %v left", closed, g.cached, g.tok, g.store, g.backend)
	}
}
