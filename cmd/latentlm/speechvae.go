package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/latentlm/latentlm/evaluate"
	"github.com/latentlm/latentlm/internal/guard"
	"github.com/latentlm/latentlm/recipe"
	"github.com/latentlm/latentlm/speaker"
	"github.com/latentlm/latentlm/speech"
	"github.com/latentlm/latentlm/speechvae"
	"github.com/latentlm/latentlm/vae"
	"github.com/latentlm/latentlm/wav"
)

func init() {
	register("speech-vae", "train, evaluate and use the speech tokenizer (WAV ↔ 25 Hz latent frames)", runSpeechVAE)
}

func runSpeechVAE(args []string) error {
	return dispatch("speech-vae", "usage: latentlm speech-vae train|eval|encode|encode-data|decode|reconstruct [flags]\n\n"+
		"  train   train the speech σ-VAE (or VAE, AE, residual-VQ codec) on the training split of .deps/speech\n"+
		"  eval    distances, judges' scores, collapsed channels, noise robustness and codebook use on the test split\n"+
		"  encode  WAV files → latent frames (.safetensors)\n"+
		"  encode-data  a split of the speech data → one corpus file that `train --task tts --data FILE` reads instead of audio\n"+
		"  decode  latent frames → WAV files\n"+
		"  reconstruct  one WAV through the tokenizer and back, with spectrograms of both",
		map[string]func([]string) error{"train": speechVAETrain, "eval": speechVAEEval, "encode": speechVAEEncode, "encode-data": speechVAEEncodeData, "decode": speechVAEDecode, "reconstruct": speechVAEReconstruct}, args)
}

