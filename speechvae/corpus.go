package speechvae

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/latentlm/latentlm/safetensors"
	"github.com/latentlm/latentlm/speech"
)

// Corpus is utterances of a speech data cache encoded once by a speech
// tokenizer: what a language model trains on (the text-to-speech recipe
// reads the frames, never the audio). Saved, it is one safetensors file
// of about a fifteenth of the WAVs' bytes (25 Hz × 32 halves against
// 16 kHz × one 16-bit sample), so that a run can start without the
// audio, or the 110 s of encoding, or the tokenizer's weights: what it
// needs of the tokenizer, its config and statistics, travels in the file.
type Corpus struct {
	Tokenizer CorpusTokenizer
	// Data and Split name the cache folder and split the audio came from.
	Data, Split string
	Utterances  []speech.Utterance
	// Frames[i] are utterance i's normalised latent means (z − mean)/std,
	// Latents(samples) rows of Config.Channels values.
	Frames [][][]float32
}

// CorpusTokenizer is the tokenizer that encoded a corpus: where it was,
// the SHA-256 of its weights file (what a model trained on the corpus
// records, so that it decodes with the same tokenizer), its config and
// the per-channel statistics of the normalisation.
type CorpusTokenizer struct {
	Path      string
	SHA256    string
	Config    Config
	Mean, Std []float32
}

// Corpus file layout: the frames of all utterances one after another,
// halves (F16) [frames, channels]; the start of each utterance's rows,
// I64 [utterances + 1]; the tokenizer's statistics, F32 [channels]; and in
// the metadata the tokenizer's path, hash and config and the utterances
// as JSON.
const (
	corpusFrames  = "frames"
	corpusOffsets = "offsets"
	corpusMean    = "mean"
	corpusStd     = "std"
	corpusKind    = "speech-latent-corpus"
)

// EncodeCorpus encodes each clip (16 kHz samples of utts[i]) to its
// latent means with m, whose checkpoint is at tokPath with weights hash
// tokSHA. It reports progress to log every ten seconds and stops, with
// the context's error, when ctx is done.
func EncodeCorpus(ctx context.Context, m *Model, tokPath, tokSHA, data, split string, utts []speech.Utterance, clips [][]float32, log io.Writer) (*Corpus, error) {
	if len(utts) != len(clips) {
		return nil, fmt.Errorf("speech-vae: %d utterances but %d clips", len(utts), len(clips))
	}
	c := &Corpus{
		Tokenizer: CorpusTokenizer{Path: tokPath, SHA256: tokSHA, Config: m.Config, Mean: slices.Clone(m.Mean), Std: slices.Clone(m.Std)},
		Data:      data, Split: split, Utterances: slices.Clone(utts), Frames: make([][][]float32, len(utts)),
	}
	last := time.Now()
	for i, u := range utts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		z, err := m.Encode(clips[i], false)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", u.File, err)
		}
		c.Frames[i] = z
		if log != nil && time.Since(last) > 10*time.Second {
			last = time.Now()
			fmt.Fprintf(log, "encoded %d of %d utterances\n", i+1, len(utts))
		}
	}
	return c, nil
}

// Save writes the corpus to path atomically, its frames as halves: the
// rounding (relative error ≤ 2⁻¹¹) is far below the noise the σ-VAE
// recipe adds to every frame (C_σ/std per channel, 0.3 and more for the
// shipped tokenizer).
func (c *Corpus) Save(path string) error {
	ch := c.Tokenizer.Config.Channels
	if len(c.Frames) != len(c.Utterances) || len(c.Tokenizer.Mean) != ch || len(c.Tokenizer.Std) != ch {
		return fmt.Errorf("writing %s: %d utterances, %d frame lists, statistics of %d and %d channels for a %d-channel tokenizer",
			path, len(c.Utterances), len(c.Frames), len(c.Tokenizer.Mean), len(c.Tokenizer.Std), ch)
	}
	offsets := make([]int64, 1, len(c.Frames)+1)
	var flat []float32
	for i, z := range c.Frames {
		for j, row := range z {
			if len(row) != ch {
				return fmt.Errorf("writing %s: %s frame %d has %d values, want %d", path, c.Utterances[i].File, j, len(row), ch)
			}
			flat = append(flat, row...)
		}
		offsets = append(offsets, int64(len(flat)/ch))
	}
	frames, err := safetensors.FromFloat32AsF16(corpusFrames, []int{len(flat) / ch, ch}, flat)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	cfg, err := json.Marshal(c.Tokenizer.Config)
	if err != nil {
		return err
	}
	utts, err := json.Marshal(c.Utterances)
	if err != nil {
		return err
	}
	return safetensors.Save(path, []safetensors.Tensor{frames,
		safetensors.FromInt64(corpusOffsets, []int{len(offsets)}, offsets),
		safetensors.FromFloat32(corpusMean, []int{ch}, c.Tokenizer.Mean),
		safetensors.FromFloat32(corpusStd, []int{ch}, c.Tokenizer.Std),
	}, map[string]string{
		"kind": corpusKind, "tokenizer_path": c.Tokenizer.Path, "tokenizer_sha256": c.Tokenizer.SHA256,
		"tokenizer_config": string(cfg), "data": c.Data, "split": c.Split, "utterances": string(utts),
	})
}

