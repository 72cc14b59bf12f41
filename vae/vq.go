package vae

import (
	"errors"
	"fmt"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/nn"
)

// The codebook of kind vq can be learnt in two ways (Config.CodebookDecay):
// by the gradient of the codebook loss (VQLoss; van den Oord et al. 2017,
// eq. 3), or by exponential moving averages of the encoder outputs each
// code is given (van den Oord et al. 2017, appendix A.1; Razavi et al.
// 2019, “Generating Diverse High-Fidelity Images with VQ-VAE-2”,
// https://arxiv.org/abs/1906.00446, §3.1), with dead codes re-seeded from
// the encoder outputs of the batch (the “random restarts” of Dhariwal et
// al. 2020, Jukebox, https://arxiv.org/abs/2005.00341, §2.2). The gradient
// alone let a smoke run collapse onto 7 of 64 codes: a code that no encoder
// output chooses gets no gradient and never moves. The EMA keeps each code
// at the mean of what it is given, and a restart puts an unused code where
// the data are.

// Paths of the EMA state of the codebook, non-trainable variables of the
// training store (saved with the training state, so that a resumed run
// continues exactly): N_k, the moving count of the encoder outputs given to
// code k, and m_k, the moving sum of those outputs.
const (
	ClusterSizePath = "/vq/cluster_size"
	EmbedSumPath    = "/vq/embed_sum"
)

// DefaultCodebookDecay is the decay γ of the codebook's moving averages of
// `vae train --kind vq`: 0.99, the value of van den Oord et al. 2017
// (appendix A.1) and Razavi et al. 2019.
const DefaultCodebookDecay = 0.99

// DefaultRestartBelow is the restart threshold τ of `vae train --kind vq`:
// a code whose moving count N_k falls below one encoder output per batch is
// dead and restarted, the threshold of Jukebox (Dhariwal et al. 2020, §2.2).
const DefaultRestartBelow = 1.0

// laplaceEps is the additive smoothing ε of the cluster sizes (Sonnet's
// VectorQuantizerEMA): N̂_k = (N_k + ε)/(n + K·ε)·n never reaches 0.
const laplaceEps = 1e-5

// Quantize is the vector quantiser of VQ-VAE (van den Oord et al. 2017,
// §3.1): every latent vector of z [..., C] is replaced by its nearest entry
// of codebook [K, C] in Euclidean distance. The distances come from one
// matrix product, ‖z − e_k‖² = ‖z‖² − 2·z·e_k + ‖e_k‖² (‖z‖² dropped: it
// does not change the argmin), the index from ArgMin, and the entry from a
// one-hot product with the codebook (a gather whose gradient is a matrix
// product, which every backend has). It returns the entries e, shaped as
// z, through which the gradient reaches the codebook only, and the codes
// int32 [...], z's shape without its last axis. See StraightThrough and
// VQLoss for training.
func Quantize(z, codebook *Node) (e, codes *Node) {
	dims := z.Shape().Dimensions
	k, ch := codebook.Shape().Dimensions[0], codebook.Shape().Dimensions[1]
	flat := Reshape(z, -1, ch)
	dist := Sub(InsertAxes(ReduceSum(Square(codebook), 1), 0), MulScalar(nn.Linear(flat, codebook), 2))
	codes = ArgMin(StopGradient(dist), -1, dtypes.Int32)
	e = MatMul(OneHot(codes, k, codebook.DType()), codebook)
	return Reshape(e, dims...), Reshape(codes, dims[:len(dims)-1]...)
}

// StraightThrough is the straight-through estimator of VQ-VAE (van den
// Oord et al. 2017, §3.2): z_q = z + sg(e − z), whose value is the code e
// and whose gradient with respect to z is the gradient with respect to z_q,
// copied past the non-differentiable quantiser.
func StraightThrough(z, e *Node) *Node { return Add(z, StopGradient(Sub(e, z))) }

// VQLoss is the latent term of VQ-VAE (van den Oord et al. 2017, eq. 3):
// the codebook loss mean(‖sg(z) − e‖²), which moves the codes toward the
// encoder's outputs, plus β times the commitment loss (CommitLoss), which
// keeps the encoder near its codes (means over all elements).
func VQLoss(z, e *Node, beta float64) *Node {
	codebook := ReduceAllMean(Square(Sub(StopGradient(z), e)))
	return Add(codebook, MulScalar(CommitLoss(z, e), beta))
}

