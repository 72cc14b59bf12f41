package evaluate

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/latentlm/latentlm/metrics"
	"github.com/latentlm/latentlm/speech"
	"github.com/latentlm/latentlm/speechvae"
	"github.com/latentlm/latentlm/vae"
	"github.com/latentlm/latentlm/wav"
)

// SpeechTokenizerOptions are the settings of SpeechTokenizer.
type SpeechTokenizerOptions struct {
	// Utterances and Clips are the split to measure (recipe.LoadSpeech).
	Utterances []speech.Utterance
	Clips      [][]float32
	// Judge transcribes the first JudgeN utterances of each voice and set,
	// originals and reconstructions alike; nil skips intelligibility.
	Judge  *speech.Judge
	JudgeN int
	// Speaker classifies clips by voice (the project's speaker judge,
	// package speaker): probabilities over SpeakerVoices and embeddings;
	// nil skips the voice scores.
	Speaker       func(clips [][]float32) (probs, embeddings [][]float32, err error)
	SpeakerVoices []string
	// NoiseN utterances per voice are decoded again with noise added to
	// their latents (0: 10).
	NoiseN int
	Seed   uint64
	// Log receives progress lines; nil for none.
	Log io.Writer
}

// SpeechScores are the measures of one voice, or of all ("all").
type SpeechScores struct {
	Voice      string  `json:"voice"`
	Utterances int     `json:"utterances"`
	Seconds    float64 `json:"seconds"`
	// MelDistance is the mean absolute difference of natural-log mel power
	// (80 bands, 25 ms windows every 10 ms) between the original and its
	// reconstruction; LSD is the log-spectral distance in dB; both with an
	// 80 dB range (SpeechDistances).
	MelDistance float64 `json:"mel_distance"`
	LSD         float64 `json:"log_spectral_distance_db"`
	// WER is pocketsphinx's word error rate per text set ("numbers",
	// "sentences") on the original audio and on the reconstructions of the
	// same utterances; Ratio is reconstruction over original.
	WEROriginal      map[string]float64 `json:"wer_original,omitempty"`
	WERReconstructed map[string]float64 `json:"wer_reconstructed,omitempty"`
	WERWords         map[string]int     `json:"wer_words,omitempty"`
	// SpeakerAccuracy is the speaker judge's accuracy on the originals and
	// on the reconstructions; SIM is the mean cosine between each
	// reconstruction's embedding and its original's.
	SpeakerAccuracyOriginal      float64 `json:"speaker_accuracy_original,omitempty"`
	SpeakerAccuracyReconstructed float64 `json:"speaker_accuracy_reconstructed,omitempty"`
	SIM                          float64 `json:"sim_reconstruction_original,omitempty"`
}

// SpeechTokenizerReport is the evaluation of a speech tokenizer.
type SpeechTokenizerReport struct {
	Kind      string         `json:"kind"`
	Domain    string         `json:"domain"`
	FrameRate float64        `json:"frame_rate_hz"`
	Channels  int            `json:"latent_channels"`
	Voices    []SpeechScores `json:"voices"`
	All       SpeechScores   `json:"all"`
	// MuStd is the standard deviation of μ per channel over the split, in
	// the encoder's units; Collapsed counts channels with MuStd < 0.01.
	MuStd     []float64 `json:"mu_std_per_channel"`
	Collapsed int       `json:"collapsed_channels"`
	// NoisyMelDistance is the mel distance when Gaussian noise of std 0.1,
	// 0.2 and 0.5 (the keys; the latents are normalised, so this is that
	// fraction of each channel's std) is added before decoding, on NoiseN
	// utterances per voice; CleanMelDistance is theirs without noise.
	NoisyMelDistance map[string]float64 `json:"mel_distance_with_latent_noise"`
	CleanMelDistance float64            `json:"mel_distance_noise_subset"`
	// Codebooks is, for a residual-VQ tokenizer (kind rvq), the use of
	// each codebook over the split, first codebook first: perplexity,
	// used and dead codes. ResidualRMS[i] is the root mean square of the
	// encoder output's norm left unexplained after i codebooks (0: the
	// output itself), over all frames: it shrinks with every codebook.
	Codebooks   []CodebookUsage `json:"codebooks,omitempty"`
	ResidualRMS []float64       `json:"residual_rms,omitempty"`
	// Seconds of computation per second of audio.
	EncodeSecondsPerSecond float64 `json:"encode_seconds_per_audio_second"`
	DecodeSecondsPerSecond float64 `json:"decode_seconds_per_audio_second"`
	EvalSeconds            float64 `json:"eval_seconds"`
}

