package speaker

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/safetensors"
)

// PredictBatch is the number of windows each call of the compiled graph
// takes; Predict pads the last batch up to it, so that one graph of one
// shape serves every call.
const PredictBatch = 32

// Names of the feature statistics stored beside the weights.
const (
	statMean = "feature_stats.mean"
	statStd  = "feature_stats.std"
)

// Model is a trained speaker classifier ready to score clips. It is not
// safe for concurrent use.
type Model struct {
	Config Config
	// Voices names the classes in the order of Predict's probabilities
	// (the config's voices).
	Voices []string
	Stats  Stats
	Store  *model.Store
	Info   map[string]any // the checkpoint's info (data, command, test accuracy…), if loaded
	// predict maps a batch of windows to their logits and embeddings.
	predict *model.Exec
}

// NewModel wraps a store holding the weights of cfg, with the feature
// statistics they were trained with.
func NewModel(b compute.Backend, cfg Config, stats Stats, store *model.Store) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := stats.check(cfg.Mels); err != nil {
		return nil, fmt.Errorf("speaker: %w", err)
	}
	m := &Model{Config: cfg, Voices: slices.Clone(cfg.Voices), Stats: stats, Store: store}
	var err error
	m.predict, err = model.NewExec(b, store, func(scope *model.Scope, x, mask *Node) []*Node {
		logits, emb := cfg.Forward(nn.WeightsOf(scope.Store(), x.Graph()), x, mask)
		return []*Node{logits, emb}
	})
	return m, err
}

var errClosed = errors.New("speaker: model used after Close")

// Close releases the compiled graph. It is safe to call more than once;
// Predict fails after it.
func (m *Model) Close() {
	if m.predict != nil {
		m.predict.Finalize()
		m.predict = nil
	}
}

// Predict scores clips of 16 kHz mono samples in [-1, 1]. For each clip
// it returns the probability of each voice (in the order of m.Voices) and
// the clip's speaker embedding, of unit RMS: compare embeddings with
// Similarity.
//
// A clip is cut into windows of Config.Frames frames (see Config.spans);
// its logits and embedding are the means over its windows, weighted by
// their speech frames, so that a window of silence does not vote. A clip
// without samples or with a non-finite sample is an error naming it.
func (m *Model) Predict(clips [][]float32) (probs, embeddings [][]float32, err error) {
	if m.predict == nil {
		return nil, nil, errClosed
	}
	fs, err := m.Config.allFeatures(clips, func(i int) string { return fmt.Sprintf("clip %d", i) })
	if err != nil {
		return nil, nil, err
	}
	return m.predictFeatures(fs)
}

// predictFeatures is Predict on computed (not yet normalised) features.
func (m *Model) predictFeatures(fs []clipFeatures) (probs, embeddings [][]float32, err error) {
	c := m.Config
	type window struct {
		clip int
		sp   span
	}
	var wins []window
	for i := range fs {
		m.Stats.normalise(&fs[i])
		for _, sp := range c.spans(fs[i].frames) {
			wins = append(wins, window{i, sp})
		}
	}
	v, e := len(c.Voices), c.Embedding
	logitSum := make([][]float64, len(fs))
	embSum := make([][]float64, len(fs))
	weights := make([]float64, len(fs))
	// The unweighted sums and window counts stand in for clips without
	// speech frames (silence, or noise with no louder part).
	plainLogits, plainEmb := make([][]float64, len(fs)), make([][]float64, len(fs))
	count := make([]float64, len(fs))
	for i := range fs {
		logitSum[i], embSum[i] = make([]float64, v), make([]float64, e)
		plainLogits[i], plainEmb[i] = make([]float64, v), make([]float64, e)
	}
	win := c.Frames * c.Mels
	x := make([]float32, PredictBatch*win)
	mask := make([]float32, PredictBatch*c.Frames)
	speechFrames := make([]int, PredictBatch)
	for start := 0; start < len(wins); start += PredictBatch {
		end := min(start+PredictBatch, len(wins))
		clear(x)
		clear(mask)
		for j := start; j < end; j++ {
			k := j - start
			speechFrames[k] = c.fill(x[k*win:(k+1)*win], mask[k*c.Frames:(k+1)*c.Frames], fs[wins[j].clip], wins[j].sp)
		}
		xt := tensors.FromFlatDataAndDimensions(x, PredictBatch, c.Frames, c.Mels)
		mt := tensors.FromFlatDataAndDimensions(mask, PredictBatch, c.Frames)
		out, err := m.predict.Call(xt, mt)
		nn.Release(xt, mt)
		if err != nil {
			return nil, nil, fmt.Errorf("speaker: %w", err)
		}
		logits := tensors.MustCopyFlatData[float32](out[0])
		embs := tensors.MustCopyFlatData[float32](out[1])
		nn.Release(out[0], out[1])
		for j := start; j < end; j++ {
			k, ci := j-start, wins[j].clip
			w := float64(speechFrames[k])
			weights[ci] += w
			count[ci]++
			for a := range v {
				l := float64(logits[k*v+a])
				logitSum[ci][a] += w * l
				plainLogits[ci][a] += l
			}
			for a := range e {
				z := float64(embs[k*e+a])
				embSum[ci][a] += w * z
				plainEmb[ci][a] += z
			}
		}
	}
	probs = make([][]float32, len(fs))
	embeddings = make([][]float32, len(fs))
	for i := range fs {
		ls, es, w := logitSum[i], embSum[i], weights[i]
		if w == 0 {
			ls, es, w = plainLogits[i], plainEmb[i], count[i]
		}
		for a := range ls {
			ls[a] /= w
		}
		probs[i] = softmax(ls)
		embeddings[i] = unitRMS(es)
	}
	return probs, embeddings, nil
}