func speechVAETrain(args []string) error {
	o := recipe.DefaultSpeechTokenizerOptions()
	fs := newFlags("speech-vae train", "speech-vae train [--kind sigma|vae|ae|rvq] [--codebooks 8 --codebook-size 1024] [--domain spectrum|wave] [--frames-per-latent 5] [--init DIR [--decoder-only] [--decoder-depth N]] [--out DIR] [flags]")
	fs.StringVar(&o.Backend, "backend", o.Backend, "compute backend: onnx, go or xla")
	fs.StringVar(&o.Data, "data", "", "speech data cache (default .deps/speech, built by: latentlm speech data)")
	fs.StringVar(&o.Out, "out", "", "checkpoint folder (default runs/speech-vae-<kind>-<domain>)")
	fs.Int64Var(&o.Steps, "steps", o.Steps, "training steps")
	addTimeFlag(fs, &o.Deadline)
	fs.IntVar(&o.Batch, "batch", o.Batch, "clips per step")
	fs.IntVar(&o.Crop, "crop", o.Crop, "clip length in latent frames (32 is 1.28 s at 25 Hz)")
	fs.Float64Var(&o.LR, "lr", o.LR, "peak learning rate")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "seed of initialisation, clips and noise")
	fs.BoolVar(&o.Resume, "resume", o.Resume, "continue the run saved in --out on its own data and options, at its own learning rates")
	fs.StringVar(&o.Init, "init", "", "start from this tokenizer's config and weights (a fresh optimiser and schedule)")
	fs.BoolVar(&o.DecoderOnly, "decoder-only", false, "with --init: train the decoder alone, keeping the encoder, statistics and latents, so that models trained on them read the new tokenizer")
	fs.Int64Var(&o.SaveEvery, "save-every", o.SaveEvery, "checkpoint period in steps")
	fs.Int64Var(&o.SnapshotEvery, "snapshot-every", 0, "also keep the tokenizer every N steps, and at the last, in --out/step-NNNNNN, to compare them with speech-vae eval --split valid")
	fs.Float64Var(&o.SpeedPerturb, "speed-perturb", 0, "probability that a training clip is played 7/8, 15/16, 17/16 or 9/8 as fast, moving its pitch and formants as another speaker's (0: none)")
	fs.bound("speed-perturb", 0, 1, false)
	fs.StringVar(&o.Timbres, "timbres", "", "also train on this cache of other languages' voices (built by: latentlm speech data --timbres, into .deps/speech-timbres), so that the decoder learns voices it has not heard")
	fs.Float64Var(&o.TimbreShare, "timbre-share", recipe.DefaultTimbreShare, "with --timbres: the share of training clips drawn from the timbres")
	fs.bound("timbre-share", 0, 1, false)
	fs.BoolVar(&o.Quiet, "quiet", o.Quiet, "no progress bar")
	fs.Var(speechKind{&o.Model.Kind}, "kind", "tokenizer kind: sigma, vae, ae or rvq (residual VQ, the discrete baseline's codec)")
	codebooks := fs.Int("codebooks", speechvae.DefaultCodebooks, "rvq: codebooks, each quantising the residual of the ones before")
	codebookSize := fs.Int("codebook-size", speechvae.DefaultCodebookSize, "rvq: entries per codebook")
	commit := fs.Float64("commit-weight", vae.DefaultCommitWeight, "rvq: weight β of the commitment loss")
	decay := fs.Float64("codebook-decay", vae.DefaultCodebookDecay, "rvq: decay of the codebooks' moving averages")
	restart := fs.Float64("restart-below", speechvae.DefaultRestartBelow, "rvq: restart a code whose moving count (encoder outputs per batch) falls below this (0: never)")
	fs.StringVar(&o.Model.Domain, "domain", o.Model.Domain, "spectrum (log magnitudes, Griffin-Lim vocoder) or wave (waveform in and out)")
	fs.IntVar(&o.Model.FramesPerLatent, "frames-per-latent", o.Model.FramesPerLatent, "STFT frames of 128 samples per latent frame: 5 is 25 Hz, 10 is 12.5 Hz")
	fs.IntVar(&o.Model.Channels, "channels", o.Model.Channels, "latent channels per frame")
	fs.IntVar(&o.Model.Dim, "dim", o.Model.Dim, "transformer width")
	fs.IntVar(&o.Model.Depth, "depth", o.Model.Depth, "blocks in each of encoder and decoder (see --decoder-depth)")
	fs.IntVar(&o.Model.DecoderDepth, "decoder-depth", 0, "blocks of the decoder, if not --depth; with --init, grows the tokenizer's decoder to this many, the new blocks starting as identities")
	fs.bound("decoder-depth", 0, 64, false)
	fs.IntVar(&o.Model.FrameDepth, "frame-depth", o.Model.FrameDepth, "blocks at the STFT frame rate on each side of the trunk (0: none; needs --frame-dim)")
	fs.IntVar(&o.Model.FrameDim, "frame-dim", o.Model.FrameDim, "width of the STFT-frame-rate blocks")
	fs.Float64Var(&o.Model.CSigma, "c-sigma", o.Model.CSigma, "σ-VAE noise scale C_σ")
	fs.Float64Var(&o.Model.KLWeight, "kl-weight", o.Model.KLWeight, "weight of the KL (vae) or mean(μ²) (sigma, ae) term")
	fs.Float64Var(&o.Model.LossFloor, "loss-floor", o.Model.LossFloor, "magnitude under which the log losses stop counting (0: 1e-4; 0.01 is 70 dB under a typical utterance's loudest bin)")
	fs.Float64Var(&o.Model.AdvWeight, "adv-weight", o.Model.AdvWeight, "weight of the adversarial term: a patch discriminator on log-mel spectra, with feature matching (0: none)")
	fs.bound("adv-weight", 0, 100, false)
	fs.bound("batch", 1, 4096, false)
	fs.bound("crop", 1, 4096, false)
	fs.bound("frames-per-latent", 1, 64, false)
	fs.bound("channels", 1, 1024, false)
	fs.bound("codebooks", 1, speechvae.MaxCodebooks, false)
	fs.bound("codebook-size", 2, vae.MaxCodebook, false)
	fs.bound("commit-weight", 0, 100, false)
	fs.bound("codebook-decay", 0, 1, true)
	fs.bound("restart-below", 0, 1e6, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Init != "" {
		for _, name := range []string{"kind", "codebooks", "codebook-size", "commit-weight", "codebook-decay", "restart-below", "domain", "frames-per-latent", "channels", "dim", "depth", "frame-depth", "frame-dim", "c-sigma", "kl-weight", "loss-floor"} {
			if fs.isSet(name) {
				return fmt.Errorf("--%s: a run from --init takes the tokenizer's config from %s (only --adv-weight and --decoder-depth may change it)", name, o.Init)
			}
		}
	}
	if o.Model.Kind == vae.VQ {
		o.Model = o.Model.RVQ(*codebooks, *codebookSize)
		o.Model.CommitWeight, o.Model.CodebookDecay, o.Model.RestartBelow = *commit, *decay, *restart
		if *decay >= 1 {
			return fmt.Errorf("--codebook-decay %g: want a value below 1", *decay)
		}
		for _, name := range []string{"c-sigma", "kl-weight"} {
			if fs.isSet(name) {
				return fmt.Errorf("--%s is for --kind sigma, vae or ae: the residual quantiser has no noise and no latent regulariser", name)
			}
		}
	} else {
		for _, name := range []string{"codebooks", "codebook-size", "commit-weight", "codebook-decay", "restart-below"} {
			if fs.isSet(name) {
				return fmt.Errorf("--%s is for --kind rvq, not %v", name, o.Model.Kind)
			}
		}
	}
	if fs.isSet("timbre-share") && o.Timbres == "" {
		return fmt.Errorf("--timbre-share needs --timbres DIR")
	}
	dir, err := speechDir(o.Data)
	if err != nil {
		return err
	}
	o.Data = dir
	o.Log = os.Stdout
	ctx, cancel := signalContext()
	defer cancel()
	return runRecipe(fs, &o.Options, append([]string{"speech-vae", "train"}, args...), func() error {
		_, err := recipe.SpeechTokenizer(ctx, o)
		return err
	})
}