// CommitLoss is the commitment loss mean(‖z − sg(e)‖²) of van den Oord et
// al. 2017 (eq. 3, third term): the whole latent term when the codebook
// follows moving averages (CodebookEMA) instead of the codebook loss.
func CommitLoss(z, e *Node) *Node { return ReduceAllMean(Square(Sub(z, StopGradient(e)))) }

// CodebookEMA is one update of the codebook by moving averages (van den
// Oord et al. 2017, appendix A.1, eqs. 6–8). With n_k the number of the
// vectors of z [..., C] whose code (codes [...], as Quantize gives them) is
// k, and s_k their sum:
//
//	N_k ← γ·N_k + (1 − γ)·n_k,   m_k ← γ·m_k + (1 − γ)·s_k,
//	e_k = m_k / N̂_k,   N̂_k = (N_k + ε)/(n + K·ε)·n,   n = Σ_k N_k,
//
// where N̂ is N with Laplace smoothing (ε = 1e-5, as Sonnet's
// VectorQuantizerEMA), so that a code no vector chooses keeps a finite
// entry. size is N [K], sum is m [K, C]; it returns the new N, m and
// codebook e [K, C]. No gradient flows through it.
func CodebookEMA(size, sum, z, codes *Node, decay float64) (newSize, newSum, book *Node) {
	k, ch := sum.Shape().Dimensions[0], sum.Shape().Dimensions[1]
	flat := StopGradient(Reshape(z, -1, ch))
	oneHot := OneHot(Reshape(codes, -1), k, flat.DType())          // [M, K]
	counts := ReduceSum(oneHot, 0)                                 // n_k
	sums := DotGeneral(oneHot, []int{0}, nil, flat, []int{0}, nil) // s_k, [K, C]
	newSize = Add(MulScalar(size, decay), MulScalar(counts, 1-decay))
	newSum = Add(MulScalar(sum, decay), MulScalar(sums, 1-decay))
	n := ReduceAllSum(newSize)
	smoothed := Mul(Div(AddScalar(newSize, laplaceEps), AddScalar(n, float64(k)*laplaceEps)), n)
	return newSize, newSum, Div(newSum, InsertAxes(smoothed, -1))
}

// RestartDead re-seeds the dead codes, those whose moving count N_k (size
// [K]) is below threshold, with encoder outputs of the batch: code k
// becomes the vector pick[k] of z [..., C] flattened to [M, C] (pick is
// int32 [K] in [0, M), drawn at random by UpdateCodebook), the “random
// restarts” of Jukebox (Dhariwal et al. 2020, §2.2). A restarted code's
// moving count is set to the threshold and its moving sum to threshold
// times its new entry, so that e_k = m_k/N_k is that entry and the code
// must win about threshold vectors per batch from now on to stay. It
// returns the new codebook, N and m, and the number of codes restarted
// (a float scalar).
func RestartDead(book, size, sum, z, pick *Node, threshold float64) (newBook, newSize, newSum, restarted *Node) {
	k, ch := book.Shape().Dimensions[0], book.Shape().Dimensions[1]
	flat := StopGradient(Reshape(z, -1, ch))
	cand := Gather(flat, InsertAxes(ConvertDType(pick, dtypes.Int64), -1)) // [K, C]
	dead := LessThan(size, Scalar(size.Graph(), size.DType(), threshold))  // [K]
	deadRows := BroadcastToDims(InsertAxes(dead, -1), k, ch)
	newBook = Where(deadRows, cand, book)
	newSize = Where(dead, FillScalar(size.Graph(), size.Shape(), threshold), size)
	newSum = Where(deadRows, MulScalar(cand, threshold), sum)
	return newBook, newSize, newSum, ReduceAllSum(ConvertDType(dead, size.DType()))
}

// CodebookEMAEnabled says whether a tokenizer's codebook follows moving
// averages (kind vq with CodebookDecay > 0) instead of its gradient.
func (c Config) CodebookEMAEnabled() bool { return c.Kind == VQ && c.CodebookDecay > 0 }

