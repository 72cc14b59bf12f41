package evaluate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/latentlm/latentlm/metrics"
	"github.com/latentlm/latentlm/speech"
	"github.com/latentlm/latentlm/tts"
	"github.com/latentlm/latentlm/valle"
	"github.com/latentlm/latentlm/wav"
)

// TTSOptions are the settings of TTS.
type TTSOptions struct {
	// Utterances and Clips are the split to speak (recipe.LoadSpeech): the
	// texts, and the real utterances they are compared with.
	Utterances []speech.Utterance
	Clips      [][]float32
	// Set is the text set to speak ("numbers", "sentences"; "" both), N
	// the utterances per voice and set (the first in the split's order).
	Set string
	N   int
	// Judge transcribes originals and generations; nil skips the WER.
	Judge *speech.Judge
	// Speaker is the voice judge (package speaker): probabilities over
	// SpeakerVoices and embeddings; nil skips the voice scores.
	Speaker       func(clips [][]float32) (probs, embeddings [][]float32, err error)
	SpeakerVoices []string
	Seed          uint64
	// TeacherForced scores speech drawn frame by frame from the real
	// utterance's frames before each one (TeacherForcer), not generated
	// freely: a diagnostic of the model's one-step predictions. The
	// lengths are then the real ones by construction.
	TeacherForced bool
	Log           io.Writer
}

// TTSScores are the measures of one voice and text set, or of all
// voices of a set ("all").
type TTSScores struct {
	Voice      string `json:"voice"`
	Set        string `json:"set"`
	Utterances int    `json:"utterances"`
	// WER of pocketsphinx on the real utterances of the same texts in the
	// same voice, and on the generated speech; Words is the reference's
	// word count.
	WEROriginal  float64 `json:"wer_original"`
	WERGenerated float64 `json:"wer_generated"`
	Words        int     `json:"words"`
	// SpeakerAccuracy is how often the voice judge names the target voice
	// in the generated speech (Original: in the real speech); SIM is the
	// mean cosine of its embeddings between each generation and the real
	// utterance of the same text and voice.
	SpeakerAccuracy         float64 `json:"speaker_accuracy"`
	SpeakerAccuracyOriginal float64 `json:"speaker_accuracy_original"`
	SIM                     float64 `json:"sim"`
	// Stopped is the fraction of utterances that the model ended with
	// <EOL> (the rest ran into the length bound); WithinDuration the
	// fraction whose length is within ±20% of the real utterance's, and
	// DurationRatio the mean of generated over real length.
	Stopped        float64 `json:"stopped_at_eol"`
	WithinDuration float64 `json:"duration_within_20pct"`
	DurationRatio  float64 `json:"duration_ratio"`
}

// TTSReport is the evaluation of a text-to-speech model.
type TTSReport struct {
	Rows []TTSScores `json:"rows"`
	// FramesPerSecond is the decoding steps (backbone steps, one per
	// latent frame) per second of audio; HeadPassesPerSecond counts the
	// diffusion head's passes (solver steps × 2 with guidance).
	FramesPerSecond     float64 `json:"frames_per_audio_second"`
	HeadPassesPerSecond float64 `json:"head_passes_per_audio_second"`
	// DecodingStepsPerSecond is the sequential backbone passes (Spoken.Steps)
	// per second of generated frames, measured over the utterances.
	DecodingStepsPerSecond float64 `json:"decoding_steps_per_audio_second"`
	// RealTimeFactor is generation and decoding time over the audio's
	// duration, at the options' batch size.
	RealTimeFactor float64 `json:"real_time_factor"`
	AudioSeconds   float64 `json:"audio_seconds"`
	EvalSeconds    float64 `json:"eval_seconds"`
}

// TTSSystem is a text-to-speech system that TTS scores and a listening
// page plays (TTSColumn): LatentLM (LatentLMTTS) or the VALL-E-style
// discrete baseline (VALLETTS), so that one evaluation, with the same
// texts, prompts and judges, compares the two (the paper's Table 4).
type TTSSystem interface {
	// Speak says texts[j] in the voice of the 16 kHz clip prompts[j]
	// (named files[j] in errors); seed seeds the decoder's phases.
	Speak(ctx context.Context, texts []string, prompts [][]float32, files []string, seed uint64) ([]Spoken, error)
	// Rates are the frames the model generates per second of audio, and
	// its diffusion head's passes per second of audio (0: no head).
	Rates() (frames, headPasses float64)
}

