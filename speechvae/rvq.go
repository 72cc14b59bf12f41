package speechvae

import (
	"fmt"
	"math"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/vae"
)

// This file is kind vq of the speech tokenizer: a residual vector
// quantiser (RVQ) between the encoder and the decoder, the codec of the
// discrete text-to-speech baseline (issue 18; VALL-E, Wang et al. 2023,
// https://arxiv.org/abs/2301.02111, reads and writes EnCodec's RVQ codes).
// It follows SoundStream (Zeghidour et al. 2021, “SoundStream: An
// End-to-End Neural Audio Codec”, https://arxiv.org/abs/2107.03312, §3.3,
// Algorithm 1):
//
//	r_0 = z;  for i = 1…N:  e_i = Q_i(r_{i−1}),  r_i = r_{i−1} − e_i;  ẑ = Σ_i e_i
//
// where Q_i is the nearest entry of codebook i (vae.Quantize). Each stage
// quantises what the stages before it left, so the first codebook carries
// the coarse content and later ones refine it, which is what lets VALL-E
// predict the first codebook autoregressively and the rest in parallel.
// The decoder reads ẑ through the straight-through estimator
// (vae.StraightThrough); the encoder is pulled toward its codes by the
// commitment loss of every stage, β·Σ_i ‖r_{i−1} − sg(e_i)‖² (van den Oord
// et al. 2017, eq. 3, applied per stage as EnCodec does, Défossez et al.
// 2022, https://arxiv.org/abs/2210.13438, §3.4). Every codebook follows
// moving averages of the residuals it is given, with dead codes restarted
// from the batch (vae.CodebookEMA and vae.RestartDead, per codebook: the
// image tokenizer's study, docs/RESULTS.md, saw a gradient-trained
// codebook collapse onto 7 of 64 codes).
//
// The frame rate is the trunk's (25 Hz by default): the quantiser replaces
// the σ-VAE's noise at the same place, so that `speech-vae eval` compares
// the two bottlenecks on equal terms (docs/DESIGN.md §12).

// Defaults of `speech-vae train --kind rvq`.
const (
	// DefaultCodebooks and DefaultCodebookSize are EnCodec's 6 kbps
	// setting as VALL-E uses it (§5.1): 8 codebooks of 1024 entries.
	DefaultCodebooks    = 8
	DefaultCodebookSize = 1024
	// DefaultRestartBelow is the restart threshold τ of the speech
	// codebooks. The image tokenizer's τ = 1 (vae.DefaultRestartBelow)
	// assumes more encoder outputs per batch than codes; a speech batch of
	// 16 crops of 32 frames has 512 for 1024 codes, half a vector per code
	// if all were used evenly, so τ = 1 would restart codes in steady use.
	// τ = 0.1 restarts a code used five times less than that.
	DefaultRestartBelow = 0.1
	// MaxCodebooks bounds Config.Codebooks.
	MaxCodebooks = 32
)

// CodebookName is the weight name of codebook i (from 0), CodebookSize ×
// Channels.
func CodebookName(i int) string { return fmt.Sprintf("quantizer.codebooks.%d", i) }

// RVQ is c made a residual-VQ tokenizer of n codebooks of k entries with
// the default commitment weight, moving-average decay and restart
// threshold. The noise scale and latent regulariser weight of the other
// kinds are zeroed: the quantiser has neither.
func (c Config) RVQ(n, k int) Config {
	c.Kind, c.Codebooks, c.CodebookSize, c.CSigma, c.KLWeight = vae.VQ, n, k, 0, 0
	c.CommitWeight, c.CodebookDecay, c.RestartBelow = vae.DefaultCommitWeight, vae.DefaultCodebookDecay, DefaultRestartBelow
	return c
}

// Beta is the commitment weight: CommitWeight, or vae.DefaultCommitWeight
// when that is 0.
func (c Config) Beta() float64 {
	if c.CommitWeight == 0 {
		return vae.DefaultCommitWeight
	}
	return c.CommitWeight
}