// PrepareTraining readies a training store for Config.Loss and
// UpdateCodebook. For a codebook that follows moving averages it takes the
// codebook out of the optimiser's hands (not trainable: Adam's step and
// weight decay would fight the averages) and creates the EMA state,
// N_k = 1 and m_k = e_k (so that e = m/N starts at the initial codebook),
// unless a resumed training state already holds it. Other tokenizers need
// nothing. Call it after the weights exist and before train.New.
func (c Config) PrepareTraining(store *model.Store) error {
	if !c.CodebookEMAEnabled() {
		return nil
	}
	book := store.GetVariable(nn.WeightsScope + "/" + CodebookWeight)
	if book == nil {
		return fmt.Errorf("vae: the store has no %s", CodebookWeight)
	}
	book.SetTrainable(false)
	if store.GetVariable(ClusterSizePath) == nil {
		ones := make([]float32, c.Codebook)
		for i := range ones {
			ones[i] = 1
		}
		v, err := store.CreateVariable(ClusterSizePath, tensors.FromFlatDataAndDimensions(ones, c.Codebook))
		if err != nil {
			return fmt.Errorf("vae: codebook state: %w", err)
		}
		v.SetTrainable(false)
	}
	if store.GetVariable(EmbedSumPath) == nil {
		clone, err := nn.CopyValue(book)
		if err != nil {
			return fmt.Errorf("vae: reading the codebook: %w", err)
		}
		v, err := store.CreateVariable(EmbedSumPath, clone)
		if err != nil {
			return fmt.Errorf("vae: codebook state: %w", err)
		}
		v.SetTrainable(false)
	}
	return nil
}

// UpdateCodebook adds to the training graph being built the update of a
// codebook that follows moving averages (CodebookEMA), then, when
// RestartBelow > 0, the restart of its dead codes from encoder outputs of
// the batch drawn uniformly with the store's RNG (RestartDead). z are the
// encoder outputs (Losses.Mu) and codes their codes (Losses.Codes). It
// returns the number of codes restarted (0 without restarts). The store
// must have been readied by PrepareTraining; a missing state panics with an
// error, which the graph builder returns.
func (c Config) UpdateCodebook(scope *model.Scope, z, codes *Node) *Node {
	store, g := scope.Store(), z.Graph()
	bookV := store.GetVariable(nn.WeightsScope + "/" + CodebookWeight)
	sizeV, sumV := store.GetVariable(ClusterSizePath), store.GetVariable(EmbedSumPath)
	if !c.CodebookEMAEnabled() || bookV == nil || sizeV == nil || sumV == nil {
		panic(errors.New("vae: UpdateCodebook needs a vq tokenizer with codebook_decay > 0 and a store readied by PrepareTraining"))
	}
	size, sum, book := CodebookEMA(sizeV.NodeValue(g), sumV.NodeValue(g), z, codes, c.CodebookDecay)
	restarted := ScalarZero(g, z.DType())
	if c.RestartBelow > 0 {
		m := z.Shape().Size() / c.Channels
		u := scope.RandomUniform(g, nn.Shape(dtypes.Float32, c.Codebook))
		pick := ConvertDType(MinScalar(Floor(MulScalar(u, float64(m))), float64(m-1)), dtypes.Int32)
		book, size, sum, restarted = RestartDead(book, size, sum, z, pick, c.RestartBelow)
	}
	bookV.SetNodeValue(book)
	sizeV.SetNodeValue(size)
	sumV.SetNodeValue(sum)
	return restarted
}

// CodePerplexity is exp(H(p)) of the frequencies p of the codes [...] of a
// batch among k entries (natural log): how many codes the batch uses as if
// uniformly, from 1 (one code) to k; evaluate.CodeUsage is the same over a
// whole test set.
func CodePerplexity(codes *Node, k int) *Node {
	oneHot := OneHot(Reshape(codes, -1), k, dtypes.Float32)
	p := DivScalar(ReduceSum(oneHot, 0), float64(oneHot.Shape().Dimensions[0]))
	return Exp(Neg(ReduceAllSum(Mul(p, Log(MaxScalar(p, 1e-30))))))
}