// TeacherForcer is a TTSSystem that can also speak teacher-forced: every
// frame drawn from the real utterance's frames before it, so that its
// one-step predictions are judged apart from the drift of free generation
// (tts.Model.TeacherForced).
type TeacherForcer interface {
	// SpeakTeacherForced says texts[j] in the voice of prompts[j], each
	// frame drawn from those of the real utterance truths[j] (16 kHz)
	// before it.
	SpeakTeacherForced(ctx context.Context, texts []string, prompts, truths [][]float32, files []string, seed uint64) ([]Spoken, error)
}

// Spoken is one utterance a TTSSystem said.
type Spoken struct {
	Samples []float32 // 16 kHz
	// Stopped reports that the model ended the speech itself (<EOL>);
	// false means that the length bound cut it.
	Stopped bool
	Frames  int
	// Steps are the sequential backbone passes that made it: one per frame
	// and one for the <EOL> decision, and for the VALL-E-style baseline
	// one more per codebook its NAR fills. The paper's "decoding steps"
	// (§4.4: LatentLM's 15 frames a second against VALL-E 2's 75).
	Steps int
}

// TTS speaks the first N texts of each voice and set of a split with m,
// each in the voice of a prompt taken from another utterance of the same
// voice in the split, and scores the speech against the real utterances
// of the same texts: WER, the voice judge's accuracy and SIM, whether the
// model stopped itself, the duration and the decoding steps.
func TTS(ctx context.Context, m TTSSystem, o TTSOptions) (*TTSReport, error) {
	if len(o.Utterances) != len(o.Clips) || len(o.Clips) == 0 {
		return nil, fmt.Errorf("tts evaluation: %d utterances for %d clips", len(o.Utterances), len(o.Clips))
	}
	if o.N <= 0 {
		o.N = 10
	}
	t0 := time.Now()
	pick, prompt, err := TTSPicks(o.Utterances, o.Set, o.N)
	if err != nil {
		return nil, err
	}
	texts, promptClips, promptFiles := make([]string, len(pick)), make([][]float32, len(pick)), make([]string, len(pick))
	for j, i := range pick {
		texts[j], promptClips[j], promptFiles[j] = o.Utterances[i].Text, o.Clips[prompt[j]], o.Utterances[prompt[j]].File
	}
	if o.Log != nil {
		fmt.Fprintf(o.Log, "speaking %d texts\n", len(pick))
	}
	tg := time.Now()
	var spoken []Spoken
	if o.TeacherForced {
		tf, ok := m.(TeacherForcer)
		if !ok {
			return nil, fmt.Errorf("tts evaluation: this system cannot speak teacher-forced")
		}
		truths := make([][]float32, len(pick))
		for j, i := range pick {
			truths[j] = o.Clips[i]
		}
		spoken, err = tf.SpeakTeacherForced(ctx, texts, promptClips, truths, promptFiles, o.Seed)
	} else {
		spoken, err = m.Speak(ctx, texts, promptClips, promptFiles, o.Seed)
	}
	if err != nil {
		return nil, err
	}
	var audio float64
	var steps, frames int
	gen := make([][]float32, len(spoken))
	for j, g := range spoken {
		gen[j] = g.Samples
		audio += float64(len(g.Samples)) / speech.Rate
		steps, frames = steps+g.Steps, frames+g.Frames
	}
	rep := &TTSReport{AudioSeconds: audio, RealTimeFactor: time.Since(tg).Seconds() / audio}
	rep.FramesPerSecond, rep.HeadPassesPerSecond = m.Rates()
	if frames > 0 {
		rep.DecodingStepsPerSecond = float64(steps) / (float64(frames) / rep.FramesPerSecond)
	}
	// Scores per voice and set, then over voices per set.
	type key struct{ voice, set string }
	acc := map[key]*TTSScores{}
	var order []key
	row := func(k key) *TTSScores {
		if acc[k] == nil {
			acc[k] = &TTSScores{Voice: k.voice, Set: k.set}
			order = append(order, k)
		}
		return acc[k]
	}
	var spkGen, spkOrig, embGen, embOrig [][]float32
	if o.Speaker != nil {
		orig := make([][]float32, len(pick))
		for j, i := range pick {
			orig[j] = o.Clips[i]
		}
		if spkGen, embGen, err = o.Speaker(gen); err != nil {
			return nil, err
		}
		if spkOrig, embOrig, err = o.Speaker(orig); err != nil {
			return nil, err
		}
	}
	werO, werG := make([]speech.WER, len(pick)), make([]speech.WER, len(pick))
	if o.Judge != nil {
		orig, sets := make([][]float32, len(pick)), make([]string, len(pick))
		for j, i := range pick {
			orig[j], sets[j] = o.Clips[i], o.Utterances[i].Set
		}
		hypO, err := transcribe(ctx, o.Judge, orig, sets, o.Log, "real")
		if err != nil {
			return nil, err
		}
		hypG, err := transcribe(ctx, o.Judge, gen, sets, o.Log, "generated")
		if err != nil {
			return nil, err
		}
		for j := range pick {
			werO[j], werG[j] = speech.WordErrors(texts[j], hypO[j]), speech.WordErrors(texts[j], hypG[j])
		}
	}
	sums := map[key][2]speech.WER{}
	for j, i := range pick {
		u := o.Utterances[i]
		want := slices.Index(o.SpeakerVoices, u.Voice)
		ratio := float64(len(gen[j])) / float64(len(o.Clips[i]))
		for _, k := range []key{{u.Voice, u.Set}, {"all", u.Set}} {
			s := row(k)
			s.Utterances++
			if spoken[j].Stopped {
				s.Stopped++
			}
			if math.Abs(ratio-1) <= 0.2 {
				s.WithinDuration++
			}
			s.DurationRatio += ratio
			if o.Speaker != nil {
				if metrics.Argmax(spkGen[j]) == want {
					s.SpeakerAccuracy++
				}
				if metrics.Argmax(spkOrig[j]) == want {
					s.SpeakerAccuracyOriginal++
				}
				s.SIM += cosine(embGen[j], embOrig[j])
			}
			w := sums[k]
			sums[k] = [2]speech.WER{w[0].Add(werO[j]), w[1].Add(werG[j])}
		}
	}
	// Per-voice rows first, then the "all" rows.
	slices.SortStableFunc(order, func(a, b key) int {
		if (a.voice == "all") != (b.voice == "all") {
			if a.voice == "all" {
				return 1
			}
			return -1
		}
		return 0
	})
	for _, k := range order {
		s := acc[k]
		n := float64(s.Utterances)
		s.Stopped /= n
		s.WithinDuration /= n
		s.DurationRatio /= n
		s.SpeakerAccuracy /= n
		s.SpeakerAccuracyOriginal /= n
		s.SIM /= n
		w := sums[k]
		s.WEROriginal, s.WERGenerated, s.Words = w[0].Rate(), w[1].Rate(), w[0].Words
		rep.Rows = append(rep.Rows, *s)
	}
	rep.EvalSeconds = time.Since(t0).Seconds()
	return rep, nil
}