// KindName is the tokenizer kind as `speech-vae train --kind` spells it:
// "rvq" for kind vq (the speech quantiser is always residual, one
// codebook being its simplest case), else the vae.Variant's name.
func (c Config) KindName() string {
	if c.Kind == vae.VQ {
		return "rvq"
	}
	return c.Kind.String()
}

func (c Config) validateVQ() error {
	if c.Kind != vae.VQ {
		if c.Codebooks != 0 || c.CodebookSize != 0 || c.CommitWeight != 0 || c.CodebookDecay != 0 || c.RestartBelow != 0 {
			return fmt.Errorf("speech-vae config: codebooks, codebook_size, commit_weight, codebook_decay and restart_below are for kind rvq, not %v", c.Kind)
		}
		return nil
	}
	switch {
	case c.Codebooks < 1 || c.Codebooks > MaxCodebooks:
		return fmt.Errorf("speech-vae config: kind rvq needs 1…%d codebooks, not %d", MaxCodebooks, c.Codebooks)
	case c.CodebookSize < 2 || c.CodebookSize > vae.MaxCodebook:
		return fmt.Errorf("speech-vae config: kind rvq needs codebooks of 2…%d entries, not %d", vae.MaxCodebook, c.CodebookSize)
	case !(c.CommitWeight >= 0 && c.CommitWeight <= 100):
		return fmt.Errorf("speech-vae config: commit_weight %g out of range [0, 100]", c.CommitWeight)
	case !(c.CodebookDecay > 0 && c.CodebookDecay < 1):
		return fmt.Errorf("speech-vae config: codebook_decay %g out of range (0, 1): the codebooks follow moving averages", c.CodebookDecay)
	case !(c.RestartBelow >= 0 && c.RestartBelow <= 1e6):
		return fmt.Errorf("speech-vae config: restart_below %g out of range [0, 1e6]", c.RestartBelow)
	}
	return nil
}

// Residual is what the residual quantiser made of latents z [B, L, C].
type Residual struct {
	// Sum is ẑ = Σ_i e_i, z's shape; its gradient reaches the codebooks
	// only (use vae.StraightThrough for the encoder's).
	Sum *Node
	// Inputs[i] is r_i, what stage i quantised (r_0 = z); Entries[i] its
	// codebook entries e_{i+1}; Codes[i] their indices, int32 [B, L].
	Inputs, Entries, Codes []*Node
}

// ResidualQuantize quantises z [..., C] with the codebooks books ([K, C]
// each) in turn, each stage the residual of the stages before it
// (SoundStream, Algorithm 1), reusing vae.Quantize for every stage.
func ResidualQuantize(z *Node, books []*Node) *Residual {
	q := &Residual{}
	r := z
	for _, book := range books {
		e, codes := vae.Quantize(r, book)
		q.Inputs, q.Entries, q.Codes = append(q.Inputs, r), append(q.Entries, e), append(q.Codes, codes)
		if q.Sum == nil {
			q.Sum = e
		} else {
			q.Sum = Add(q.Sum, e)
		}
		r = Sub(r, e)
	}
	return q
}

// ResidualQuantize quantises encoder outputs z [B, L, Channels] with the
// tokenizer's codebooks.
func (c Config) ResidualQuantize(w nn.Weights, z *Node) *Residual {
	books := make([]*Node, c.Codebooks)
	for i := range books {
		books[i] = w.Get("%s", CodebookName(i))
	}
	return ResidualQuantize(z, books)
}

// CommitLoss is Σ_i mean‖r_i − sg(e_{i+1})‖² (vae.CommitLoss per stage):
// its gradient pulls the encoder's output toward ẑ, stage by stage.
func (q *Residual) CommitLoss() *Node {
	var sum *Node
	for i := range q.Inputs {
		sum = addOr(sum, vae.CommitLoss(q.Inputs[i], q.Entries[i]))
	}
	return sum
}

