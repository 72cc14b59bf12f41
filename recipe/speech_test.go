package recipe

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/internal/testspeech"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/safetensors"
	"github.com/latentlm/latentlm/speech"
	"github.com/latentlm/latentlm/speechvae"
	"github.com/latentlm/latentlm/tts"
)

// tinyTokenizerOptions trains a tiny tokenizer (4 channels, one 16-wide
// block a side) on the speech cache at cache into out, quietly, for steps
// steps of 2 crops of 8 latent frames, saving only at the end.
func tinyTokenizerOptions(cache, out string, steps int64) SpeechTokenizerOptions {
	o := DefaultSpeechTokenizerOptions()
	o.Data, o.Out, o.Quiet, o.Steps, o.SaveEvery, o.Batch, o.Crop = cache, out, true, steps, 0, 2, 8
	o.Model.Channels, o.Model.Dim, o.Model.Depth, o.Model.Heads = 4, 16, 1, 2
	return o
}

// TestSpeechTokenizerRVQResume: a tiny residual-VQ tokenizer run stopped
// at step 2 and resumed to 4 ends with the weights, codebooks included, of
// a run straight to 4 (the codebooks' moving averages are training state,
// kept across the resume), and the checkpoint loads as a rvq codec.
func TestSpeechTokenizerRVQResume(t *testing.T) {
	cache, _ := tinySpeechData(t)
	root := t.TempDir()
	opts := func(out string, steps int64) SpeechTokenizerOptions {
		o := tinyTokenizerOptions(cache, out, steps)
		o.Model = o.Model.RVQ(3, 8)
		return o
	}
	ctx := context.Background()
	straight := opts(filepath.Join(root, "straight"), 4)
	resumeIsExact(t, "a rvq run", root, func(out string, steps int64, resume bool) error {
		o := opts(out, steps)
		o.Resume = resume
		_, err := SpeechTokenizer(ctx, o)
		return err
	})
	m, err := speechvae.Load(testutil.Backend(t, ""), straight.Out)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	codes, err := m.Codes(make([]float32, 3000))
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != 5 || len(codes[0]) != 3 {
		t.Errorf("3000 samples gave %d frames of %d codes, want 5 of 3", len(codes), len(codes[0]))
	}
}