// softmax of logits, in float64.
func softmax(l []float64) []float32 {
	top := slices.Max(l)
	out := make([]float32, len(l))
	var s float64
	for _, v := range l {
		s += math.Exp(v - top)
	}
	for a, v := range l {
		out[a] = float32(math.Exp(v-top) / s)
	}
	return out
}

// unitRMS scales v to unit root-mean-square (zero stays zero).
func unitRMS(v []float64) []float32 {
	var ss float64
	for _, x := range v {
		ss += x * x
	}
	scale := 0.0
	if ss > 0 {
		scale = 1 / math.Sqrt(ss/float64(len(v)))
	}
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x * scale)
	}
	return out
}

// Similarity is the cosine of two embeddings, the speaker similarity (SIM)
// of the LatentLM paper: 1 for the same direction, 0 for orthogonal ones.
// A zero vector, or vectors of different lengths, give 0.
func Similarity(a, b []float32) float64 {
	if len(a) != len(b) {
		return 0
	}
	var ab, aa, bb float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		ab += x * y
		aa += x * x
		bb += y * y
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

// Centroid is the mean of embeddings of unit RMS, rescaled to unit RMS:
// the reference embedding of a voice from several real clips of it.
func Centroid(embeddings [][]float32) []float32 {
	if len(embeddings) == 0 {
		return nil
	}
	sum := make([]float64, len(embeddings[0]))
	for _, e := range embeddings {
		for i := range min(len(e), len(sum)) {
			sum[i] += float64(e[i])
		}
	}
	return unitRMS(sum)
}

// VoiceIndex is the class of a voice, or -1 if the model does not know it.
func (m *Model) VoiceIndex(voice string) int { return slices.Index(m.Voices, voice) }

// Save writes the checkpoint: config, weights (the live ones: a loaded
// or finished model's) and feature statistics.
func (m *Model) Save(dir string, info map[string]any) error {
	return checkpoint.Save(dir, Kind, m.Config, info, m.Store, false, m.Stats.tensors())
}

// tensors are the statistics as checkpoint extras.
func (s Stats) tensors() []safetensors.Tensor {
	return []safetensors.Tensor{
		safetensors.FromFloat32(statMean, []int{len(s.Mean)}, s.Mean),
		safetensors.FromFloat32(statStd, []int{len(s.Std)}, s.Std),
	}
}

// Load reads a speaker checkpoint; every mismatch with its config is an
// error that names the file or the weight.
func Load(b compute.Backend, dir string) (*Model, error) {
	var cfg Config
	stats := func() map[string]safetensors.Spec {
		shape := []int{cfg.Mels}
		return map[string]safetensors.Spec{statMean: {DType: safetensors.F32, Shape: shape}, statStd: {DType: safetensors.F32, Shape: shape}}
	}
	store, hdr, extra, err := checkpoint.Load(dir, Kind, &cfg, stats)
	if err != nil {
		return nil, err
	}
	var st Stats
	if st.Mean, err = extra[statMean].Float32(); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if st.Std, err = extra[statStd].Float32(); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if err := st.check(cfg.Mels); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	m, err := NewModel(b, cfg, st, store)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	m.Info = hdr.Info
	return m, nil
}