// TTSPicks are the utterances TTS speaks, indices into utts: the first n of
// each voice and set (set "" for both sets) that have another utterance of
// their voice for a prompt; prompt[j] is pick[j]'s prompt (ttsPrompts), so
// that no prompt says the text it prompts. The speed benchmark speaks the
// same texts.
func TTSPicks(utts []speech.Utterance, set string, n int) (pick, prompt []int, err error) {
	prompts := ttsPrompts(utts)
	count := map[string]int{}
	for i, u := range utts {
		if (set != "" && u.Set != set) || count[u.Voice+"/"+u.Set] >= n || prompts[i] < 0 {
			continue
		}
		count[u.Voice+"/"+u.Set]++
		pick, prompt = append(pick, i), append(prompt, prompts[i])
	}
	if len(pick) == 0 {
		return nil, nil, fmt.Errorf("tts evaluation: no utterances of set %q with another utterance of their voice for a prompt", set)
	}
	return pick, prompt, nil
}

// ttsPrompts is the voice prompt of each utterance of a split: the
// utterance before it of the same voice (cyclically, in the split's order),
// so that no prompt says the text it prompts; -1 where the voice has no
// other utterance. The evaluation and the listening page share it, so
// that the page's rows are spoken exactly as the table's.
func ttsPrompts(utts []speech.Utterance) []int {
	byVoice := map[string][]int{}
	for i, u := range utts {
		byVoice[u.Voice] = append(byVoice[u.Voice], i)
	}
	out := make([]int, len(utts))
	for i, u := range utts {
		idx := byVoice[u.Voice]
		if len(idx) < 2 {
			out[i] = -1
			continue
		}
		k := slices.Index(idx, i)
		out[i] = idx[(k+len(idx)-1)%len(idx)]
	}
	return out
}

// LatentLMTTS is a LatentLM text-to-speech model as a TTSSystem: the
// texts are spoken in one batch (tts.Model.Generate, at its options'
// batch size), and the frames decoded by the model's speech tokenizer.
func LatentLMTTS(m *tts.Model) TTSSystem { return latentLMTTS{m} }