// SpeechTokenizer measures m on a split: reconstructions from μ, their
// distances and judges' scores per voice next to the originals', the
// spread of μ, the decoder's tolerance of latent noise, and speed.
func SpeechTokenizer(ctx context.Context, m *speechvae.Model, o SpeechTokenizerOptions) (*SpeechTokenizerReport, error) {
	if len(o.Utterances) != len(o.Clips) || len(o.Clips) == 0 {
		return nil, fmt.Errorf("speech tokenizer evaluation: %d utterances for %d clips", len(o.Utterances), len(o.Clips))
	}
	if o.NoiseN <= 0 {
		o.NoiseN = 10
	}
	t0 := time.Now()
	c := m.Config
	rep := &SpeechTokenizerReport{Kind: c.KindName(), Domain: c.Domain, FrameRate: c.FrameRate(), Channels: c.Channels,
		NoisyMelDistance: map[string]float64{}}
	recon := make([][]float32, len(o.Clips))
	latents := make([][][]float32, len(o.Clips))
	var encSec, decSec, audioSec float64
	sum, sq := make([]float64, c.Channels), make([]float64, c.Channels)
	frames := 0
	for i, x := range o.Clips {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t := time.Now()
		z, err := m.Encode(x, false)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", o.Utterances[i].File, err)
		}
		encSec += time.Since(t).Seconds()
		t = time.Now()
		if recon[i], err = m.Decode(z, len(x), o.Seed); err != nil {
			return nil, fmt.Errorf("%s: %w", o.Utterances[i].File, err)
		}
		decSec += time.Since(t).Seconds()
		audioSec += float64(len(x)) / speech.Rate
		latents[i] = z
		for _, row := range z {
			for k, v := range row {
				u := float64(v)*float64(m.Std[k]) + float64(m.Mean[k])
				sum[k] += u
				sq[k] += u * u
			}
			frames++
		}
		if o.Log != nil && (i+1)%100 == 0 {
			fmt.Fprintf(o.Log, "reconstructed %d/%d utterances\n", i+1, len(o.Clips))
		}
	}
	rep.EncodeSecondsPerSecond, rep.DecodeSecondsPerSecond = encSec/audioSec, decSec/audioSec
	if c.Kind == vae.VQ {
		if err := codebookUse(ctx, m, o, rep); err != nil {
			return nil, err
		}
	}
	for k := range sum {
		mean := sum[k] / float64(frames)
		sd := math.Sqrt(math.Max(sq[k]/float64(frames)-mean*mean, 0))
		rep.MuStd = append(rep.MuStd, sd)
		if sd < 0.01 {
			rep.Collapsed++
		}
	}
	// Distances per utterance.
	mel := make([]float64, len(o.Clips))
	lsd := make([]float64, len(o.Clips))
	for i := range o.Clips {
		var err error
		if mel[i], lsd[i], err = SpeechDistances(o.Clips[i], recon[i]); err != nil {
			return nil, fmt.Errorf("%s: %w", o.Utterances[i].File, err)
		}
	}
	voices := voiceOrder(o.Utterances)
	scores := map[string]*SpeechScores{}
	all := &SpeechScores{Voice: "all"}
	for _, v := range voices {
		scores[v] = &SpeechScores{Voice: v}
	}
	for i, u := range o.Utterances {
		for _, s := range []*SpeechScores{scores[u.Voice], all} {
			s.Utterances++
			s.Seconds += float64(len(o.Clips[i])) / speech.Rate
			s.MelDistance += mel[i]
			s.LSD += lsd[i]
		}
	}
	if o.Judge != nil {
		if err := judgeReconstructions(ctx, o, recon, voices, scores, all); err != nil {
			return nil, err
		}
	}
	if o.Speaker != nil {
		if err := speakerScores(o, recon, scores, all); err != nil {
			return nil, err
		}
	}
	for _, v := range voices {
		s := scores[v]
		s.MelDistance /= float64(s.Utterances)
		s.LSD /= float64(s.Utterances)
		rep.Voices = append(rep.Voices, *s)
	}
	all.MelDistance /= float64(all.Utterances)
	all.LSD /= float64(all.Utterances)
	rep.All = *all
	if err := noiseRobustness(m, o, latents, mel, rep); err != nil {
		return nil, err
	}
	rep.EvalSeconds = time.Since(t0).Seconds()
	return rep, nil
}

