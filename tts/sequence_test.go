package tts

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/lm"
)

// joining is a sequence of a continuous-batch test: added before tick
// start, removed (a cancelled request) before tick drop when drop > 0.
type joining struct {
	seq         *Sequence
	start, drop int
}

// drive runs the sequences through b until every one has ended or been
// removed, and returns the sizes the batch ran at, tick by tick. A
// sequence that ends with an error fails the test.
func drive(t *testing.T, b *lm.Batch, js []joining) []int {
	t.Helper()
	var sizes []int
	for tick := 0; ; tick++ {
		later := false
		for _, j := range js {
			switch {
			case j.start == tick:
				if err := b.Add(j.seq); err != nil {
					t.Fatal(err)
				}
			case j.start > tick:
				later = true
			}
			if j.drop > 0 && j.drop == tick && !b.Remove(j.seq) {
				t.Fatalf("tick %d: the sequence to drop is not in the batch", tick)
			}
		}
		if b.Len() == 0 && !later {
			return sizes
		}
		ended, err := b.Step()
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, b.Slots())
		for _, e := range ended {
			if e.Err != nil {
				t.Fatalf("tick %d: %v", tick, e.Err)
			}
		}
		if tick > 1000 {
			t.Fatal("the batch runs for ever")
		}
	}
}

// alone is the result of a sequence run by itself in a new batch.
func alone(t *testing.T, m *Model, guided bool, s *Sequence) Result {
	t.Helper()
	b, err := m.NewBatch(m.Options().Steps, 1, guided)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.MinBlock = 2 // as TestSequenceContinuousBatch reads
	drive(t, b, []joining{{seq: s}})
	if !s.Done() {
		t.Fatal("a sequence left the batch unfinished")
	}
	return s.Result()
}

// worstRelErr is the largest relative difference between the frames.
func worstRelErr(a, b [][]float32) float64 {
	var w float64
	for k := range min(len(a), len(b)) {
		w = math.Max(w, relErr(a[k], b[k]))
	}
	return w
}

// seqSpec is one utterance of the tests: request, seed and options.
type seqSpec struct {
	req  Request
	seed uint64
	o    SequenceOptions
}

