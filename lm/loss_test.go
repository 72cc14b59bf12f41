package lm

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/internal/flopcount"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/nn"
)

// lossBefore is Config.Loss as it was before LossOptions existed, kept here
// to prove that the objective without options did not change.
func lossBefore(c Config, scope *model.Scope, w nn.Weights, it Items, valid *Node, sched *diffusion.Schedule, batchMul int) Losses {
	g := valid.Graph()
	length := it.Ids.Shape().Dimensions[1]
	h, _ := c.Backbone(w, it.Slice(0, length-1), Positions(g, dtypes.Float32, 0, length-1), nil)
	next := it.Slice(1, length)
	nextValid := SliceAxis(valid, 1, AxisRange(1, length))
	tokenMask := Mul(OneMinus(next.IsLatent), nextValid)
	ce := nn.CrossEntropy(c.Logits(w, h), next.Ids, tokenMask)
	diff := c.diffusionLoss(scope, w, h, next.Latents, Mul(next.IsLatent, nextValid), sched, batchMul, LossOptions{})
	return Losses{Total: Add(ce, diff), CE: ce, Diffusion: diff}
}

// lossCase is a batch of mixed sequences with padding, and a LatentTokens
// mask over some of its latents, whose Ids hold the id to predict there.
type lossCase struct {
	cfg                     Config
	batch, length           int
	ids                     []int32
	lat, isLat, valid, mark []float32
}

func newLossCase() lossCase {
	cfg := tinyConfig()
	const batch, length = 3, 9
	ids, lat, isLat := randomItems(cfg, batch, length, rand.New(rand.NewPCG(7, 8)))
	valid := make([]float32, batch*length)
	mark := make([]float32, batch*length)
	for b := range batch {
		for i := range length - b { // row b has b items of padding
			valid[b*length+i] = 1
		}
		for i := 2; i < length; i += 2 {
			k := b*length + i
			if isLat[k] == 1 {
				mark[k] = 1
				ids[k] = int32(cfg.Vocab.EOL() - b%2) // <EOL> or <BOL>
			}
		}
	}
	return lossCase{cfg, batch, length, ids, lat, isLat, valid, mark}
}

func (lc lossCase) args(withMark bool) []any {
	a := []any{
		tensors.FromFlatDataAndDimensions(lc.ids, lc.batch, lc.length),
		tensors.FromFlatDataAndDimensions(lc.lat, lc.batch, lc.length, lc.cfg.Latent),
		tensors.FromFlatDataAndDimensions(lc.isLat, lc.batch, lc.length),
		tensors.FromFlatDataAndDimensions(lc.valid, lc.batch, lc.length),
	}
	if withMark {
		a = append(a, tensors.FromFlatDataAndDimensions(lc.mark, lc.batch, lc.length))
	}
	return a
}

// losses runs fn's objective with the store's generator reset to seed 5,
// so that every variant draws the same diffusion noise.
func losses(t *testing.T, store *model.Store, lc lossCase, withMark bool, fn func(scope *model.Scope, w nn.Weights, it Items, valid, mark *Node) Losses) [3]float32 {
	t.Helper()
	r := lossTerms(t, store, lc.args(withMark), func(scope *model.Scope, w nn.Weights, in []*Node) Losses {
		var mark *Node
		if len(in) > 4 {
			mark = in[4]
		}
		return fn(scope, w, Items{Ids: in[0], Latents: in[1], IsLatent: in[2]}, in[3], mark)
	})
	return [3]float32(r[:3])
}

// lossTerms evaluates the terms fn builds from the inputs args with the
// store's RNG seeded at 5: Total, CE, Diffusion and Align (0 without).
func lossTerms(t *testing.T, store *model.Store, args []any, fn func(scope *model.Scope, w nn.Weights, in []*Node) Losses) [4]float32 {
	t.Helper()
	if err := store.SetRNGStateFromSeed(5); err != nil {
		t.Fatal(err)
	}
	outs, err := model.CallOnceN(testutil.Backend(t, ""), store, func(scope *model.Scope, in []*Node) []*Node {
		l := fn(scope, nn.WeightsOf(scope.Store(), in[0].Graph()), in)
		align := l.Align
		if align == nil {
			align = ZerosLike(l.Total)
		}
		return []*Node{l.Total, l.CE, l.Diffusion, align}
	}, args...)
	if err != nil {
		t.Fatal(err)
	}
	var r [4]float32
	for i := range r {
		r[i] = tensors.ToScalar[float32](outs[i])
	}
	return r
}