// speechKind is the --kind flag of speech-vae train: the kinds of
// vae.Variant, with "rvq" for the residual quantiser (vae.VQ; "vq" is
// accepted too: one codebook is its simplest case).
type speechKind struct{ v *vae.Variant }

func (k speechKind) String() string {
	if k.v == nil {
		return ""
	}
	return speechvae.Config{Kind: *k.v}.KindName()
}

func (k speechKind) Set(s string) error {
	switch s {
	case "sigma", "vae", "ae":
		return k.v.Set(s)
	case "rvq", "vq":
		*k.v = vae.VQ
		return nil
	}
	return fmt.Errorf("unknown kind %q: want sigma, vae, ae or rvq", s)
}

// loadSpeechVAE opens the tokenizer in dir, or the shipped weights/speech-vae.
func loadSpeechVAE(backendName, dir string) (*speechvae.Model, string, error) {
	b, _, err := openBackend(backendName)
	if err != nil {
		return nil, "", err
	}
	if dir == "" {
		if dir, err = weightsDir("speech-vae"); err != nil {
			return nil, "", err
		}
	}
	m, err := speechvae.Load(b, dir)
	return m, dir, err
}

// readSpeech reads a WAV file as 16 kHz mono, resampling other rates.
func readSpeech(path string) ([]float32, error) {
	a, err := wav.Read(path)
	if err != nil {
		return nil, err
	}
	if a, err = speech.To16k(a); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(a.Samples) == 0 {
		return nil, fmt.Errorf("%s: no samples", path)
	}
	return a.Samples, nil
}

func speechVAEEval(args []string) error {
	fs := newFlags("speech-vae eval", "speech-vae eval [--model DIR] [--data DIR] [--split test] [--judge-n 20] [--no-judge] [--json]")
	backendName := fs.String("backend", "", "compute backend: onnx, go or xla")
	modelDir := fs.String("model", "", "tokenizer checkpoint folder (default weights/speech-vae)")
	dataDir := fs.String("data", "", "speech data cache (default .deps/speech)")
	split := fs.String("split", speech.SplitTest, "split to measure: train, valid or test")
	judgeN := fs.Int("judge-n", 20, "utterances per voice and text set that pocketsphinx transcribes, originals and reconstructions")
	noJudge := fs.Bool("no-judge", false, "skip pocketsphinx")
	speakerDir := fs.String("speaker", "", "speaker judge checkpoint (default weights/speaker; none: skip)")
	noiseN := fs.Int("noise-n", 10, "utterances per voice decoded again with latent noise")
	limit := fs.Int("limit", 0, "measure only the first N utterances of each voice (0: all)")
	seed := fs.Uint64("seed", 1, "seed of Griffin-Lim's phases and of the latent noise")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.bound("judge-n", 1, 100000, false)
	fs.bound("noise-n", 1, 100000, false)
	fs.bound("limit", 0, 1e9, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !slices.Contains(speech.Splits, *split) {
		return fmt.Errorf("--split %q: want train, valid or test", *split)
	}
	m, dir, err := loadSpeechVAE(*backendName, *modelDir)
	if err != nil {
		return err
	}
	defer m.Close()
	utts, clips, err := loadSpeechSplit(*dataDir, *split)
	if err != nil {
		return err
	}
	if *limit > 0 {
		utts, clips = firstPerVoice(utts, clips, *limit)
	}
	o := evaluate.SpeechTokenizerOptions{Utterances: utts, Clips: clips, JudgeN: *judgeN, NoiseN: *noiseN, Seed: *seed}
	if !*asJSON {
		o.Log = os.Stderr
	}
	if !*noJudge {
		if o.Judge, err = speech.NewJudge(); err != nil {
			return err
		}
	}
	if err := attachSpeakerJudge(&o, *backendName, *speakerDir); err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	rep, err := evaluate.SpeechTokenizer(ctx, m, o)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(map[string]any{"model": dir, "split": *split, "report": rep})
	}
	printSpeechReport(dir, *split, rep)
	return nil
}