// Paths of the moving averages of codebook i in a training store (not
// weights: they are saved with the training state only), N_k and m_k of
// vae.CodebookEMA.
func clusterSizePath(i int) string { return fmt.Sprintf("/rvq/%d/cluster_size", i) }
func embedSumPath(i int) string    { return fmt.Sprintf("/rvq/%d/embed_sum", i) }

// PrepareTraining readies a training store for Loss and UpdateCodebooks
// (kind vq; other kinds need nothing): the codebooks are taken out of the
// optimiser's hands (the moving averages set them) and their averages are
// created unless a resumed state holds them. With restarts, every code
// starts dead (N_k = 0, m_k = 0), so the first step seeds the codebooks
// with residuals of the batch, a cheap stand-in for SoundStream's k-means
// initialisation on the first batch (§3.3); without, N_k = 1 and
// m_k = e_k, so that e = m/N starts at the initial entries.
func (c Config) PrepareTraining(store *model.Store) error {
	if c.Kind != vae.VQ {
		return nil
	}
	for i := range c.Codebooks {
		book := store.GetVariable(nn.WeightsScope + "/" + CodebookName(i))
		if book == nil {
			return fmt.Errorf("speech-vae: the store has no %s", CodebookName(i))
		}
		book.SetTrainable(false)
		if store.GetVariable(clusterSizePath(i)) != nil && store.GetVariable(embedSumPath(i)) != nil {
			continue
		}
		size := make([]float32, c.CodebookSize)
		sum := make([]float32, c.CodebookSize*c.Channels)
		if c.RestartBelow == 0 {
			val, err := book.Value()
			if err != nil {
				return fmt.Errorf("speech-vae: reading %s: %w", CodebookName(i), err)
			}
			sum = tensors.MustCopyFlatData[float32](val)
			for k := range size {
				size[k] = 1
			}
		}
		for _, v := range []struct {
			path string
			t    *tensors.Tensor
		}{{clusterSizePath(i), tensors.FromFlatDataAndDimensions(size, c.CodebookSize)},
			{embedSumPath(i), tensors.FromFlatDataAndDimensions(sum, c.CodebookSize, c.Channels)}} {
			variable, err := store.CreateVariable(v.path, v.t)
			if err != nil {
				return fmt.Errorf("speech-vae: codebook %d state: %w", i, err)
			}
			variable.SetTrainable(false)
		}
	}
	return nil
}

// UpdateCodebooks adds to the training graph the moving-average update of
// every codebook from the residuals it was given this step
// (vae.CodebookEMA), then the restart of its dead codes from those
// residuals drawn with the store's RNG (vae.RestartDead) when RestartBelow
// > 0. It returns the number of codes restarted in all codebooks. The
// store must have been readied by PrepareTraining; a missing state panics
// with an error, which the graph builder returns.
func (c Config) UpdateCodebooks(scope *model.Scope, q *Residual) *Node {
	store, g := scope.Store(), q.Sum.Graph()
	restarted := ScalarZero(g, q.Sum.DType())
	for i := range c.Codebooks {
		bookV := store.GetVariable(nn.WeightsScope + "/" + CodebookName(i))
		sizeV, sumV := store.GetVariable(clusterSizePath(i)), store.GetVariable(embedSumPath(i))
		if c.Kind != vae.VQ || bookV == nil || sizeV == nil || sumV == nil || len(q.Inputs) != c.Codebooks {
			panic(fmt.Errorf("speech-vae: UpdateCodebooks needs a rvq tokenizer and a store readied by PrepareTraining (codebook %d)", i))
		}
		r := q.Inputs[i]
		size, sum, book := vae.CodebookEMA(sizeV.NodeValue(g), sumV.NodeValue(g), r, q.Codes[i], c.CodebookDecay)
		if c.RestartBelow > 0 {
			m := r.Shape().Size() / c.Channels
			u := scope.RandomUniform(g, nn.Shape(dtypes.Float32, c.CodebookSize))
			pick := ConvertDType(MinScalar(Floor(MulScalar(u, float64(m))), float64(m-1)), dtypes.Int32)
			var n *Node
			book, size, sum, n = vae.RestartDead(book, size, sum, r, pick, c.RestartBelow)
			restarted = Add(restarted, n)
		}
		bookV.SetNodeValue(book)
		sizeV.SetNodeValue(size)
		sumV.SetNodeValue(sum)
	}
	return restarted
}