func (c seqSpec) new(t *testing.T, m *Model) *Sequence {
	t.Helper()
	s, err := m.NewSequence(c.req, c.seed, c.o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSequenceContinuousBatch: an utterance's frames, its length and
// whether it stopped by itself are the same, bit for bit, whether it runs
// alone in a batch or while utterances of other texts, prompts, seeds,
// guidance scales (1, the self-guided case, among them), temperatures and
// lengths join and leave mid-way (one of them cancelled), the batch
// growing past four slots and shrinking again; the frames it streams are
// those of its result.
func TestSequenceContinuousBatch(t *testing.T) {
	opts := DefaultOptions()
	opts.CFG, opts.Steps = 2, 5
	m := trainOverfit(t, 500, true, opts)
	reqs := overfitRequests(m)
	other := frames(3, testChannels, func(k, j int) float32 { return 0.3 * float32(k-j) })
	d := m.SequenceOptions()
	with := func(cfg, temp, secs float64) SequenceOptions {
		o := d
		o.CFG, o.Temperature = cfg, temp
		if secs > 0 {
			o.MaxSeconds = secs
		}
		return o
	}
	specs := []seqSpec{
		{reqs[1], 1, with(2, 1, 0)},                                         // "hello": the one watched
		{reqs[0], 2, with(3, 0.9, 0)},                                       // "hi", ends first
		{reqs[2], 3, with(1, 1, 0)},                                         // "hey you", CFG 1 in a guided batch
		{Request{Text: "he", Prompt: other}, 4, with(2.5, 1.1, 4/testRate)}, // another voice, at most 4 frames
		{reqs[2], 5, with(0, 1, 0)},                                         // cancelled mid-way
		{Request{Text: "you", Prompt: other}, 6, with(2, 0.8, 0)},
		{reqs[1], 7, with(1.5, 1, 0)},
		{reqs[2], 8, with(2, 1, 3/testRate)},
		{reqs[2], 9, with(2, 1, 0)}, // alone at the end: the batch shrinks
	}
	starts := []int{2, 0, 3, 3, 4, 4, 5, 5, 20}
	drops := map[int]int{4: 7}
	seqs := make([]*Sequence, len(specs))
	streamed := make([][][]float32, len(specs))
	js := make([]joining, len(specs))
	for i, c := range specs {
		c.o.OnFrame = func(k int, z []float32) error {
			if k != len(streamed[i]) {
				t.Errorf("sequence %d: frame %d after %d", i, k, len(streamed[i]))
			}
			streamed[i] = append(streamed[i], slices.Clone(z))
			return nil
		}
		seqs[i] = c.new(t, m)
		js[i] = joining{seq: seqs[i], start: starts[i], drop: drops[i]}
	}
	b, err := m.NewBatch(m.Options().Steps, 16, true)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// The tiny model's prefixes are short: read them in one go, as the
	// batch reads real voice prompts (lm.DefaultMinBlock).
	b.MinBlock = 2
	sizes := drive(t, b, js)
	t.Logf("batch sizes tick by tick: %v", sizes)
	if slices.Max(sizes) != 8 || sizes[len(sizes)-1] >= 8 {
		t.Errorf("the batch ran at %v slots: want it to grow to 8 and shrink", sizes)
	}
	if seqs[4].Done() || len(seqs[4].Result().Frames) == 0 {
		t.Errorf("the cancelled sequence has %d frames, done %v: want some, not done", len(seqs[4].Result().Frames), seqs[4].Done())
	}
	if r := seqs[0].Result(); len(r.Frames) != 6 || !r.Stopped {
		t.Errorf("%q in the running batch: %d frames, stopped %v; want 6 ended by <EOL>", specs[0].req.Text, len(r.Frames), r.Stopped)
	}
	for i, c := range specs {
		if drops[i] > 0 {
			continue
		}
		got := seqs[i].Result()
		if !seqs[i].Done() {
			t.Errorf("sequence %d not done", i)
		}
		if !slices.EqualFunc(streamed[i], got.Frames, slices.Equal) {
			t.Errorf("sequence %d: the streamed frames are not the result's", i)
		}
		c.o.OnFrame = nil
		want := alone(t, m, true, c.new(t, m))
		t.Logf("sequence %d (%q, cfg %g): %d frames, stopped %v; alone %d, %v", i, c.req.Text, c.o.CFG, len(got.Frames), got.Stopped, len(want.Frames), want.Stopped)
		if len(got.Frames) != len(want.Frames) || got.Stopped != want.Stopped || got.PromptFrames != want.PromptFrames {
			t.Errorf("sequence %d: %d frames, stopped %v, prompt %d in the running batch; alone %d, %v, %d", i,
				len(got.Frames), got.Stopped, got.PromptFrames, len(want.Frames), want.Stopped, want.PromptFrames)
			continue
		}
		for k := range got.Frames {
			if !slices.Equal(got.Frames[k], want.Frames[k]) {
				t.Errorf("sequence %d frame %d: %v in the running batch, %v alone", i, k, got.Frames[k], want.Frames[k])
				break
			}
		}
	}
	// Guidance scale 1 in a guided batch (its guidance stream reading its
	// own items) is the speech of a batch without guidance: bit for bit
	// on ONNX Runtime, whose kernels compute each row alike from two rows
	// on (here with company as long, so that the batch never runs at one
	// slot); a batch of one row (alone without guidance streams) takes
	// other kernels there, and agrees up to rounding.
	if seqs[2].Guided() || !seqs[0].Guided() {
		t.Error("Guided: want false for CFG 1 only")
	}
	unguided, err := m.NewBatch(m.Options().Steps, 4, false)
	if err != nil {
		t.Fatal(err)
	}
	defer unguided.Close()
	unguided.MinBlock = 2
	self, company := specs[2].new(t, m), seqSpec{reqs[2], 11, with(1, 0.9, 0)}.new(t, m)
	drive(t, unguided, []joining{{seq: self}, {seq: company}})
	plain, lone := self.Result(), alone(t, m, false, specs[2].new(t, m))
	w, w1 := worstRelErr(plain.Frames, seqs[2].Result().Frames), worstRelErr(lone.Frames, seqs[2].Result().Frames)
	t.Logf("CFG 1: frames without guidance streams differ from the guided batch's by %.3g (%.3g alone in a batch of one)", w, w1)
	exact := strings.HasPrefix(backend.Resolve(""), "onnx")
	if len(plain.Frames) != len(seqs[2].Result().Frames) || len(lone.Frames) != len(plain.Frames) || (exact && w != 0) || w > 1e-5 || w1 > 1e-5 {
		t.Errorf("CFG 1: %d frames with guidance streams, %d and %d without (alone), differing by %.3g and %.3g", len(seqs[2].Result().Frames), len(plain.Frames), len(lone.Frames), w, w1)
	}
	// The seed is the sequence's own: another one draws other frames.
	reseeded := specs[0]
	reseeded.seed = 99
	if r := alone(t, m, true, reseeded.new(t, m)); worstRelErr(r.Frames, seqs[0].Result().Frames) == 0 {
		t.Error("seeds 1 and 99 drew the same frames")
	}
}

// TestSequenceMatchesGenerate: through a batch of one, a sequence gives
// the frames Generate gives with the same noise (its own PCG stream),
// within float32 rounding (the batch runs positions [B, T] and a guidance
// scale per slot, Generate positions [T] and one scale), and on a tiny
// model overfit to end its utterances it stops at the same frame, with
// guidance and without.
func TestSequenceMatchesGenerate(t *testing.T) {
	opts := DefaultOptions()
	opts.CFG, opts.Steps = 2, 5
	m := trainOverfit(t, 500, true, opts)
	ctx := context.Background()
	for _, cfg := range []float64{2, 1} {
		o := opts
		o.CFG = cfg
		if err := m.SetOptions(o); err != nil {
			t.Fatal(err)
		}
		for i, req := range overfitRequests(m) {
			seed := uint64(10 + i)
			gen, err := m.generate(ctx, []Request{req}, nil, []uint64{seed})
			if err != nil {
				t.Fatal(err)
			}
			s, err := m.NewSequence(req, seed, m.SequenceOptions())
			if err != nil {
				t.Fatal(err)
			}
			got, want := alone(t, m, true, s), gen[0]
			w := worstRelErr(got.Frames, want.Frames)
			t.Logf("cfg %g, %q: batch %d frames (stopped %v), Generate %d (%v); worst relative difference %.3g", cfg, req.Text, len(got.Frames), got.Stopped, len(want.Frames), want.Stopped, w)
			if len(got.Frames) != overfitData[i].frames || len(want.Frames) != len(got.Frames) || !got.Stopped || !want.Stopped || got.PromptFrames != want.PromptFrames {
				t.Errorf("cfg %g, %q: batch %d frames, stopped %v; Generate %d, %v; want both %d ended by <EOL>",
					cfg, req.Text, len(got.Frames), got.Stopped, len(want.Frames), want.Stopped, overfitData[i].frames)
			}
			if w > 1e-4 {
				t.Errorf("cfg %g, %q: the batch's frames differ from Generate's by %.3g", cfg, req.Text, w)
			}
		}
	}
}

// TestSequenceMaxSeconds: a sequence whose model never predicts <EOL>
// ends at its MaxSeconds (or where max_len leaves no room), says it did
// not stop by itself and streams every frame, agreeing with Generate
// given the same noise; an error of its frame callback ends it alone; bad
// requests and options are refused.
func TestSequenceMaxSeconds(t *testing.T) {
	opts := DefaultOptions()
	opts.MaxSeconds = 10
	m := neverEnds(t, 40, nil, opts)
	prompt := frames(4, testChannels, func(k, j int) float32 { return 0.1 * float32(k-j) })
	req := Request{Text: "seven", Prompt: prompt}
	o := m.SequenceOptions()
	o.MaxSeconds = 0.2 // 5 frames at 25 Hz
	var calls []int
	o.OnFrame = func(k int, _ []float32) error { calls = append(calls, k); return nil }
	s, err := m.NewSequence(req, 3, o)
	if err != nil {
		t.Fatal(err)
	}
	r := alone(t, m, true, s)
	if len(r.Frames) != 5 || r.Stopped || r.PromptFrames != 4 || !slices.Equal(calls, []int{0, 1, 2, 3, 4}) {
		t.Errorf("%d frames, stopped %v, prompt %d, frames streamed %v; want 5 cut by MaxSeconds, prompt 4, frames 0…4", len(r.Frames), r.Stopped, r.PromptFrames, calls)
	}
	// Generate with the same MaxSeconds and noise: the same frames.
	cut := opts
	cut.MaxSeconds = o.MaxSeconds
	if err := m.SetOptions(cut); err != nil {
		t.Fatal(err)
	}
	gen, err := m.generate(context.Background(), []Request{req}, nil, []uint64{3})
	if err != nil {
		t.Fatal(err)
	}
	w := worstRelErr(r.Frames, gen[0].Frames)
	t.Logf("runaway: worst relative difference from Generate %.3g", w)
	if len(gen[0].Frames) != 5 || gen[0].Stopped || w > 1e-4 {
		t.Errorf("Generate: %d frames, stopped %v, differing by %.3g; want the sequence's 5", len(gen[0].Frames), gen[0].Stopped, w)
	}
	// max_len bounds it first: 40 − (4 + 26 + 3) = 7 frames of room.
	long := Request{Text: "twenty-six characters long", Prompt: prompt}
	o = m.SequenceOptions()
	o.MaxSeconds = 10
	s, err = m.NewSequence(long, 1, o)
	if err != nil {
		t.Fatal(err)
	}
	if s.MaxItems() != m.Config.MaxLen-1 {
		t.Errorf("at most %d items, want %d", s.MaxItems(), m.Config.MaxLen-1)
	}
	if r := alone(t, m, true, s); len(r.Frames) != 7 || r.Stopped {
		t.Errorf("%d frames, stopped %v; want the 7 that max_len leaves", len(r.Frames), r.Stopped)
	}
	// A frame callback's error ends its sequence with that error; the
	// other goes on to its end.
	stop := errors.New("client gone")
	o = m.SequenceOptions()
	o.OnFrame = func(k int, _ []float32) error {
		if k == 2 {
			return stop
		}
		return nil
	}
	failing, err := m.NewSequence(req, 1, o)
	if err != nil {
		t.Fatal(err)
	}
	o.OnFrame = nil
	o.MaxSeconds = 0.24 // 6 frames
	going, err := m.NewSequence(req, 2, o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.NewBatch(m.Options().Steps, 2, true)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, s := range []*Sequence{failing, going} {
		if err := b.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	var ended []lm.Ended
	for b.Len() > 0 {
		e, err := b.Step()
		if err != nil {
			t.Fatal(err)
		}
		ended = append(ended, e...)
	}
	if len(ended) != 2 || ended[0].Seq != failing || !errors.Is(ended[0].Err, stop) || len(failing.Result().Frames) != 3 ||
		ended[1].Seq != going || ended[1].Err != nil || len(going.Result().Frames) != 6 {
		t.Errorf("ended %+v; frames %d and %d: want the failing one first with its error after 3 frames, the other after 6", ended, len(failing.Result().Frames), len(going.Result().Frames))
	}
	// Refused: no prompt, a text outside the alphabet, options out of range.
	if _, err := m.NewSequence(Request{Text: "hi"}, 1, m.SequenceOptions()); err == nil || !strings.Contains(err.Error(), "no voice prompt") {
		t.Errorf("no prompt: %v", err)
	}
	if _, err := m.NewSequence(Request{Text: "room 101", Prompt: prompt}, 1, m.SequenceOptions()); !errors.As(err, new(*TextError)) {
		t.Errorf("digits: %v, want a TextError", err)
	}
	for _, bad := range []SequenceOptions{{CFG: -1, Temperature: 1, MaxSeconds: 1}, {CFG: 1, Temperature: 0, MaxSeconds: 1}, {CFG: 1, Temperature: 1}} {
		if _, err := m.NewSequence(req, 1, bad); err == nil {
			t.Errorf("options %+v accepted", bad)
		}
	}
}
