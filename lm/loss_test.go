package lm

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/diffusion"
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
	diff := c.diffusionLoss(scope, w, h, next.Latents, Mul(next.IsLatent, nextValid), sched, batchMul)
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
	if err := store.SetRNGStateFromSeed(5); err != nil {
		t.Fatal(err)
	}
	outs, err := model.CallOnceN(testutil.Backend(t, ""), store, func(scope *model.Scope, in []*Node) []*Node {
		w := nn.WeightsOf(scope.Store(), in[0].Graph())
		var mark *Node
		if len(in) > 4 {
			mark = in[4]
		}
		l := fn(scope, w, Items{Ids: in[0], Latents: in[1], IsLatent: in[2]}, in[3], mark)
		return []*Node{l.Total, l.CE, l.Diffusion}
	}, lc.args(withMark)...)
	if err != nil {
		t.Fatal(err)
	}
	var r [3]float32
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
