package tts

import "fmt"

// SetOptions changes the options of the calls that follow and restarts
// the random streams from o.Seed, so that an utterance depends only on its
// text, prompt and options, not on what the model spoke before: a server
// answering many clients needs that to give the same speech for the same
// request. The engine (whose graphs hold the solver's steps, the guidance
// scale and the temperature) is rebuilt only when one of those changes,
// which compiles its graphs anew on first use.
func (m *Model) SetOptions(o Options) error {
	if m.engine == nil {
		return errClosed
	}
	if err := o.Validate(); err != nil {
		return fmt.Errorf("tts: %w", err)
	}
	e, err := m.engine.Retune(o.SampleOptions)
	if err != nil {
		return fmt.Errorf("tts: %w", err)
	}
	m.engine = e
	m.opts = o
	return nil
}