// TestLossWithoutOptionsUnchanged: Loss, and LossWith without options,
// give bit for bit the objective of the code before LossOptions existed, so
// every model, test and golden value trained without them is unchanged;
// an all-zero LatentTokens mask gives the same numbers too.
func TestLossWithoutOptionsUnchanged(t *testing.T) {
	lc := newLossCase()
	cfg := lc.cfg
	store := randomStore(t, cfg, 0.1, dtypes.Float32)
	sched := diffusion.Cosine(1000)
	before := losses(t, store, lc, false, func(scope *model.Scope, w nn.Weights, it Items, valid, _ *Node) Losses {
		return lossBefore(cfg, scope, w, it, valid, sched, 2)
	})
	now := losses(t, store, lc, false, func(scope *model.Scope, w nn.Weights, it Items, valid, _ *Node) Losses {
		return cfg.Loss(scope, w, it, valid, sched, 2)
	})
	with := losses(t, store, lc, false, func(scope *model.Scope, w nn.Weights, it Items, valid, _ *Node) Losses {
		return cfg.LossWith(scope, w, it, valid, sched, 2, LossOptions{})
	})
	lc0 := lc
	lc0.mark = make([]float32, len(lc.mark))
	zero := losses(t, store, lc0, true, func(scope *model.Scope, w nn.Weights, it Items, valid, mark *Node) Losses {
		return cfg.LossWith(scope, w, it, valid, sched, 2, LossOptions{LatentTokens: mark})
	})
	if now != before || with != before {
		t.Errorf("objective changed: before %v, Loss %v, LossWith without options %v", before, now, with)
	}
	if zero != before {
		t.Errorf("an all-zero LatentTokens mask changed the objective: %v, want %v", zero, before)
	}
}

// TestLatentTokensTrainSoftmaxAtLatents: with LatentTokens, the
// cross-entropy is the mean of −log p over the token targets and the
// marked latents' ids, computed here on the host from the logits; the
// diffusion term is unchanged.
func TestLatentTokensTrainSoftmaxAtLatents(t *testing.T) {
	lc := newLossCase()
	cfg := lc.cfg
	store := randomStore(t, cfg, 0.1, dtypes.Float32)
	sched := diffusion.Cosine(1000)
	plain := losses(t, store, lc, false, func(scope *model.Scope, w nn.Weights, it Items, valid, _ *Node) Losses {
		return cfg.Loss(scope, w, it, valid, sched, 2)
	})
	marked := losses(t, store, lc, true, func(scope *model.Scope, w nn.Weights, it Items, valid, mark *Node) Losses {
		return cfg.LossWith(scope, w, it, valid, sched, 2, LossOptions{LatentTokens: mark})
	})
	if marked[2] != plain[2] {
		t.Errorf("diffusion term %v with LatentTokens, %v without: it must not change", marked[2], plain[2])
	}

	// The host's cross-entropy from the logits of the items before the last.
	l := lc.length
	out, err := model.CallOnce(testutil.Backend(t, ""), store, func(scope *model.Scope, ids, lat, isLat *Node) *Node {
		w := nn.WeightsOf(scope.Store(), ids.Graph())
		it := Items{Ids: ids, Latents: lat, IsLatent: isLat}.Slice(0, l-1)
		h, _ := cfg.Backbone(w, it, Positions(ids.Graph(), dtypes.Float32, 0, l-1), nil)
		return cfg.Logits(w, h)
	}, lc.args(false)[:3]...)
	if err != nil {
		t.Fatal(err)
	}
	logits := tensors.MustCopyFlatData[float32](out)
	v := cfg.Vocab.Size()
	ce := func(withMark bool) (float64, int) {
		var sum float64
		n := 0
		for b := range lc.batch {
			for i := range l - 1 {
				k := b*l + i + 1 // the predicted item
				if lc.valid[k] == 0 {
					continue
				}
				if lc.isLat[k] == 1 && !(withMark && lc.mark[k] == 1) {
					continue
				}
				row := logits[(b*(l-1)+i)*v : (b*(l-1)+i+1)*v]
				m := math.Inf(-1)
				for _, x := range row {
					m = math.Max(m, float64(x))
				}
				var z float64
				for _, x := range row {
					z += math.Exp(float64(x) - m)
				}
				sum += -(float64(row[lc.ids[k]]) - m - math.Log(z))
				n++
			}
		}
		return sum / float64(n), n
	}
	wantPlain, nPlain := ce(false)
	wantMarked, nMarked := ce(true)
	if nMarked <= nPlain {
		t.Fatalf("the test marks no latent: %d targets with marks, %d without", nMarked, nPlain)
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"without LatentTokens", float64(plain[1]), wantPlain}, {"with LatentTokens", float64(marked[1]), wantMarked}} {
		if math.Abs(c.got-c.want) > 1e-5*math.Max(1, math.Abs(c.want)) {
			t.Errorf("cross-entropy %s: %.7f, host %.7f", c.name, c.got, c.want)
		}
	}
	t.Logf("cross-entropy over %d targets %.5f; with %d marked latents %.5f", nPlain, wantPlain, nMarked-nPlain, wantMarked)
}