// loadSpeechSplit reads a split of the speech cache (--data, default
// .deps/speech) with its samples, saying how to build a missing cache.
func loadSpeechSplit(dataDir, split string) ([]speech.Utterance, [][]float32, error) {
	cache, err := speechDir(dataDir)
	if err != nil {
		return nil, nil, err
	}
	utts, clips, err := recipe.LoadSpeech(cache, split)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (build the speech data with `latentlm speech data`)", err)
	}
	return utts, clips, nil
}

// firstPerVoice keeps the first n utterances of each voice and text set.
func firstPerVoice(utts []speech.Utterance, clips [][]float32, n int) ([]speech.Utterance, [][]float32) {
	count := map[string]int{}
	var u2 []speech.Utterance
	var c2 [][]float32
	for i, u := range utts {
		if k := u.Voice + "/" + u.Set; count[k] < n {
			count[k]++
			u2, c2 = append(u2, u), append(c2, clips[i])
		}
	}
	return u2, c2
}

func printSpeechReport(dir, split string, r *evaluate.SpeechTokenizerReport) {
	fmt.Printf("%s: %s tokenizer, %s domain, %.1f Hz × %d channels, %s split\n", dir, r.Kind, r.Domain, r.FrameRate, r.Channels, split)
	if len(r.Codebooks) > 0 {
		fmt.Printf("%d codebooks of %d (%.0f bits per frame, %.0f bit/s); per codebook over the split:\n", len(r.Codebooks), r.Codebooks[0].Size,
			float64(len(r.Codebooks))*math.Log2(float64(r.Codebooks[0].Size)), r.FrameRate*float64(len(r.Codebooks))*math.Log2(float64(r.Codebooks[0].Size)))
		fmt.Printf("%9s %10s %6s %6s %13s\n", "codebook", "perplexity", "used", "dead", "residual RMS")
		fmt.Printf("%9s %10s %6s %6s %13.4f\n", "(none)", "", "", "", r.ResidualRMS[0])
		for i, u := range r.Codebooks {
			fmt.Printf("%9d %10.1f %6d %6d %13.4f\n", i+1, u.Perplexity, u.Used, u.Dead, r.ResidualRMS[i+1])
		}
	}
	fmt.Printf("%-16s %5s %7s %6s %8s %17s %19s %9s %9s %5s\n", "voice", "utts", "hours", "mel", "LSD dB", "WER numbers o→r", "WER sentences o→r", "spk orig", "spk rec", "SIM")
	for _, s := range append(slices.Clone(r.Voices), r.All) {
		wer := func(set string) string {
			if s.WEROriginal == nil {
				return "-"
			}
			return fmt.Sprintf("%.1f%%→%.1f%%", 100*s.WEROriginal[set], 100*s.WERReconstructed[set])
		}
		spk := func(v float64) string {
			if r.All.SpeakerAccuracyOriginal == 0 {
				return "-"
			}
			return fmt.Sprintf("%.1f%%", 100*v)
		}
		fmt.Printf("%-16s %5d %7.3f %6.3f %8.2f %17s %19s %9s %9s %5.2f\n", s.Voice, s.Utterances, s.Seconds/3600, s.MelDistance, s.LSD,
			wer(speech.SetNumbers), wer(speech.SetSentences), spk(s.SpeakerAccuracyOriginal), spk(s.SpeakerAccuracyReconstructed), s.SIM)
	}
	fmt.Printf("collapsed channels: %d of %d\n", r.Collapsed, r.Channels)
	fmt.Printf("mel distance with latent noise (std in units of each channel's std): none %.3f", r.CleanMelDistance)
	for _, k := range []string{"0.1", "0.2", "0.5"} {
		fmt.Printf(", %s: %.3f", k, r.NoisyMelDistance[k])
	}
	fmt.Printf("\nspeed: encode %.4f s and decode %.4f s per second of audio (%.0f s in all)\n", r.EncodeSecondsPerSecond, r.DecodeSecondsPerSecond, r.EvalSeconds)
}

