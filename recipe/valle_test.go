package recipe

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/evaluate"
	"github.com/latentlm/latentlm/internal/testspeech"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/tts"
	"github.com/latentlm/latentlm/valle"
)

// TestVALLE: a tiny run of the discrete baseline on a synthetic speech
// cache with an untrained residual-VQ codec writes a checkpoint that loads
// and generates; a run stopped and resumed ends with the weights of one
// that was not; a run may read phonemes; a σ-VAE is refused as its codec,
// and so is no codec.
func TestVALLE(t *testing.T) {
	cache, sigma := tinySpeechData(t)
	root := t.TempDir()
	codecDir := filepath.Join(root, "codec")
	testspeech.Save(t, 3, codecDir)
	opts := func(out string, steps int64) VALLEOptions {
		o := DefaultVALLEOptions()
		o.Data, o.Codec, o.Out, o.Quiet, o.Steps, o.SaveEvery, o.Batch = cache, codecDir, out, true, steps, 0, 3
		o.Dim, o.Depth, o.Heads = 16, 1, 2
		return o
	}
	ctx := context.Background()
	straight := opts(filepath.Join(root, "straight"), 4)
	resumeIsExact(t, "a run", root, func(out string, steps int64, resume bool) error {
		o := opts(out, steps)
		o.Resume = resume
		_, err := VALLE(ctx, o)
		return err
	})
	m, err := valle.Load(testutil.Backend(t, ""), straight.Out)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// A budget of half the straight run's counted work trains 2 of its
	// steps, whatever --steps says.
	work, _ := m.Info["train_gflop"].(float64)
	budget := opts(filepath.Join(root, "budget"), 9)
	budget.TrainGFLOP = work / 2
	if _, err := VALLE(ctx, budget); err != nil {
		t.Fatal(err)
	}
	if info, err := evaluate.SnapshotInfo(budget.Out); err != nil || info.Steps != 2 || math.Abs(info.GFLOP-work/2) > 1e-9*work || work <= 0 {
		t.Errorf("a budget of %g GFLOP (2 steps) trained %+v (%v)", work/2, info, err)
	}
	if m.Config.Codebooks != 3 || m.Config.FrameRate != 25 || m.Info["tokenizer"] == nil {
		t.Errorf("checkpoint: %d codebooks at %g Hz, codec record %v", m.Config.Codebooks, m.Config.FrameRate, m.Info["tokenizer"])
	}
	// The default trains the AR with the guided attention term, as
	// LatentLM's text-to-speech (the resume above covers it).
	if got := m.Info["align"]; got != DefaultTTSOptions().Align || got != 1.0 {
		t.Errorf("the checkpoint records alignment weight %v, want the TTS default 1", got)
	}
	text, err := m.Format.Text.Encode("one")
	if err != nil {
		t.Fatal(err)
	}
	o := valle.DefaultOptions()
	o.MaxSeconds = 0.2
	s, err := m.Generate(ctx, text, [][]int32{{1, 2, 3}}, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Codes) > 5 {
		t.Errorf("%d frames in at most 0.2 s at 25 Hz", len(s.Codes))
	}
	// The baseline with its codec: text and a 16 kHz prompt in, speech out,
	// the codec found from the checkpoint's record.
	sp, err := valle.LoadSpeaker(testutil.Backend(t, ""), straight.Out, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	prompt := make([]float32, 8000)
	for i := range prompt {
		prompt[i] = float32(0.3 * math.Sin(float64(i)/10))
	}
	said, err := sp.Speak(ctx, "one", prompt, o, 1)
	if err != nil {
		t.Fatal(err)
	}
	frames, per := len(said.Codes), sp.Codec.Config.SamplesPerLatent()
	if want := max(frames, 1) * per; len(said.Samples) != want {
		t.Errorf("%d frames spoken as %d samples, want %d", frames, len(said.Samples), want)
	}
	if frames > 0 && said.NARPasses != 2 {
		t.Errorf("%d NAR passes for 3 codebooks, want 2", said.NARPasses)
	}
	if _, err := sp.Speak(ctx, "", prompt, o, 1); err == nil {
		t.Error("empty text spoken")
	}
	if _, err := sp.Speak(ctx, "one", nil, o, 1); err == nil {
		t.Error("an empty prompt accepted")
	}
	if _, err := valle.LoadSpeaker(testutil.Backend(t, ""), straight.Out, sigma); err == nil {
		t.Error("a σ-VAE accepted as the baseline's codec")
	}

	// Reading phonemes: the checkpoint keeps the reading, the model spells
	// its text as LatentLM's phoneme models do and speaks it, and a resume
	// cannot switch the reading of a run that recorded it.
	ph := opts(filepath.Join(root, "phonemes"), 1)
	ph.Reading = tts.ReadPhonemes
	if _, err := VALLE(ctx, ph); err != nil {
		t.Fatal(err)
	}
	pm, err := valle.LoadSpeaker(testutil.Backend(t, ""), ph.Out, "")
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	latent, err := tts.NewReadingFormat(tts.ReadPhonemes, 1, 25)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pm.Model.Format.Text.Encode("one")
	want, _ := latent.Encode("one")
	if err != nil || !slices.Equal(got, want) || pm.Model.Config.Reading != tts.ReadPhonemes || pm.Model.Info["reading"] != tts.ReadPhonemes {
		t.Errorf("the phoneme run spells %v (%v), want %v; config %q, info %v", got, err, want, pm.Model.Config.Reading, pm.Model.Info["reading"])
	}
	if _, err := pm.Speak(ctx, "one", prompt, o, 1); err != nil {
		t.Errorf("the phoneme baseline cannot speak: %v", err)
	}
	ph.Steps, ph.Resume, ph.Reading = 2, true, tts.ReadCharacters
	if _, err := VALLE(ctx, ph); err != nil {
		t.Fatal(err)
	}
	if info, err := checkpoint.RecordedInfo(ph.Out); err != nil || info["reading"] != tts.ReadPhonemes || info["steps"] != 2.0 {
		t.Errorf("resumed with --reading characters, the run records %v after %v steps (%v), want phonemes after 2", info["reading"], info["steps"], err)
	}

	bad := opts(filepath.Join(root, "sigma"), 2)
	bad.Codec = sigma
	if _, err := VALLE(ctx, bad); err == nil {
		t.Error("a σ-VAE accepted as the baseline's codec")
	}
	bad.Codec, bad.Align = codecDir, -1
	var oe *OptionError
	if _, err := VALLE(ctx, bad); !errors.As(err, &oe) || oe.Option != "align" {
		t.Errorf("alignment weight -1: %v", err)
	}
	bad.Align, bad.Reading = 1, "runes"
	if _, err := VALLE(ctx, bad); !errors.As(err, &oe) || oe.Option != "reading" {
		t.Errorf("reading runes: %v", err)
	}
	bad.Codec, bad.Reading = "", tts.ReadCharacters
	if _, err := VALLE(ctx, bad); !errors.As(err, &oe) || oe.Option != "codec" {
		t.Errorf("no codec: %v", err)
	}
}