// codebookUse fills the codebook usage and residual norms of a rvq
// tokenizer's report from the codes of every clip.
func codebookUse(ctx context.Context, m *speechvae.Model, o SpeechTokenizerOptions, rep *SpeechTokenizerReport) error {
	c := m.Config
	hist := make([][]int64, c.Codebooks)
	for i := range hist {
		hist[i] = make([]int64, c.CodebookSize)
	}
	sq := make([]float64, c.Codebooks+1)
	frames := 0
	for i, x := range o.Clips {
		if err := ctx.Err(); err != nil {
			return err
		}
		q, err := m.Quantize(x)
		if err != nil {
			return fmt.Errorf("%s: %w", o.Utterances[i].File, err)
		}
		for _, row := range q.Codes {
			for k, code := range row {
				hist[k][code]++
			}
		}
		for k, r := range q.ResidualRMS {
			sq[k] += r * r * float64(len(q.Codes))
		}
		frames += len(q.Codes)
	}
	for _, h := range hist {
		rep.Codebooks = append(rep.Codebooks, CodeUsage(h))
	}
	for _, v := range sq {
		rep.ResidualRMS = append(rep.ResidualRMS, math.Sqrt(v/float64(frames)))
	}
	return nil
}

// voiceOrder lists the voices of utts in speech.Voices order, then any
// others (a user's folder) in order of appearance.
func voiceOrder(utts []speech.Utterance) []string {
	var out []string
	for _, v := range speech.Voices {
		for _, u := range utts {
			if u.Voice == v.Name {
				out = append(out, v.Name)
				break
			}
		}
	}
	for _, u := range utts {
		if !slices.Contains(out, u.Voice) {
			out = append(out, u.Voice)
		}
	}
	return out
}

// judgeReconstructions scores the first JudgeN utterances per voice and
// set with pocketsphinx, originals and reconstructions.
func judgeReconstructions(ctx context.Context, o SpeechTokenizerOptions, recon [][]float32, voices []string, scores map[string]*SpeechScores, all *SpeechScores) error {
	n := o.JudgeN
	if n <= 0 {
		n = 20
	}
	for _, set := range []string{speech.SetNumbers, speech.SetSentences} {
		var orig, rec []wav.Audio
		var refs, who []string
		count := map[string]int{}
		for i, u := range o.Utterances {
			if u.Set != set || count[u.Voice] >= n {
				continue
			}
			count[u.Voice]++
			orig = append(orig, wav.Audio{Rate: speech.Rate, Samples: o.Clips[i]})
			rec = append(rec, wav.Audio{Rate: speech.Rate, Samples: recon[i]})
			refs = append(refs, u.Text)
			who = append(who, u.Voice)
		}
		if len(orig) == 0 {
			continue
		}
		if o.Log != nil {
			fmt.Fprintf(o.Log, "judging %d %s utterances and their reconstructions with pocketsphinx\n", len(orig), set)
		}
		_, hypO, err := o.Judge.Score(ctx, orig, refs, speech.GrammarFor(set))
		if err != nil {
			return err
		}
		_, hypR, err := o.Judge.Score(ctx, rec, refs, speech.GrammarFor(set))
		if err != nil {
			return err
		}
		perO, perR := map[string]speech.WER{}, map[string]speech.WER{}
		for i := range refs {
			eo, er := speech.WordErrors(refs[i], hypO[i]), speech.WordErrors(refs[i], hypR[i])
			for _, k := range []string{who[i], "all"} {
				perO[k], perR[k] = perO[k].Add(eo), perR[k].Add(er)
			}
		}
		for _, v := range voices {
			if _, ok := perO[v]; ok {
				setWER(scores[v], set, perO[v], perR[v])
			}
		}
		setWER(all, set, perO["all"], perR["all"])
	}
	return nil
}

func setWER(s *SpeechScores, set string, orig, rec speech.WER) {
	if s.WEROriginal == nil {
		s.WEROriginal, s.WERReconstructed, s.WERWords = map[string]float64{}, map[string]float64{}, map[string]int{}
	}
	s.WEROriginal[set], s.WERReconstructed[set], s.WERWords[set] = orig.Rate(), rec.Rate(), orig.Words
}

// speakerScores runs the speaker judge on originals and reconstructions.
func speakerScores(o SpeechTokenizerOptions, recon [][]float32, scores map[string]*SpeechScores, all *SpeechScores) error {
	pO, eO, err := o.Speaker(o.Clips)
	if err != nil {
		return err
	}
	pR, eR, err := o.Speaker(recon)
	if err != nil {
		return err
	}
	type acc struct{ orig, rec, sim float64 }
	per := map[string]*acc{}
	for i, u := range o.Utterances {
		want := slices.Index(o.SpeakerVoices, u.Voice)
		for _, k := range []string{u.Voice, "all"} {
			if per[k] == nil {
				per[k] = &acc{}
			}
			if metrics.Argmax(pO[i]) == want {
				per[k].orig++
			}
			if metrics.Argmax(pR[i]) == want {
				per[k].rec++
			}
			per[k].sim += cosine(eO[i], eR[i])
		}
	}
	for k, a := range per {
		s := all
		if k != "all" {
			s = scores[k]
		}
		n := float64(s.Utterances)
		s.SpeakerAccuracyOriginal, s.SpeakerAccuracyReconstructed, s.SIM = a.orig/n, a.rec/n, a.sim/n
	}
	return nil
}