func speechVAEEncode(args []string) error {
	fs := newFlags("speech-vae encode", "speech-vae encode [--model DIR] [--out-dir DIR] speech.wav...").takesArgs()
	backendName := fs.String("backend", "", "compute backend: onnx, go or xla")
	modelDir := fs.String("model", "", "tokenizer checkpoint folder (default weights/speech-vae)")
	outDir := fs.String("out-dir", ".", "folder for the latents: NAME.safetensors for each NAME.wav")
	sample := fs.Bool("sample", false, "draw z from the posterior instead of returning μ")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("no input: give one or more WAV files")
	}
	m, dir, err := loadSpeechVAE(*backendName, *modelDir)
	if err != nil {
		return err
	}
	defer m.Close()
	outs, err := batchOutputs(fs.Args(), *outDir, ".safetensors", dir)
	if err != nil {
		return err
	}
	// Every input is read and encoded before the first file is written, so
	// that a bad one leaves nothing half done.
	zs := make([][][]float32, len(outs))
	lengths := make([]int, len(outs))
	for i, in := range fs.Args() {
		x, err := readSpeech(in)
		if err != nil {
			return err
		}
		if zs[i], err = m.Encode(x, *sample); err != nil {
			return fmt.Errorf("%s: %w", in, err)
		}
		lengths[i] = len(x)
	}
	for i, out := range outs {
		if err := m.WriteLatents(out, zs[i], lengths[i]); err != nil {
			return err
		}
		fmt.Printf("wrote %s: %d frames × %d channels (%.2f s at %.1f Hz)\n", out, len(zs[i]), m.Config.Channels, float64(lengths[i])/speech.Rate, m.Config.FrameRate())
	}
	return nil
}

// batchOutputs names the output of each input of a batch command, NAME.ext
// in outDir for each NAME.*, and checks them all before any work: two inputs
// of one name (in different folders) would write one output twice, and an
// output must not overwrite an input or the model.
func batchOutputs(inputs []string, outDir, ext, model string) ([]string, error) {
	outs := make([]string, len(inputs))
	from := map[string]string{}
	// The extension is ext by construction; what is left to check is that
	// no output lands on an input or inside the model.
	notOver := append([]string{model}, inputs...)
	for i, in := range inputs {
		out := filepath.Join(outDir, strings.TrimSuffix(filepath.Base(in), filepath.Ext(in))+ext)
		if first, ok := from[out]; ok {
			return nil, fmt.Errorf("%s and %s would both be written to %s: give inputs of different names, or run them apart with --out-dir", first, in, out)
		}
		from[out] = in
		if err := guard.CheckOutput(out, notOver...); err != nil {
			return nil, err
		}
		outs[i] = out
	}
	return outs, nil
}

func speechVAEEncodeData(args []string) error {
	o := recipe.SpeechCorpusOptions{Split: speech.SplitTrain, Set: speech.SetBoth}
	fs := newFlags("speech-vae encode-data", "speech-vae encode-data [--data DIR] [--split train] [--set both] [--model DIR] [--out FILE.safetensors]")
	fs.StringVar(&o.Backend, "backend", "", "compute backend: onnx, go or xla")
	fs.StringVar(&o.SpeechVAE, "model", "", "tokenizer checkpoint folder (default weights/speech-vae)")
	fs.StringVar(&o.Data, "data", "", "speech data cache (default .deps/speech)")
	fs.StringVar(&o.Split, "split", o.Split, "split to encode: train, valid or test")
	fs.StringVar(&o.Set, "set", o.Set, "text set: numbers, sentences or both")
	fs.StringVar(&o.Out, "out", "", "corpus file (default runs/speech-latents-SET-SPLIT.safetensors)")
	quiet := fs.Bool("quiet", false, "no progress lines")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := speechDir(o.Data)
	if err != nil {
		return err
	}
	o.Data = dir
	if o.Out == "" {
		o.Out = filepath.Join("runs", "speech-latents-"+o.Set+"-"+o.Split+".safetensors")
		if err := os.MkdirAll("runs", 0o755); err != nil {
			return err
		}
	}
	if err := guard.CheckOutput(o.Out, o.Data); err != nil {
		return err
	}
	if !*quiet {
		o.Log = os.Stderr
	}
	ctx, stop := signalContext()
	defer stop()
	started := time.Now()
	c, err := recipe.EncodeSpeechCorpus(ctx, o)
	if err != nil {
		return err
	}
	frames := 0
	for _, z := range c.Frames {
		frames += len(z)
	}
	fmt.Printf("wrote %s: %d utterances, %d frames × %d channels (%.2f h of speech) from %s in %.0f s\n", o.Out, len(c.Utterances), frames,
		c.Tokenizer.Config.Channels, float64(frames)/c.Tokenizer.Config.FrameRate()/3600, c.Tokenizer.Path, time.Since(started).Seconds())
	return nil
}