// An adversarial run resumes exactly, the discriminator and its moments
// included, and records a value for each of its metrics, with kind rvq
// too; and --resume keeps the saved run's config: an adversarial weight
// given to a run saved without one is not added halfway.
func TestSpeechTokenizerAdversarial(t *testing.T) {
	cache, _ := tinySpeechData(t)
	opts := func(out string, steps int64) SpeechTokenizerOptions {
		o := tinyTokenizerOptions(cache, out, steps)
		o.Model.AdvWeight = 0.5
		return o
	}
	ctx := context.Background()
	resumeIsExact(t, "an adversarial run", t.TempDir(), func(out string, steps int64, resume bool) error {
		o := opts(out, steps)
		o.Resume = resume
		_, err := SpeechTokenizer(ctx, o)
		return err
	})

	// 20 steps: one point of history, where a metric the graph does not
	// give would read 0.
	rvq := opts(filepath.Join(t.TempDir(), "rvq"), 20)
	rvq.Model = rvq.Model.RVQ(2, 8)
	res, err := SpeechTokenizer(ctx, rvq)
	if err != nil {
		t.Fatal(err)
	}
	names := append([]string{"sc", "logmag", "mel", "reg"}, rvq.Model.TrainingMetrics()...)
	if len(res.History) != 1 || len(res.History[0].Metrics) != len(names) {
		t.Fatalf("rvq with the adversarial term, 20 steps: history %+v, want one point with %v", res.History, names)
	}
	for i, name := range names {
		if v := res.History[0].Metrics[i]; name != "restarts" && !(v > 0) {
			t.Errorf("rvq with the adversarial term: metric %s is %g, want > 0", name, v)
		}
	}

	plain := opts(filepath.Join(t.TempDir(), "plain"), 2)
	plain.Model.AdvWeight = 0
	if _, err := SpeechTokenizer(ctx, plain); err != nil {
		t.Fatal(err)
	}
	again := opts(plain.Out, 3)
	again.Resume = true
	if _, err := SpeechTokenizer(ctx, again); err != nil {
		t.Fatal(err)
	}
	var cfg speechvae.Config
	if _, err := checkpoint.ReadHeader(plain.Out, speechvae.Kind, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.AdvWeight != 0 {
		t.Errorf("a run saved without the adversarial term, resumed with adv_weight 0.5, saved adv_weight %g", cfg.AdvWeight)
	}
}

// A run cut short by its deadline (--time) records the steps it took, not
// the most it was allowed, and keeps that last step as a snapshot: a
// deadline already past leaves one step.
func TestSpeechTokenizerDeadlineRecordsItsSteps(t *testing.T) {
	cache, _ := tinySpeechData(t)
	o := tinyTokenizerOptions(cache, filepath.Join(t.TempDir(), "cut"), 50)
	o.Deadline, o.SnapshotEvery = time.Now(), 20
	if _, err := SpeechTokenizer(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(o.Out, checkpoint.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var h checkpoint.Header
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	if steps, _ := h.Info["steps"].(float64); steps != 1 {
		t.Errorf("config.json records %v steps, want the 1 taken", h.Info["steps"])
	}
	if names := testutil.DirNames(t, o.Out); !slices.Contains(names, "step-000001") {
		t.Errorf("%s holds %v, want the snapshot of the last step, step-000001", o.Out, names)
	}
}

// The batch spread over the CPUs is the batch computed one crop after
// another: each crop's STFT inputs in its own place, in order.
func TestSpeechBatchIsTheSerialBatch(t *testing.T) {
	cfg := speechvae.DefaultConfig()
	const frames = 4
	crops := noiseCrops(cfg, 9, frames)
	x, wave, err := speechBatch(cfg, crops, frames)
	if err != nil {
		t.Fatal(err)
	}
	var wantX, wantWave []float32
	for _, c := range crops {
		in, err := cfg.Inputs(c)
		if err != nil {
			t.Fatal(err)
		}
		wantX = append(wantX, in...)
		wantWave = append(wantWave, c...)
	}
	if !slices.Equal(x, wantX) || !slices.Equal(wave, wantWave) {
		t.Fatal("the parallel batch differs from the serial one")
	}
	crops[5] = crops[5][:len(crops[5])-1]
	if _, _, err := speechBatch(cfg, crops, frames); err == nil {
		t.Fatal("a crop of a wrong length gave no error")
	}
}

// BenchmarkSpeechBatch times one training batch of the shipped speech
// tokenizer's inputs at batch 64 (1.28 s crops); -cpu 1,2,… shows how it
// spreads over the CPUs.
func BenchmarkSpeechBatch(b *testing.B) {
	cfg := speechvae.DefaultConfig()
	const frames = 32
	crops := noiseCrops(cfg, 64, frames)
	for b.Loop() {
		if _, _, err := speechBatch(cfg, crops, frames); err != nil {
			b.Fatal(err)
		}
	}
}

// noiseCrops are n crops of Gaussian noise (σ 0.1), each frames latent
// frames of cfg long.
func noiseCrops(cfg speechvae.Config, n, frames int) [][]float32 {
	r := rand.New(rand.NewPCG(1, 2))
	crops := make([][]float32, n)
	for i := range crops {
		crops[i] = make([]float32, frames*cfg.SamplesPerLatent())
		for j := range crops[i] {
			crops[i][j] = float32(r.NormFloat64() * 0.1)
		}
	}
	return crops
}

// TestSpeechTokenizerDecoderOnly: a decoder-only run from a tokenizer
// keeps its encoder weights and latent statistics byte for byte, changes
// its decoder, records the lineage of its latents, resumes exactly and
// stays decoder-only when resumed; a text-to-speech model trained on the
// first tokenizer's latents loads with it, and not with a tokenizer whose
// encoder was trained further. Bad requests are refused.
func TestSpeechTokenizerDecoderOnly(t *testing.T) {
	cache, tokenizer := tinySpeechData(t)
	ctx := context.Background()
	root := t.TempDir()
	opts := func(out string, steps int64) SpeechTokenizerOptions {
		o := tinyTokenizerOptions(cache, out, steps)
		o.Init, o.DecoderOnly = tokenizer, true
		return o
	}
	resumeIsExact(t, "a decoder-only run", root, func(out string, steps int64, resume bool) error {
		o := opts(out, steps)
		o.Resume = resume
		_, err := SpeechTokenizer(ctx, o)
		return err
	})
	sum, err := checkpoint.FileSHA256(filepath.Join(tokenizer, checkpoint.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	before := readTensors(t, tokenizer)
	for _, dir := range []string{filepath.Join(root, "straight"), filepath.Join(root, "resumed")} {
		after := readTensors(t, dir)
		changed := 0
		for name, b := range before {
			a, ok := after[name]
			switch {
			case !ok:
				t.Errorf("%s: %s is missing", dir, name)
			case speechvae.IsEncoderWeight(name) || strings.HasPrefix(name, "latent_stats."):
				if !bytes.Equal(a, b) {
					t.Errorf("%s: the decoder-only run changed %s", dir, name)
				}
			case !bytes.Equal(a, b):
				changed++
			}
		}
		if changed == 0 {
			t.Errorf("%s: the decoder-only run changed no decoder weight", dir)
		}
		lineage, err := checkpoint.LatentLineage(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(lineage) != 2 || lineage[1] != sum {
			t.Errorf("%s: latent lineage %v, want its own checksum and %s", dir, lineage, sum)
		}
	}

	// A text-to-speech model of the first tokenizer's latents reads the
	// decoder-only one, and refuses one whose encoder moved.
	tt := tinyTTSOptions(cache, tokenizer, filepath.Join(root, "tts"), 2)
	if _, err := TTS(ctx, tt); err != nil {
		t.Fatal(err)
	}
	load := func(speechDir string) error {
		m, err := tts.Load(testutil.Backend(t, ""), tt.Out, speechDir, tts.DefaultOptions())
		if err == nil {
			m.Close()
		}
		return err
	}
	if err := load(filepath.Join(root, "straight")); err != nil {
		t.Errorf("a text-to-speech model refused the decoder-only tokenizer of its latents: %v", err)
	}
	whole := tinyTokenizerOptions(cache, filepath.Join(root, "whole"), 2)
	whole.Init = tokenizer
	if _, err := SpeechTokenizer(ctx, whole); err != nil {
		t.Fatal(err)
	}
	if err := load(whole.Out); err == nil || !strings.Contains(err.Error(), "share its latents") {
		t.Errorf("a tokenizer whose encoder was trained further: %v, want a refusal", err)
	}
	// The decoder-only tokenizer's own descendant keeps the lineage.
	grand := opts(filepath.Join(root, "grand"), 1)
	grand.Init = filepath.Join(root, "straight")
	if _, err := SpeechTokenizer(ctx, grand); err != nil {
		t.Fatal(err)
	}
	if err := load(grand.Out); err != nil {
		t.Errorf("a decoder-only tokenizer of a decoder-only one: %v", err)
	}
	// A resume keeps recording where the run started, given no --init or
	// the same one (a resume hint repeats the starting command); another
	// is refused.
	for _, init := range []string{"", grand.Init} {
		more := tinyTokenizerOptions(cache, grand.Out, 2)
		more.Resume, more.Init = true, init
		if _, err := SpeechTokenizer(ctx, more); err != nil {
			t.Fatalf("resuming with --init %q: %v", init, err)
		}
		if got, err := checkpoint.RecordedInit(grand.Out); err != nil || got != grand.Init {
			t.Errorf("resumed with --init %q, the run records init %q (%v), want %q", init, got, err, grand.Init)
		}
	}
	other := opts(grand.Out, 3)
	other.Resume = true
	if _, err := SpeechTokenizer(ctx, other); err == nil || !strings.Contains(err.Error(), "started from "+grand.Init) {
		t.Errorf("resuming with another --init: %v, want a refusal naming the run's own", err)
	}

	bad := tinyTokenizerOptions(cache, filepath.Join(root, "bad"), 1)
	bad.DecoderOnly = true
	if _, err := SpeechTokenizer(ctx, bad); err == nil || !strings.Contains(err.Error(), "needs --init") {
		t.Errorf("--decoder-only without --init: %v", err)
	}
	again := tinyTokenizerOptions(cache, whole.Out, 3)
	again.Resume, again.DecoderOnly = true, true
	if _, err := SpeechTokenizer(ctx, again); err == nil || !strings.Contains(err.Error(), "trains its encoder too") {
		t.Errorf("--decoder-only resuming a run that trains its encoder: %v", err)
	}
	rvqDir := filepath.Join(root, "rvq")
	testspeech.Save(t, 2, rvqDir)
	fromRVQ := opts(filepath.Join(root, "from-rvq"), 1)
	fromRVQ.Init, fromRVQ.DecoderOnly = rvqDir, false
	if _, err := SpeechTokenizer(ctx, fromRVQ); err == nil || !strings.Contains(err.Error(), "residual-VQ") {
		t.Errorf("--init from a residual-VQ codec: %v", err)
	}
}

// readTensors is every tensor of dir's weights file, as raw bytes.
func readTensors(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	f, err := safetensors.Load(filepath.Join(dir, checkpoint.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, x := range f.Tensors {
		out[x.Name] = x.Data
	}
	return out
}

// checkSnapshots checks the snapshots of a 5-step run in out taken every 2
// steps against the same run without them in plain: folders at steps 2, 4
// and 5, the last the run's own weights, the first others (tensors named
// with the prefix same, which do not change in training, excepted), and
// the run itself as it is without them.
func checkSnapshots(t *testing.T, out, plain, same string) {
	t.Helper()
	withSnapshots, without := readTensors(t, out), readTensors(t, plain)
	for name, b := range without {
		if !bytes.Equal(withSnapshots[name], b) {
			t.Errorf("taking snapshots changed the run's %s", name)
		}
	}
	entries, err := filepath.Glob(filepath.Join(out, "step-*"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, filepath.Base(e))
	}
	if want := []string{"step-000002", "step-000004", "step-000005"}; !slices.Equal(names, want) {
		t.Fatalf("snapshots %v, want %v", names, want)
	}
	last, first := readTensors(t, filepath.Join(out, "step-000005")), readTensors(t, filepath.Join(out, "step-000002"))
	differs := false
	for name, b := range withSnapshots {
		if !bytes.Equal(last[name], b) {
			t.Errorf("the last snapshot's %s differs from the run's", name)
		}
		if same != "" && strings.HasPrefix(name, same) {
			continue
		}
		differs = differs || !bytes.Equal(first[name], b)
	}
	if !differs {
		t.Error("the step-2 snapshot holds the weights of step 5")
	}
}

// A run with SnapshotEvery keeps a tokenizer at each multiple and at the
// last step; the last is the run's own, latent statistics included, and
// the first is another. Taking them (their statistics draw the σ-VAE's
// noise) leaves the run as it is without them.
func TestSpeechTokenizerSnapshots(t *testing.T) {
	cache, _ := tinySpeechData(t)
	o := tinyTokenizerOptions(cache, filepath.Join(t.TempDir(), "run"), 5)
	o.SnapshotEvery = 2
	plain := tinyTokenizerOptions(cache, filepath.Join(t.TempDir(), "plain"), 5)
	for _, run := range []SpeechTokenizerOptions{o, plain} {
		if _, err := SpeechTokenizer(context.Background(), run); err != nil {
			t.Fatal(err)
		}
	}
	checkSnapshots(t, o.Out, plain.Out, "latent_stats.")
	m, err := speechvae.Load(testutil.Backend(t, ""), filepath.Join(o.Out, "step-000002"))
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
}

// zeroCrossingHz estimates the frequency of a sine by its sign changes.
func zeroCrossingHz(x []float32) float64 {
	n := 0
	for i := 1; i < len(x); i++ {
		if (x[i-1] < 0) != (x[i] < 0) {
			n++
		}
	}
	return float64(n) / 2 / (float64(len(x)) / speech.Rate)
}

// A speed-perturbed crop of a 500 Hz tone is that tone played at one of
// the four rates: 500·16000/r Hz for r in speedPerturbRates, each of them
// drawn; without perturbation every crop stays at 500 Hz; and the crops
// of a step depend on (seed, step) alone, so a resumed run sees the same.
func TestSpeedPerturbedCrops(t *testing.T) {
	tone := make([]float32, 3*speech.Rate)
	for i := range tone {
		tone[i] = float32(0.5 * math.Sin(2*math.Pi*500*(float64(i)+0.25)/speech.Rate))
	}
	clips := [][]float32{tone}
	const size = 12800 // 0.8 s
	seen := map[int]bool{}
	for step := range int64(40) {
		crops, err := cropDraw{clips: clips, perturb: 1, seed: 9}.crops(4, size, step)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := cropDraw{clips: clips, perturb: 1, seed: 9}.crops(4, size, step)
		for i, c := range crops {
			if !slices.Equal(c, again[i]) {
				t.Fatalf("step %d crop %d differs between two draws", step, i)
			}
			hz := zeroCrossingHz(c)
			found := false
			for _, r := range speedPerturbRates {
				if math.Abs(hz-500*speech.Rate/float64(r)) < 3 {
					seen[r], found = true, true
				}
			}
			if !found {
				t.Fatalf("step %d crop %d: %.1f Hz, want 500·16000/r for r in %v", step, i, hz, speedPerturbRates)
			}
		}
		plain, err := cropDraw{clips: clips, seed: 9}.crops(4, size, step)
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range plain {
			if hz := zeroCrossingHz(c); math.Abs(hz-500) > 3 {
				t.Fatalf("unperturbed step %d crop %d: %.1f Hz, want 500", step, i, hz)
			}
		}
	}
	if len(seen) != len(speedPerturbRates) {
		t.Errorf("160 perturbed crops drew the rates %v, want all of %v", seen, speedPerturbRates)
	}
}

// A run records its speed perturbation and its timbres, and a resume
// keeps them whatever the command says; a probability outside 0…1, or a
// timbre share of 1, is refused.
func TestSpeechTokenizerKeepsItsDraw(t *testing.T) {
	cache, _ := tinySpeechData(t)
	timbres, _ := tinySpeechData(t)
	out := filepath.Join(t.TempDir(), "run")
	o := tinyTokenizerOptions(cache, out, 2)
	o.SpeedPerturb = 0.5
	o.Timbres, o.TimbreShare = timbres, 0.3
	if _, err := SpeechTokenizer(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	o = tinyTokenizerOptions(cache, out, 3)
	o.Resume = true
	if _, err := SpeechTokenizer(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	info, err := checkpoint.RecordedInfo(out)
	if err != nil {
		t.Fatal(err)
	}
	if info["speed_perturb"] != 0.5 || info["steps"] != 3.0 {
		t.Errorf("resumed run records speed_perturb %v after %v steps, want 0.5 after 3", info["speed_perturb"], info["steps"])
	}
	if info["timbres"] != timbres || info["timbre_share"] != 0.3 {
		t.Errorf("resumed run records timbres %v at share %v, want %s at 0.3", info["timbres"], info["timbre_share"], timbres)
	}
	plain := filepath.Join(t.TempDir(), "plain")
	if _, err := SpeechTokenizer(context.Background(), tinyTokenizerOptions(cache, plain, 1)); err != nil {
		t.Fatal(err)
	}
	o = tinyTokenizerOptions(cache, plain, 2)
	o.Resume, o.Timbres, o.TimbreShare = true, timbres, 0.3
	if _, err := SpeechTokenizer(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if info, err = checkpoint.RecordedInfo(plain); err != nil {
		t.Fatal(err)
	}
	if info["timbres"] != "" || info["timbre_share"] != 0.0 || info["steps"] != 2.0 {
		t.Errorf("a run without timbres, resumed with them, records timbres %q at share %v after %v steps, want none after 2", info["timbres"], info["timbre_share"], info["steps"])
	}
	bad := tinyTokenizerOptions(cache, filepath.Join(t.TempDir(), "bad"), 1)
	bad.SpeedPerturb = 1.5
	if _, err := SpeechTokenizer(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "1.5") {
		t.Errorf("probability 1.5: error %v, want one naming it", err)
	}
	bad = tinyTokenizerOptions(cache, filepath.Join(t.TempDir(), "bad"), 1)
	bad.Timbres, bad.TimbreShare = timbres, 1
	if _, err := SpeechTokenizer(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "timbre share 1") {
		t.Errorf("timbre share 1: error %v, want one naming it", err)
	}
	bad = tinyTokenizerOptions(cache, filepath.Join(t.TempDir(), "bad"), 1)
	bad.Timbres, bad.TimbreShare = filepath.Join(t.TempDir(), "none"), 0.3
	if _, err := SpeechTokenizer(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "speech data --timbres") {
		t.Errorf("missing timbres: error %v, want one saying how to build them", err)
	}
}

// The timbres make up their share of the clips, drawn from (seed, step)
// alone, and a draw without them, or at share 0, is the plain draw.
func TestTimbreCrops(t *testing.T) {
	constant := func(v float32) []float32 {
		c := make([]float32, 800)
		for i := range c {
			c[i] = v
		}
		return c
	}
	data := [][]float32{constant(0.1), constant(0.2)}
	timbres := [][]float32{constant(0.7), constant(0.8), constant(0.9)}
	const size = 400
	mixed := cropDraw{clips: data, timbres: timbres, share: 0.3, seed: 3}
	fromTimbres, total := 0, 0
	for step := range int64(200) {
		crops, err := mixed.crops(8, size, step)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := mixed.crops(8, size, step)
		plain, _ := cropDraw{clips: data, seed: 3}.crops(8, size, step)
		atZero, _ := cropDraw{clips: data, timbres: timbres, seed: 3}.crops(8, size, step)
		for i, c := range crops {
			if !slices.Equal(c, again[i]) {
				t.Fatalf("step %d crop %d differs between two draws", step, i)
			}
			if !slices.Equal(plain[i], atZero[i]) {
				t.Fatalf("step %d crop %d: share 0 draws %v, the plain draw %v", step, i, atZero[i][0], plain[i][0])
			}
			if plain[i][0] > 0.5 {
				t.Fatalf("step %d crop %d: a draw without timbres gave a timbre's clip", step, i)
			}
			total++
			if c[0] > 0.5 {
				fromTimbres++
			}
		}
	}
	// 1600 draws at p = 0.3: the standard deviation of the share is 0.011.
	if got := float64(fromTimbres) / float64(total); math.Abs(got-0.3) > 0.05 {
		t.Errorf("%d of %d crops from the timbres (%.3f), want about 0.3", fromTimbres, total, got)
	}
}

// TestSpeechTokenizerGrowDecoder: a decoder-only run with --decoder-depth
// 3 from a tokenizer of one decoder block saves a tokenizer of three,
// whose encoder and latent statistics are the start's byte for byte and
// whose new blocks trained away from the zero outputs they started with;
// a text-to-speech model of the start's latents reads it, and a run that
// would take blocks away is refused.
func TestSpeechTokenizerGrowDecoder(t *testing.T) {
	cache, tokenizer := tinySpeechData(t)
	ctx := context.Background()
	root := t.TempDir()
	o := tinyTokenizerOptions(cache, filepath.Join(root, "grown"), 3)
	o.Init, o.DecoderOnly, o.Model.DecoderDepth = tokenizer, true, 3
	if _, err := SpeechTokenizer(ctx, o); err != nil {
		t.Fatal(err)
	}
	m, err := speechvae.Load(testutil.Backend(t, ""), o.Out)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Config.DecoderBlocks(); got != 3 || m.Config.Depth != 1 {
		t.Errorf("saved config: %d decoder blocks and depth %d, want 3 and 1", got, m.Config.Depth)
	}
	m.Close()
	before, after := readTensors(t, tokenizer), readTensors(t, o.Out)
	for name, b := range before {
		if (speechvae.IsEncoderWeight(name) || strings.HasPrefix(name, "latent_stats.")) && !bytes.Equal(after[name], b) {
			t.Errorf("the grown run changed %s", name)
		}
	}
	for _, name := range m.Config.GrownDecoderOutputs(1) {
		a, ok := after[name]
		if !ok {
			t.Fatalf("%s is missing from the grown tokenizer", name)
		}
		if !slices.ContainsFunc(a, func(x byte) bool { return x != 0 }) {
			t.Errorf("%s is still zero after training", name)
		}
	}
	tt := tinyTTSOptions(cache, tokenizer, filepath.Join(root, "tts"), 1)
	if _, err := TTS(ctx, tt); err != nil {
		t.Fatal(err)
	}
	if tm, err := tts.Load(testutil.Backend(t, ""), tt.Out, o.Out, tts.DefaultOptions()); err != nil {
		t.Errorf("a text-to-speech model refused the grown tokenizer of its latents: %v", err)
	} else {
		tm.Close()
	}
	shrink := tinyTokenizerOptions(cache, filepath.Join(root, "shrunk"), 1)
	shrink.Init, shrink.DecoderOnly, shrink.Model.DecoderDepth = o.Out, true, 2
	if _, err := SpeechTokenizer(ctx, shrink); err == nil || !strings.Contains(err.Error(), "has 3 blocks already") {
		t.Errorf("a run from a 3-block decoder to 2: %v, want a refusal", err)
	}
	if _, err := os.Stat(shrink.Out); !os.IsNotExist(err) {
		t.Errorf("the refused run left %s behind (%v)", shrink.Out, err)
	}
}
