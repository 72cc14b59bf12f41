package tts

import (
	"context"
	"fmt"

	"github.com/latentlm/latentlm/lm"
)

// TeacherForced draws every frame of each request from the real frames
// before it: frame k of request i comes from its prefix and truth[i][:k]
// (SequenceOptions.Teacher), with request i's noise from seeds[i] and the
// model's options (guidance, temperature, solver steps), at most Batch at
// once in a continuous batch.
//
// It separates the two ways a text-to-speech model can fail. If these
// frames, decoded, say the text, the model's one-step predictions are
// right and what goes wrong in Generate is the drift of feeding on its own
// frames (exposure bias); if they do not, the model has not learnt to
// follow the text even where it is shown the true speech so far. The
// frames never stop at <EOL>: Result.Stopped is false.
func (m *Model) TeacherForced(ctx context.Context, reqs []Request, truth [][][]float32, seeds []uint64) ([]Result, error) {
	if m.engine == nil {
		return nil, errClosed
	}
	if len(truth) != len(reqs) || len(seeds) != len(reqs) {
		return nil, fmt.Errorf("tts: %d requests with %d true utterances and %d seeds", len(reqs), len(truth), len(seeds))
	}
	seqs := make([]*Sequence, len(reqs))
	guided := false
	for i, r := range reqs {
		o := m.SequenceOptions()
		o.Teacher = truth[i]
		s, err := m.NewSequence(r, seeds[i], o)
		if err != nil {
			return nil, fmt.Errorf("request %d: %w", i, err)
		}
		seqs[i], guided = s, guided || s.Guided()
	}
	b, err := m.NewBatch(m.opts.Steps, m.opts.Batch, guided)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	if err := lm.Run(ctx, b, seqs); err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("tts: teacher-forced frames: %w", err)
	}
	out := make([]Result, len(seqs))
	for i, s := range seqs {
		out[i] = s.Result()
	}
	return out, nil
}
