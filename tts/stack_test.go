package tts

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/latentlm/latentlm/internal/testspeech"
	"github.com/latentlm/latentlm/internal/testutil"
)

// TestStackFrames: a stacked format lays k tokenizer frames end to end as
// one model frame, fills a short last run by repeating its last frame, and
// UnstackFrames gives the frames back; a checkpoint's record rebuilds the
// stacked format, and a format is stacked once.
func TestStackFrames(t *testing.T) {
	f, err := testFormat(t).Stacked(2)
	if err != nil {
		t.Fatal(err)
	}
	if f.Channels != 2*testChannels || f.FrameRate != testRate/2 || f.Stack != 2 {
		t.Fatalf("stacked by 2: %d channels at %g Hz, stack %d; want %d at %g, 2", f.Channels, f.FrameRate, f.Stack, 2*testChannels, testRate/2)
	}
	in := frames(5, testChannels, func(k, j int) float32 { return float32(10*k + j) })
	got := f.StackFrames(in)
	if len(got) != 3 {
		t.Fatalf("5 frames stacked by 2 gave %d, want 3", len(got))
	}
	for i, z := range got {
		a, b := in[2*i], in[min(2*i+1, 4)] // the last run repeats frame 4
		if !slices.Equal(z, append(slices.Clone(a), b...)) {
			t.Errorf("stacked frame %d is %v, want frames %d and %d end to end", i, z, 2*i, min(2*i+1, 4))
		}
	}
	back := f.UnstackFrames(got)
	if len(back) != 6 || !slices.Equal(back[5], in[4]) {
		t.Fatalf("unstacked %d frames, the last %v; want 6, the last a copy of frame 4", len(back), back[len(back)-1])
	}
	for k := range in {
		if !slices.Equal(back[k], in[k]) {
			t.Errorf("frame %d came back as %v, want %v", k, back[k], in[k])
		}
	}
	one := testFormat(t)
	if got := one.StackFrames(in); len(got) != len(in) || &got[0][0] != &in[0][0] {
		t.Error("an unstacked format changed its frames")
	}
	if _, err := f.Stacked(2); err == nil {
		t.Error("a stacked format stacked again")
	}
	if _, err := one.Stacked(0); err == nil {
		t.Error("stacking 0 frames accepted")
	}

	rec := Record{Alphabet: Alphabet, FrameRate: f.FrameRate, Stack: 2}
	g, err := rec.Format(f.Channels)
	if err != nil {
		t.Fatal(err)
	}
	if g.Channels != f.Channels || g.FrameRate != f.FrameRate || g.Stack != 2 || g.Vocab != f.Vocab {
		t.Errorf("the record's format: %d channels at %g Hz, stack %d; want %d at %g, 2", g.Channels, g.FrameRate, g.Stack, f.Channels, f.FrameRate)
	}
	if _, err := rec.Format(7); err == nil {
		t.Error("a record of 2 stacked frames accepted 7 channels")
	}
	old := Record{Alphabet: Alphabet, FrameRate: testRate} // before stacking
	if g, err := old.Format(testChannels); err != nil || g.stack() != 1 || g.Channels != testChannels {
		t.Errorf("a record without stack: %+v, %v", g, err)
	}
}

// TestStackedModelSpeaks: a model that stacks two frames encodes a prompt
// as the tokenizer's frames stacked, decodes its frames as the tokenizer's
// frames unstacked, and speaks and streams twice the tokenizer's samples
// per frame; a tokenizer that does not fit the stacked format is refused.
func TestStackedModelSpeaks(t *testing.T) {
	sp := testspeech.Tokenizer(t, 0)
	sp.GriffinLimIterations = 2
	f, err := testFormat(t).Stacked(2)
	if err != nil {
		t.Fatal(err)
	}
	opts := DefaultOptions()
	opts.MaxSeconds = 0.8 // 10 frames at 12.5 Hz
	m := neverEndsIn(t, f, 64, sp, opts)
	spl := sp.Config.SamplesPerLatent()
	if m.SamplesPerFrame() != 2*spl {
		t.Fatalf("%d samples a frame, want %d", m.SamplesPerFrame(), 2*spl)
	}
	audio := tone()
	z, err := sp.Encode(audio, false)
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Encode(audio)
	if err != nil {
		t.Fatal(err)
	}
	if want := f.StackFrames(z); len(got) != len(want) || len(got) != 13 || !slices.Equal(got[12], want[12]) {
		t.Errorf("encoded %d frames, want the tokenizer's %d stacked: 13", len(got), len(z))
	}
	y, err := m.Decode(got, 7)
	if err != nil {
		t.Fatal(err)
	}
	direct, err := sp.Decode(f.UnstackFrames(got), 0, 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(y) != 13*2*spl || !slices.Equal(y, direct) {
		t.Errorf("decoded %d samples, want the tokenizer's decoding of the 26 unstacked frames (%d)", len(y), len(direct))
	}

	if _, err := m.Decode([][]float32{{1, 2, 3}}, 7); err == nil || !strings.Contains(err.Error(), "3 values") {
		t.Errorf("decoding a frame of 3 values: %v", err)
	}

	// The model never ends, so it speaks to MaxSeconds: 10 frames, 20 of
	// the tokenizer's, streamed in chunks of DefaultChunk model frames.
	var streamed int
	s, err := m.Speak(context.Background(), "hello", audio, func(c []float32) error { streamed += len(c); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Frames) != 10 || s.PromptFrames != 13 || len(s.Samples) != 10*2*spl || streamed != len(s.Samples) {
		t.Errorf("%d frames after a prompt of %d, %d samples (%d streamed); want 10, 13, %d", len(s.Frames), s.PromptFrames, len(s.Samples), streamed, 10*2*spl)
	}

	one := testFormat(t)
	if _, err := New(testutil.Backend(t, ""), tinyConfig(f, 64), randomStore(t, tinyConfig(f, 64), 0.1), one, sp, opts); err == nil {
		t.Error("a model of 8 channels made with a format of 4")
	}
	wide, _ := NewFormat(Alphabet, 2*testChannels, testRate)
	if _, err := New(testutil.Backend(t, ""), tinyConfig(wide, 64), randomStore(t, tinyConfig(wide, 64), 0.1), wide, sp, opts); err == nil {
		t.Error("an unstacked 8-channel format accepted a 4-channel tokenizer")
	}
}