// LoadCorpus reads a corpus file (Save). It is strict: a wrong kind,
// config, shape, offset, utterance list or a non-finite frame is an error
// naming the file and the problem.
func LoadCorpus(path string) (*Corpus, error) {
	f, err := safetensors.Load(path)
	if err != nil {
		return nil, err
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: not a usable speech latent corpus: %s", path, fmt.Sprintf(format, args...))
	}
	md := f.Metadata
	if md["kind"] != corpusKind {
		return nil, bad("its metadata kind is %q, want %q (write one with `latentlm speech-vae encode-data`)", md["kind"], corpusKind)
	}
	c := &Corpus{Data: md["data"], Split: md["split"]}
	c.Tokenizer.Path, c.Tokenizer.SHA256 = md["tokenizer_path"], md["tokenizer_sha256"]
	if err := json.Unmarshal([]byte(md["tokenizer_config"]), &c.Tokenizer.Config); err != nil {
		return nil, bad("tokenizer config: %v", err)
	}
	cfg := c.Tokenizer.Config
	if err := cfg.Validate(); err != nil {
		return nil, bad("tokenizer config: %v", err)
	}
	if err := json.Unmarshal([]byte(md["utterances"]), &c.Utterances); err != nil {
		return nil, bad("utterance list: %v", err)
	}
	ch := cfg.Channels
	get := func(name string, dt safetensors.DType, rank int) (safetensors.Tensor, error) {
		t, ok := f.Get(name)
		if !ok {
			return t, bad("no tensor %q", name)
		}
		if t.DType != dt || len(t.Shape) != rank {
			return t, bad("tensor %q is %s %v, want %s of rank %d", name, t.DType, t.Shape, dt, rank)
		}
		return t, nil
	}
	var tf, to, tm, ts safetensors.Tensor
	if tf, err = get(corpusFrames, safetensors.F16, 2); err != nil {
		return nil, err
	}
	if to, err = get(corpusOffsets, safetensors.I64, 1); err != nil {
		return nil, err
	}
	if tm, err = get(corpusMean, safetensors.F32, 1); err != nil {
		return nil, err
	}
	if ts, err = get(corpusStd, safetensors.F32, 1); err != nil {
		return nil, err
	}
	if tf.Shape[1] != ch || tm.Shape[0] != ch || ts.Shape[0] != ch {
		return nil, bad("frames %v and statistics %v, %v do not have the tokenizer's %d channels", tf.Shape, tm.Shape, ts.Shape, ch)
	}
	if to.Shape[0] != len(c.Utterances)+1 {
		return nil, bad("%d offsets for %d utterances, want %d", to.Shape[0], len(c.Utterances), len(c.Utterances)+1)
	}
	if c.Tokenizer.Mean, err = tm.Float32(); err != nil {
		return nil, bad("%v", err)
	}
	if c.Tokenizer.Std, err = ts.Float32(); err != nil {
		return nil, bad("%v", err)
	}
	for k, s := range c.Tokenizer.Std {
		if !(s > 0) || math.IsInf(float64(s), 0) {
			return nil, bad("channel %d has standard deviation %v", k, s)
		}
	}
	offsets, err := to.Int64()
	if err != nil {
		return nil, bad("%v", err)
	}
	flat, err := tf.Float16()
	if err != nil {
		return nil, bad("%v", err)
	}
	if i := firstNonFinite(flat); i >= 0 {
		return nil, bad("frame %d holds %v at channel %d", i/ch, flat[i], i%ch)
	}
	rows := latentRows(flat, ch)
	n := int64(len(rows))
	if offsets[0] != 0 || offsets[len(offsets)-1] != n {
		return nil, bad("offsets run from %d to %d, want 0 to the %d frames", offsets[0], offsets[len(offsets)-1], n)
	}
	c.Frames = make([][][]float32, len(c.Utterances))
	for i, u := range c.Utterances {
		lo, hi := offsets[i], offsets[i+1]
		if hi <= lo || hi > n {
			return nil, bad("utterance %d (%s) has offsets %d…%d: no frames, or frames past the %d there are", i, u.File, lo, hi, n)
		}
		c.Frames[i] = rows[lo:hi:hi]
	}
	return c, nil
}