func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

// noiseRobustness decodes the first NoiseN utterances of each voice again
// with Gaussian noise of std 0.1, 0.2 and 0.5 added to their normalised
// latents, and records the mean mel distance to the original; clean holds
// the distances of the noise-free reconstructions, already measured.
func noiseRobustness(m *speechvae.Model, o SpeechTokenizerOptions, latents [][][]float32, clean []float64, rep *SpeechTokenizerReport) error {
	rng := rand.New(rand.NewPCG(o.Seed, 0x5eed))
	count := map[string]int{}
	var pick []int
	for i, u := range o.Utterances {
		if count[u.Voice] < o.NoiseN {
			count[u.Voice]++
			pick = append(pick, i)
		}
	}
	var total float64
	for _, i := range pick {
		total += clean[i]
	}
	rep.CleanMelDistance = total / float64(len(pick))
	for _, s := range []float64{0.1, 0.2, 0.5} {
		var total float64
		for _, i := range pick {
			noisy := make([][]float32, len(latents[i]))
			for t, row := range latents[i] {
				noisy[t] = make([]float32, len(row))
				for k, v := range row {
					noisy[t][k] = v + float32(s*rng.NormFloat64())
				}
			}
			y, err := m.Decode(noisy, len(o.Clips[i]), o.Seed)
			if err != nil {
				return err
			}
			d, _, err := SpeechDistances(o.Clips[i], y)
			if err != nil {
				return err
			}
			total += d
		}
		rep.NoisyMelDistance[strconv.FormatFloat(s, 'f', -1, 64)] = total / float64(len(pick))
	}
	return nil
}

// DistanceRangeDB is the dynamic range of the speech distances: power
// more than this far below the original's loudest bin is clamped there,
// in both signals, as librosa's power_to_db(top_db=80) does. Without it the
// digital silence of a synthesiser (power 0, log −∞ but for a floor) would
// dominate every distance with differences no one can hear.
const DistanceRangeDB = 80

// SpeechDistances compares a reconstruction y with its original x (same
// length): the mean absolute difference of natural-log mel power
// (speech.LogMel's bands and STFT) and the log-spectral distance in dB,
// √(mean over bins of (10·log10 P − 10·log10 P̂)²) averaged over frames,
// both with power clamped DistanceRangeDB below the original's peak.
func SpeechDistances(x, y []float32) (mel, lsd float64, err error) {
	if len(x) != len(y) {
		return 0, 0, fmt.Errorf("speech distance: %d samples against %d", len(y), len(x))
	}
	px, err := speech.PowerSpectrogram(x, speech.DefaultSTFT)
	if err != nil {
		return 0, 0, err
	}
	py, err := speech.PowerSpectrogram(y, speech.DefaultSTFT)
	if err != nil {
		return 0, 0, err
	}
	fb, err := speech.MelFilterbank(speech.DefaultMel)
	if err != nil {
		return 0, 0, err
	}
	peak, peakMel := 0.0, 0.0
	melOf := func(row []float64) []float64 {
		out := make([]float64, len(fb))
		for m, f := range fb {
			for k, w := range f {
				out[m] += w * row[k]
			}
		}
		return out
	}
	mx, my := make([][]float64, len(px)), make([][]float64, len(py))
	for t := range px {
		mx[t], my[t] = melOf(px[t]), melOf(py[t])
		for _, v := range px[t] {
			peak = math.Max(peak, v)
		}
		for _, v := range mx[t] {
			peakMel = math.Max(peakMel, v)
		}
	}
	floor := math.Max(peak*math.Pow(10, -DistanceRangeDB/10.0), speech.LogMelFloor)
	floorMel := math.Max(peakMel*math.Pow(10, -DistanceRangeDB/10.0), speech.LogMelFloor)
	var n int
	for t := range mx {
		for k := range mx[t] {
			mel += math.Abs(math.Log(math.Max(mx[t][k], floorMel)) - math.Log(math.Max(my[t][k], floorMel)))
			n++
		}
		var s float64
		for k := range px[t] {
			d := 10 * (math.Log10(math.Max(px[t][k], floor)) - math.Log10(math.Max(py[t][k], floor)))
			s += d * d
		}
		lsd += math.Sqrt(s / float64(len(px[t])))
	}
	return mel / float64(n), lsd / float64(len(px)), nil
}