func speechVAEDecode(args []string) error {
	fs := newFlags("speech-vae decode", "speech-vae decode [--model DIR] [--out-dir DIR] latents.safetensors...").takesArgs()
	backendName := fs.String("backend", "", "compute backend: onnx, go or xla")
	modelDir := fs.String("model", "", "tokenizer checkpoint folder (default weights/speech-vae)")
	outDir := fs.String("out-dir", ".", "folder for the audio: NAME.wav for each NAME.safetensors")
	seed := fs.Uint64("seed", 1, "seed of Griffin-Lim's starting phases (spectrum domain)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("no input: give one or more latents files")
	}
	m, dir, err := loadSpeechVAE(*backendName, *modelDir)
	if err != nil {
		return err
	}
	defer m.Close()
	outs, err := batchOutputs(fs.Args(), *outDir, ".wav", dir)
	if err != nil {
		return err
	}
	// Every input is read and decoded before the first file is written.
	ys := make([][]float32, len(outs))
	for i, in := range fs.Args() {
		z, n, err := m.ReadLatents(in)
		if err != nil {
			return err
		}
		if ys[i], err = m.Decode(z, n, *seed); err != nil {
			return fmt.Errorf("%s: %w", in, err)
		}
	}
	for i, out := range outs {
		if err := wav.Write(out, wav.Audio{Rate: speech.Rate, Samples: ys[i]}); err != nil {
			return err
		}
		fmt.Printf("wrote %s (%.2f s)\n", out, float64(len(ys[i]))/speech.Rate)
	}
	return nil
}

func speechVAEReconstruct(args []string) error {
	fs := newFlags("speech-vae reconstruct", "speech-vae reconstruct [--model DIR] in.wav out.wav").takesArgs()
	backendName := fs.String("backend", "", "compute backend: onnx, go or xla")
	modelDir := fs.String("model", "", "tokenizer checkpoint folder (default weights/speech-vae)")
	seed := fs.Uint64("seed", 1, "seed of Griffin-Lim's starting phases (spectrum domain)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return errors.New("want two arguments: the input WAV and the output WAV")
	}
	in, out := fs.Arg(0), fs.Arg(1)
	m, dir, err := loadSpeechVAE(*backendName, *modelDir)
	if err != nil {
		return err
	}
	defer m.Close()
	png := strings.TrimSuffix(out, filepath.Ext(out)) + ".png"
	if err := guard.CheckOutputFormat(out, ".wav", dir, in); err != nil {
		return err
	}
	if err := guard.CheckOutput(png, dir, in); err != nil {
		return err
	}
	x, err := readSpeech(in)
	if err != nil {
		return err
	}
	z, err := m.Encode(x, false)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	y, err := m.Decode(z, len(x), *seed)
	if err != nil {
		return err
	}
	if err := wav.Write(out, wav.Audio{Rate: speech.Rate, Samples: y}); err != nil {
		return err
	}
	if err := speech.WriteSpectrogram(png, wav.Audio{Rate: speech.Rate, Samples: y}); err != nil {
		return err
	}
	mel, lsd, err := evaluate.SpeechDistances(x, y)
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s and its spectrogram %s: %d latent frames; mel distance %.3f, log-spectral distance %.2f dB\n", out, png, len(z), mel, lsd)
	return nil
}

// attachSpeakerJudge loads the speaker judge of dir (default
// weights/speaker) into o; dir "none" skips the voice scores.
func attachSpeakerJudge(o *evaluate.SpeechTokenizerOptions, backendName, dir string) error {
	if dir == "none" {
		return nil
	}
	b, _, err := openBackend(backendName)
	if err != nil {
		return err
	}
	if dir == "" {
		if dir, err = weightsDir("speaker"); err != nil {
			return err
		}
	}
	j, err := speaker.Load(b, dir)
	if err != nil {
		return err
	}
	o.Speaker, o.SpeakerVoices = j.Predict, j.Voices
	return nil
}