type latentLMTTS struct{ m *tts.Model }

// Speak speaks every text with m and decodes the frames (seed:
// Griffin-Lim's phases). Speech the model ended before its first frame
// becomes one frame of silence, so that every text has audio for the
// judges.
func (l latentLMTTS) Speak(ctx context.Context, texts []string, prompts [][]float32, files []string, seed uint64) ([]Spoken, error) {
	m := l.m
	reqs := make([]tts.Request, len(texts))
	for j, text := range texts {
		p, err := m.Prompt(prompts[j])
		if err != nil {
			return nil, fmt.Errorf("voice prompt %s: %w", files[j], err)
		}
		reqs[j] = tts.Request{Text: text, Prompt: p}
	}
	res, err := m.Generate(ctx, reqs, nil)
	if err != nil {
		return nil, fmt.Errorf("speaking %d texts: %w", len(reqs), err)
	}
	return l.decode(texts, res, seed)
}

// SpeakTeacherForced speaks every text with each frame drawn from the
// frames of the real utterance truths[j] before it (tts.Model.TeacherForced;
// request j's noise from seed+j), and decodes them as Speak does.
func (l latentLMTTS) SpeakTeacherForced(ctx context.Context, texts []string, prompts, truths [][]float32, files []string, seed uint64) ([]Spoken, error) {
	m := l.m
	reqs, frames, seeds := make([]tts.Request, len(texts)), make([][][]float32, len(texts)), make([]uint64, len(texts))
	for j, text := range texts {
		p, err := m.Prompt(prompts[j])
		if err != nil {
			return nil, fmt.Errorf("voice prompt %s: %w", files[j], err)
		}
		if frames[j], err = m.Encode(truths[j]); err != nil {
			return nil, fmt.Errorf("the real utterance of %q: %w", text, err)
		}
		reqs[j], seeds[j] = tts.Request{Text: text, Prompt: p}, seed+uint64(j)
	}
	res, err := m.TeacherForced(ctx, reqs, frames, seeds)
	if err != nil {
		return nil, fmt.Errorf("speaking %d texts teacher-forced: %w", len(reqs), err)
	}
	return l.decode(texts, res, seed)
}

// decode turns the frames of every result into audio (seed: Griffin-Lim's
// phases).
func (l latentLMTTS) decode(texts []string, res []tts.Result, seed uint64) ([]Spoken, error) {
	m := l.m
	var err error
	out := make([]Spoken, len(res))
	for j, r := range res {
		out[j] = Spoken{Stopped: r.Stopped, Frames: len(r.Frames), Steps: len(r.Frames)}
		if r.Stopped {
			out[j].Steps++
		}
		if len(r.Frames) == 0 {
			out[j].Samples = make([]float32, m.SamplesPerFrame())
		} else if out[j].Samples, err = m.Decode(r.Frames, seed); err != nil {
			return nil, fmt.Errorf("decoding the speech of %q: %w", texts[j], err)
		}
	}
	return out, nil
}

// Rates: a backbone step per frame, and the head's solver steps per frame,
// twice with guidance.
func (l latentLMTTS) Rates() (frames, headPasses float64) {
	opts := l.m.Options()
	passes := float64(max(opts.Steps, 1))
	if opts.CFG != 1 {
		passes *= 2
	}
	return l.m.Format.FrameRate, l.m.Format.FrameRate * passes
}

// VALLETTS is the VALL-E-style baseline (package valle) as a TTSSystem,
// generating with o: o.Batch utterances at a time (valle.Speaker.SpeakBatch),
// each drawn from its own generator of o.Seed.
func VALLETTS(s *valle.Speaker, o valle.Options) TTSSystem { return valleTTS{s, o} }

type valleTTS struct {
	s *valle.Speaker
	o valle.Options
}

func (v valleTTS) Speak(ctx context.Context, texts []string, prompts [][]float32, files []string, seed uint64) ([]Spoken, error) {
	spoken, err := v.s.SpeakBatch(ctx, texts, prompts, v.o, seed)
	if err != nil {
		return nil, fmt.Errorf("speaking %d texts: %w", len(texts), err)
	}
	out := make([]Spoken, len(spoken))
	for j, sp := range spoken {
		out[j] = Spoken{Samples: sp.Samples, Stopped: sp.Stopped, Frames: len(sp.Codes), Steps: sp.ARSteps + sp.NARPasses}
	}
	return out, nil
}