// sparseLossCase is newLossCase with the targets of its last row and a
// half cut, so that HeadRows pads K and K stays below every position.
func sparseLossCase() lossCase {
	lc := newLossCase()
	for i := 3 * lc.length / 2; i < len(lc.valid); i++ {
		lc.valid[i] = 0
	}
	return lc
}

// TestHeadRowsSameObjective: with HeadRows the diffusion head runs on the
// gathered target rows alone, and the objective and every weight's
// gradient are those of the head run on every position, on the same noise
// draws (each gathered row takes the draws of the position it came from).
// The case's rows have padding and latents that are not targets, and K is
// padded past the targets.
func TestHeadRowsSameObjective(t *testing.T) {
	lc := sparseLossCase()
	cfg := lc.cfg
	const batchMul = 2
	pred := lc.length - 1
	n := lc.batch * pred
	rows, weights := HeadRows(lc.isLat, lc.valid, lc.batch, lc.length)
	targets := 0
	for b := range lc.batch {
		for i := 1; i < lc.length; i++ {
			if k := b*lc.length + i; lc.isLat[k] == 1 && lc.valid[k] == 1 {
				targets++
			}
		}
	}
	if k := len(rows); k != len(weights) || k <= targets || k >= n {
		t.Fatalf("HeadRows: %d rows, %d weights, for %d targets of %d positions: want padding, and fewer than every position", len(rows), len(weights), targets, n)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	ts := make([]int32, batchMul*n)
	eps := make([]float32, batchMul*n*cfg.Latent)
	for i := range ts {
		ts[i] = int32(rng.IntN(1000))
	}
	for i := range eps {
		eps[i] = float32(rng.NormFloat64())
	}
	k := len(rows)
	tsK := make([]int32, batchMul*k)
	epsK := make([]float32, batchMul*k*cfg.Latent)
	for j := range batchMul {
		for i, r := range rows {
			tsK[j*k+i] = ts[j*n+int(r)]
			copy(epsK[(j*k+i)*cfg.Latent:(j*k+i+1)*cfg.Latent], eps[(j*n+int(r))*cfg.Latent:])
		}
	}
	store := randomStore(t, cfg, 0.1, dtypes.Float32)
	sched := diffusion.Cosine(1000)
	run := func(gather bool) [][]float32 {
		t.Helper()
		args := lc.args(false)
		args = append(args, tensors.FromFlatDataAndDimensions(rows, k), tensors.FromFlatDataAndDimensions(weights, k))
		outs, err := model.CallOnceN(testutil.Backend(t, ""), store, func(scope *model.Scope, in []*Node) []*Node {
			g := in[0].Graph()
			w := nn.WeightsOf(scope.Store(), g)
			opts := LossOptions{noise: func(g *Graph, m int) (*Node, *Node) {
				if m == batchMul*k {
					return Const(g, tensors.FromFlatDataAndDimensions(tsK, m)), Const(g, tensors.FromFlatDataAndDimensions(epsK, m, cfg.Latent))
				}
				return Const(g, tensors.FromFlatDataAndDimensions(ts, m)), Const(g, tensors.FromFlatDataAndDimensions(eps, m, cfg.Latent))
			}}
			if gather {
				opts.HeadRows, opts.HeadRowWeights = in[4], in[5]
			}
			l := cfg.LossWith(scope, w, Items{Ids: in[0], Latents: in[1], IsLatent: in[2]}, in[3], sched, batchMul, opts)
			grads := scope.Store().Scope(nn.WeightsScope).BuildTrainableVariablesGradientsGraph(l.Total)
			return append([]*Node{l.CE, l.Diffusion}, grads...)
		}, args...)
		if err != nil {
			t.Fatal(err)
		}
		r := make([][]float32, len(outs))
		for i, o := range outs {
			r[i] = tensors.MustCopyFlatData[float32](o)
		}
		return r
	}
	full, gathered := run(false), run(true)
	if full[0][0] != gathered[0][0] {
		t.Errorf("cross-entropy %v with HeadRows, want %v", gathered[0][0], full[0][0])
	}
	if d, g := full[1][0], gathered[1][0]; math.Abs(float64(d-g)) > 1e-5*math.Abs(float64(d)) || d == 0 {
		t.Errorf("diffusion loss %v with HeadRows, want %v", g, d)
	}
	worst := 0.0
	for i := 2; i < len(full); i++ {
		for j := range full[i] {
			worst = max(worst, math.Abs(float64(full[i][j]-gathered[i][j])))
		}
	}
	if worst > 1e-5 {
		t.Errorf("gradients differ by up to %g with HeadRows", worst)
	}
	t.Logf("%d targets in %d head rows of %d positions; diffusion %v, gradients of %d weights within %g", targets, k, n, full[1][0], len(full)-2, worst)
}

// TestHeadRowBucket: the buckets hold n, grow by 2^(1/3) (and 8), never pass
// the limit, and stay few.
func TestHeadRowBucket(t *testing.T) {
	for _, limit := range []int{7, 100, 3952, 16384} {
		sizes := map[int]bool{}
		for n := 0; n <= limit; n++ {
			k := HeadRowBucket(n, limit)
			if k < n || k > limit {
				t.Fatalf("HeadRowBucket(%d, %d) = %d: want n ≤ K ≤ limit", n, limit, k)
			}
			if k > 16 && float64(k) > 1.26*float64(n)+8 {
				t.Fatalf("HeadRowBucket(%d, %d) = %d: more than 26%% of padding, plus 8", n, limit, k)
			}
			sizes[k] = true
		}
		if len(sizes) > 32 {
			t.Errorf("limit %d: %d sizes of K, more than an executable's 32 graphs", limit, len(sizes))
		}
	}
}

// TestForwardFLOPsRows: the matmul FLOPs that HeadRows saves, counted in
// the two loss graphs, are what ForwardFLOPsRows subtracts from
// ForwardFLOPs.
func TestForwardFLOPsRows(t *testing.T) {
	lc := sparseLossCase()
	cfg := lc.cfg
	const batchMul = 3
	rows, weights := HeadRows(lc.isLat, lc.valid, lc.batch, lc.length)
	store := randomStore(t, cfg, 0.1, dtypes.Float32)
	sched := diffusion.Cosine(1000)
	count := func(gather bool) float64 {
		var flops float64
		args := append(lc.args(false), tensors.FromFlatDataAndDimensions(rows, len(rows)), tensors.FromFlatDataAndDimensions(weights, len(rows)))
		if _, err := model.CallOnceN(testutil.Backend(t, ""), store, func(scope *model.Scope, in []*Node) []*Node {
			var opts LossOptions
			if gather {
				opts.HeadRows, opts.HeadRowWeights = in[4], in[5]
			}
			l := cfg.LossWith(scope, nn.WeightsOf(scope.Store(), in[0].Graph()), Items{Ids: in[0], Latents: in[1], IsLatent: in[2]}, in[3], sched, batchMul, opts)
			var err error
			if flops, err = flopcount.Matmul(in[0].Graph()); err != nil {
				t.Fatal(err)
			}
			return []*Node{l.Total}
		}, args...); err != nil {
			t.Fatal(err)
		}
		return flops
	}
	saved := count(false) - count(true)
	items := lc.length - 1 // the positions that predict
	want := cfg.ForwardFLOPs(lc.batch, items, batchMul) - cfg.ForwardFLOPsRows(lc.batch, items, len(rows), batchMul)
	if saved <= 0 || math.Abs(saved-want) > 1e-9*want {
		t.Errorf("HeadRows saves %g matmul FLOPs in the graph, ForwardFLOPsRows %g", saved, want)
	}
	if got := cfg.ForwardFLOPsRows(lc.batch, items, lc.batch*items, batchMul); got != cfg.ForwardFLOPs(lc.batch, items, batchMul) {
		t.Errorf("ForwardFLOPsRows over every position %g, ForwardFLOPs %g", got, cfg.ForwardFLOPs(lc.batch, items, batchMul))
	}
}

// TestInputLatents: with InputLatents the backbone reads them and the
// targets stay Items.Latents. The same latents as input give the objective
// of no option bit for bit, and so do inputs changed only at the last
// position (which no position reads); inputs changed where the backbone
// reads them change it, and differently from changing the targets too.
func TestInputLatents(t *testing.T) {
	lc := newLossCase()
	cfg := lc.cfg
	store := randomStore(t, cfg, 0.1, dtypes.Float32)
	sched := diffusion.Cosine(1000)
	c := cfg.Latent
	shifted := func(from int) []float32 { // lc.lat + 0.5 at positions ≥ from of every row
		out := slices.Clone(lc.lat)
		for b := range lc.batch {
			for i := from; i < lc.length; i++ {
				for j := range c {
					out[(b*lc.length+i)*c+j] += 0.5
				}
			}
		}
		return out
	}
	withInputs := func(in []float32) [3]float32 {
		return losses(t, store, lc, false, func(scope *model.Scope, w nn.Weights, it Items, valid, _ *Node) Losses {
			x := Const(valid.Graph(), tensors.FromFlatDataAndDimensions(in, lc.batch, lc.length, c))
			return cfg.LossWith(scope, w, it, valid, sched, 2, LossOptions{InputLatents: x})
		})
	}
	plain := losses(t, store, lc, false, func(scope *model.Scope, w nn.Weights, it Items, valid, _ *Node) Losses {
		return cfg.LossWith(scope, w, it, valid, sched, 2, LossOptions{})
	})
	same, lastOnly, read := withInputs(lc.lat), withInputs(shifted(lc.length-1)), withInputs(shifted(0))
	moved := lc
	moved.lat = shifted(0)
	both := losses(t, store, moved, false, func(scope *model.Scope, w nn.Weights, it Items, valid, _ *Node) Losses {
		return cfg.LossWith(scope, w, it, valid, sched, 2, LossOptions{})
	})
	t.Logf("objective (total, CE, diffusion): plain %v, same inputs %v, last input changed %v, inputs changed %v, inputs and targets changed %v", plain, same, lastOnly, read, both)
	if same != plain || lastOnly != plain {
		t.Errorf("inputs equal to the latents where read give %v and %v, want %v", same, lastOnly, plain)
	}
	if read[2] == plain[2] || read[1] == plain[1] {
		t.Errorf("inputs changed where the backbone reads them leave the objective at %v", read)
	}
	if read[2] == both[2] {
		t.Errorf("changing the targets as well as the inputs leaves the diffusion loss at %v: the targets are not Items.Latents", read[2])
	}
}

// TestGuide checks the guided attention term against cases whose answer
// is known: an all-zero guide leaves the objective bit for bit as it was
// (Align 0); a guide that is w on every key of n query rows gives
// Align = w·n·(guided layers), because each row's probabilities sum to 1;
// weights on keys after the query (masked out) give 0; and Total is the
// plain objective plus Align.
func TestGuide(t *testing.T) {
	lc := newLossCase()
	cfg := lc.cfg
	store := randomStore(t, cfg, 0.1, dtypes.Float32)
	sched := diffusion.Cosine(1000)
	guided := 0
	for i := range cfg.Depth {
		if cfg.GuidedLayer(i) {
			guided++
		}
	}
	if guided != cfg.GuidedLayers() {
		t.Fatalf("%d layers are guided, GuidedLayers says %d", guided, cfg.GuidedLayers())
	}
	if guided == 0 || cfg.GuidedLayer(0) {
		t.Fatalf("depth %d: %d guided layers, layer 0 guided %v", cfg.Depth, guided, cfg.GuidedLayer(0))
	}
	n, l := lc.batch, lc.length
	run := func(guide []float32) [4]float32 {
		args := append(lc.args(false), tensors.FromFlatDataAndDimensions(guide, n, l, l))
		return lossTerms(t, store, args, func(scope *model.Scope, w nn.Weights, in []*Node) Losses {
			return cfg.LossWith(scope, w, Items{Ids: in[0], Latents: in[1], IsLatent: in[2]}, in[3], sched, 2, LossOptions{Guide: in[4]})
		})
	}
	plain := losses(t, store, lc, false, func(scope *model.Scope, w nn.Weights, it Items, valid, _ *Node) Losses {
		return cfg.LossWith(scope, w, it, valid, sched, 2, LossOptions{})
	})
	zero := run(make([]float32, n*l*l))
	if [3]float32(zero[:3]) != plain || zero[3] != 0 {
		t.Errorf("an all-zero guide gives %v, want %v and 0", zero, plain)
	}

	const w = 0.25
	full := make([]float32, n*l*l)   // w on every key of rows (0, 3) and (2, 5)
	future := make([]float32, n*l*l) // 1 on every key after the query
	for _, q := range [][2]int{{0, 3}, {2, 5}} {
		for s := range l {
			full[(q[0]*l+q[1])*l+s] = w
		}
	}
	for b := range n {
		for q := range l {
			for s := q + 1; s < l; s++ {
				future[(b*l+q)*l+s] = 1
			}
		}
	}
	got := run(full)
	if want := float32(w * 2 * float64(guided)); math.Abs(float64(got[3]-want)) > 1e-5 {
		t.Errorf("guide %g on every key of 2 rows: Align %g, want %g", w, got[3], want)
	}
	if d := got[0] - (plain[0] + got[3]); math.Abs(float64(d)) > 1e-5 {
		t.Errorf("Total %g is not the plain objective %g plus Align %g", got[0], plain[0], got[3])
	}
	if a := run(future)[3]; math.Abs(float64(a)) > 1e-6 {
		t.Errorf("weights on masked keys give Align %g, want 0", a)
	}
}

// TestEngineAttention: the probabilities Engine.Attention reads for one
// sequence are causal rows that sum to 1, and weighted by a random guide
// they give the Align term the training objective computes for the same
// sequence through its own graph (the last guided layer alone guided
// there, by a guide that is zero in the other rows).
func TestEngineAttention(t *testing.T) {
	cfg := tinyConfig()
	cfg.Depth = 2 // layer 1 alone is guided
	store := randomStore(t, cfg, 0.1, dtypes.Float32)
	const length = 8
	ids, lat, isLat := randomItems(cfg, 1, length, rand.New(rand.NewPCG(3, 4)))
	items := make([]Item, length)
	for i := range items {
		if isLat[i] == 1 {
			items[i] = LatentItem(lat[i*cfg.Latent : (i+1)*cfg.Latent])
		} else {
			items[i] = TokenItem(int(ids[i]))
		}
	}
	e, err := NewEngine(testutil.Backend(t, ""), store, cfg, SampleOptions{Steps: 2, CFG: 1, Temperature: 1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.Attention(items, 2); err == nil {
		t.Error("layer 2 of 2 accepted")
	}
	probs, err := e.Attention(items[:length-1], 1) // the L−1 positions the objective reads
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	guide := make([]float32, length*length)
	want := 0.0
	for q, row := range probs[GuidedHead] {
		sum := 0.0
		for s, p := range row {
			sum += float64(p)
			if s > q && p != 0 {
				t.Errorf("query %d looks at later item %d (%g)", q, s, p)
			}
			g := rng.Float32()
			guide[q*length+s] = g
			want += float64(p) * float64(g)
		}
		if math.Abs(sum-1) > 1e-5 {
			t.Errorf("query %d: probabilities sum to %g", q, sum)
		}
	}
	if err := store.SetRNGStateFromSeed(5); err != nil {
		t.Fatal(err)
	}
	valid := make([]float32, length)
	for i := range valid {
		valid[i] = 1
	}
	out, err := model.CallOnce(testutil.Backend(t, ""), store, func(scope *model.Scope, in []*Node) *Node {
		w := nn.WeightsOf(scope.Store(), in[0].Graph())
		return cfg.LossWith(scope, w, Items{Ids: in[0], Latents: in[1], IsLatent: in[2]}, in[3], diffusion.Cosine(1000), 1, LossOptions{Guide: in[4]}).Align
	}, tensors.FromFlatDataAndDimensions(ids, 1, length), tensors.FromFlatDataAndDimensions(lat, 1, length, cfg.Latent),
		tensors.FromFlatDataAndDimensions(isLat, 1, length), tensors.FromFlatDataAndDimensions(valid, 1, length),
		tensors.FromFlatDataAndDimensions(guide, 1, length, length))
	if err != nil {
		t.Fatal(err)
	}
	if got := tensors.ToScalar[float32](out); math.Abs(float64(got)-want) > 1e-5*math.Max(1, want) {
		t.Errorf("Align of the objective %g, Σ p·guide of Engine.Attention %g", got, want)
	}
}