// TrainingMetrics names what TrainingOutputs adds to the progress bar and
// the history: for kind vq the batch's code perplexity of the first
// codebook and the mean over codebooks (vae.CodePerplexity), and the codes
// restarted; with an AdvWeight the two players' adversarial losses.
func (c Config) TrainingMetrics() []string {
	var names []string
	if c.Kind == vae.VQ {
		names = []string{"ppl1", "ppl", "restarts"}
	}
	if c.AdvWeight > 0 {
		names = append(names, "adv_g", "adv_d")
	}
	return names
}

// TrainingOutputs adds to the training graph what kind vq needs beyond the
// losses (UpdateCodebooks) and the metrics TrainingMetrics names.
func (c Config) TrainingOutputs(scope *model.Scope, l Losses) []*Node {
	var out []*Node
	if c.Kind == vae.VQ && l.Quantized != nil {
		var mean *Node
		for _, codes := range l.Quantized.Codes {
			mean = addOr(mean, vae.CodePerplexity(codes, c.CodebookSize))
		}
		first := vae.CodePerplexity(l.Quantized.Codes[0], c.CodebookSize)
		mean = DivScalar(mean, float64(c.Codebooks))
		out = []*Node{first, mean, c.UpdateCodebooks(scope, l.Quantized)}
	}
	if c.AdvWeight > 0 {
		out = append(out, l.AdvGen, l.AdvDisc)
	}
	return out
}

// CodedUtterance is what the residual quantiser makes of one utterance.
type CodedUtterance struct {
	// Codes holds Codebooks indices per latent frame, first codebook first.
	Codes [][]int32
	// ResidualRMS[i] is the root mean square over frames of ‖r_i‖, the
	// part of the encoder's output that i codebooks leave unexplained
	// (ResidualRMS[0] = ‖z‖): it shrinks with every codebook.
	ResidualRMS []float64
}

// Quantize encodes 16 kHz samples with a rvq tokenizer into codes (one
// row of Codebooks indices per latent frame, Latents(len(samples)) rows),
// with the norms of the residuals stage by stage.
func (m *Model) Quantize(samples []float32) (*CodedUtterance, error) {
	c := m.Config
	if c.Kind != vae.VQ {
		return nil, fmt.Errorf("speech-vae: a %v tokenizer has no codes (only kind rvq)", c.Kind)
	}
	if m.encode == nil {
		return nil, errClosed
	}
	if len(samples) == 0 {
		return nil, fmt.Errorf("speech-vae: encoding codes: no samples")
	}
	books, err := m.Codebooks()
	if err != nil {
		return nil, err
	}
	if m.codes == nil {
		m.codes, err = model.NewExec(m.backend, m.Store, func(scope *model.Scope, x *Node) []*Node {
			w := nn.WeightsOf(scope.Store(), x.Graph())
			mu, _ := c.Encode(w, x)
			q := c.ResidualQuantize(w, mu)
			cols := make([]*Node, len(q.Codes))
			for i, codes := range q.Codes {
				cols[i] = InsertAxes(codes, -1)
			}
			return []*Node{Concatenate(cols, -1), mu}
		})
		if err != nil {
			return nil, fmt.Errorf("speech-vae: encoding codes: %w", err)
		}
		m.codes.SetMaxCache(c.lengthShapes())
	}
	buf, lb := c.padded(samples)
	x, err := c.Inputs(buf)
	if err != nil {
		return nil, err
	}
	in := tensors.FromFlatDataAndDimensions(x, 1, lb, c.InputWidth())
	out, err := m.codes.Call(in)
	nn.Release(in)
	if err != nil {
		return nil, fmt.Errorf("speech-vae: encoding codes: %w", err)
	}
	defer nn.Release(out[0], out[1])
	flatCodes := tensors.MustCopyFlatData[int32](out[0])
	mu := tensors.MustCopyFlatData[float32](out[1])
	n, ch := c.Latents(len(samples)), c.Channels
	q := &CodedUtterance{Codes: make([][]int32, n), ResidualRMS: make([]float64, c.Codebooks+1)}
	r := make([]float64, ch)
	for t := range n {
		q.Codes[t] = flatCodes[t*c.Codebooks : (t+1)*c.Codebooks : (t+1)*c.Codebooks]
		for k := range r {
			r[k] = float64(mu[t*ch+k])
		}
		for i := 0; ; i++ {
			var s float64
			for _, v := range r {
				s += v * v
			}
			q.ResidualRMS[i] += s
			if i == c.Codebooks {
				break
			}
			e := books[i][int(q.Codes[t][i])*ch:]
			for k := range r {
				r[k] -= float64(e[k])
			}
		}
	}
	for i := range q.ResidualRMS {
		q.ResidualRMS[i] = math.Sqrt(q.ResidualRMS[i] / float64(n))
	}
	return q, nil
}

