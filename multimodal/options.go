package multimodal

import (
	"math/rand/v2"
)

// SetOptions changes the options of the calls that follow and restarts
// the random streams from o.Seed, so that a call's result depends only on
// its inputs and options, not on the calls before it. The engine (whose
// graphs hold the solver's steps, guidance and temperature) is rebuilt
// only when one of those changes.
func (m *Model) SetOptions(o Options) error {
	if m.engine == nil {
		return errClosed
	}
	if err := o.Validate(); err != nil {
		return err
	}
	e, err := m.engine.Retune(o.SampleOptions)
	if err != nil {
		return err
	}
	m.engine = e
	m.opts = o
	m.rng = rand.New(rand.NewPCG(uint64(o.Seed), textStream))
	return nil
}