// Rates: the codec's frame rate; no diffusion head.
func (v valleTTS) Rates() (frames, headPasses float64) { return v.s.Model.Config.FrameRate, 0 }

// transcribe has pocketsphinx write down each clip, with the grammar of
// its text set (sets[j]: numbers are read against the numbers grammar,
// sentences freely), one call per set; what names the clips in the log.
func transcribe(ctx context.Context, j *speech.Judge, clips [][]float32, sets []string, log io.Writer, what string) ([]string, error) {
	hyps := make([]string, len(clips))
	for _, set := range []string{speech.SetNumbers, speech.SetSentences} {
		var idx []int
		var audio []wav.Audio
		for k, s := range sets {
			if s == set {
				idx = append(idx, k)
				audio = append(audio, wav.Audio{Rate: speech.Rate, Samples: clips[k]})
			}
		}
		if len(idx) == 0 {
			continue
		}
		if log != nil {
			fmt.Fprintf(log, "transcribing %d %s %s utterances with pocketsphinx\n", len(idx), what, set)
		}
		h, err := j.Transcribe(ctx, audio, speech.GrammarFor(set))
		if err != nil {
			return nil, fmt.Errorf("transcribing %s %s utterances: %w", what, set, err)
		}
		for n, k := range idx {
			hyps[k] = h[n]
		}
	}
	return hyps, nil
}

// MergeTTSReports pools reports of the same texts spoken with different
// sampling seeds into one, as if every seed's utterances had been one
// evaluation: word error rates over all their words, the other fractions
// and means over all their utterances, the speed figures over all their
// audio. One seed's draw moves the word error of 350 spoken numbers by
// up to 1.3 points (docs/RESULTS.md, "Guidance for the shipped model"),
// since an utterance's words fail together; pooling seeds narrows that.
// The reports must have the same rows (voice and set, in order).
func MergeTTSReports(reps []*TTSReport) (*TTSReport, error) {
	if len(reps) == 0 {
		return nil, errors.New("tts evaluation: no reports to merge")
	}
	out := &TTSReport{Rows: slices.Clone(reps[0].Rows), FramesPerSecond: reps[0].FramesPerSecond, HeadPassesPerSecond: reps[0].HeadPassesPerSecond}
	for i := range out.Rows {
		out.Rows[i] = TTSScores{Voice: out.Rows[i].Voice, Set: out.Rows[i].Set}
	}
	for k, r := range reps {
		if len(r.Rows) != len(out.Rows) {
			return nil, fmt.Errorf("tts evaluation: report %d has %d rows, the first %d", k+1, len(r.Rows), len(out.Rows))
		}
		for i, s := range r.Rows {
			m := &out.Rows[i]
			if s.Voice != m.Voice || s.Set != m.Set {
				return nil, fmt.Errorf("tts evaluation: report %d's row %d is %s/%s, the first's %s/%s", k+1, i+1, s.Voice, s.Set, m.Voice, m.Set)
			}
			u, w := float64(s.Utterances), float64(s.Words)
			m.WEROriginal += s.WEROriginal * w
			m.WERGenerated += s.WERGenerated * w
			m.SpeakerAccuracy += s.SpeakerAccuracy * u
			m.SpeakerAccuracyOriginal += s.SpeakerAccuracyOriginal * u
			m.SIM += s.SIM * u
			m.Stopped += s.Stopped * u
			m.WithinDuration += s.WithinDuration * u
			m.DurationRatio += s.DurationRatio * u
			m.Utterances += s.Utterances
			m.Words += s.Words
		}
		out.DecodingStepsPerSecond += r.DecodingStepsPerSecond * r.AudioSeconds
		out.RealTimeFactor += r.RealTimeFactor * r.AudioSeconds
		out.AudioSeconds += r.AudioSeconds
		out.EvalSeconds += r.EvalSeconds
	}
	div := func(x *float64, by float64) {
		if by > 0 {
			*x /= by
		}
	}
	for i := range out.Rows {
		m := &out.Rows[i]
		u, w := float64(m.Utterances), float64(m.Words)
		div(&m.WEROriginal, w)
		div(&m.WERGenerated, w)
		for _, x := range []*float64{&m.SpeakerAccuracy, &m.SpeakerAccuracyOriginal, &m.SIM, &m.Stopped, &m.WithinDuration, &m.DurationRatio} {
			div(x, u)
		}
	}
	div(&out.DecodingStepsPerSecond, out.AudioSeconds)
	div(&out.RealTimeFactor, out.AudioSeconds)
	return out, nil
}