// Codes is the code part of Quantize: the discrete tokens of an utterance.
func (m *Model) Codes(samples []float32) ([][]int32, error) {
	q, err := m.Quantize(samples)
	if err != nil {
		return nil, err
	}
	return q.Codes, nil
}

// Codebooks copies the codebooks of a rvq tokenizer out of its store, each
// CodebookSize × Channels values row-major. They are read by path, not
// among the trainable weights: in a training store they follow moving
// averages and are not trainable.
func (m *Model) Codebooks() ([][]float32, error) {
	c := m.Config
	if c.Kind != vae.VQ {
		return nil, fmt.Errorf("speech-vae: a %v tokenizer has no codebooks (only kind rvq)", c.Kind)
	}
	books := make([][]float32, c.Codebooks)
	for i := range books {
		v := m.Store.GetVariable(nn.WeightsScope + "/" + CodebookName(i))
		if v == nil {
			return nil, fmt.Errorf("speech-vae: the store has no %s", CodebookName(i))
		}
		val, err := v.Value()
		if err != nil {
			return nil, fmt.Errorf("speech-vae: reading %s: %w", CodebookName(i), err)
		}
		if books[i] = tensors.MustCopyFlatData[float32](val); len(books[i]) != c.CodebookSize*c.Channels {
			return nil, fmt.Errorf("speech-vae: %s holds %d values, want %d×%d", CodebookName(i), len(books[i]), c.CodebookSize, c.Channels)
		}
	}
	return books, nil
}

// CodeLatents maps codes (rows of Codebooks indices, as Codes gives them;
// a row may hold fewer, the first codebooks only, whose sum is then the
// coarser latent) to normalised latents (Σ_i e_i − mean)/std, ready for
// Decode: what Encode returns for the samples the codes came from.
func (m *Model) CodeLatents(codes [][]int32) ([][]float32, error) {
	c := m.Config
	books, err := m.Codebooks()
	if err != nil {
		return nil, err
	}
	out := make([][]float32, len(codes))
	for t, row := range codes {
		if len(row) == 0 || len(row) > c.Codebooks {
			return nil, fmt.Errorf("speech-vae: frame %d has %d codes, want 1…%d", t, len(row), c.Codebooks)
		}
		z := make([]float32, c.Channels)
		for i, k := range row {
			if k < 0 || int(k) >= c.CodebookSize {
				return nil, fmt.Errorf("speech-vae: frame %d: code %d of codebook %d is outside 0…%d", t, k, i, c.CodebookSize-1)
			}
			for ch, v := range books[i][int(k)*c.Channels : (int(k)+1)*c.Channels] {
				z[ch] += v
			}
		}
		for ch := range z {
			z[ch] = (z[ch] - m.Mean[ch]) / m.Std[ch]
		}
		out[t] = z
	}
	return out, nil
}
