package multimodal

import (
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/benchmark"
	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/vae"
)

// BenchmarkTrainStep times a training step of the comparison's small
// LatentLM (d128 × 4 blocks, the default head, batch 16, batch_mul 4, 80
// items a sequence, 7×7 latents of 16 channels: scripts/multimodal_compare.sh,
// SIZE=small) on rows in the default mixture's proportions (4 each of
// text, caption → image, image → caption and image + question → answer),
// with the diffusion head on every position ("every-position") and on the
// latent targets' rows alone ("head-rows", Batch.HeadRows, what training
// runs): the sub-benchmarks' ns/op give the speed-up in one run on one
// machine.
//
//	go test -run '^$' -bench TrainStep -benchtime 10x ./multimodal
func BenchmarkTrainStep(b *testing.B) {
	const batch, batchMul, length, items, channels = 16, 4, 80, 49, 16
	cfg := lm.DefaultConfig()
	cfg.Dim, cfg.Heads, cfg.KVHeads, cfg.Depth = 128, 4, 4, 4
	cfg.Target, cfg.Layout, cfg.Vocab, cfg.Latent, cfg.MaxLen = diffusion.Velocity, lm.LayoutBOL, lm.Vocab{Extra: 2048}, channels, length
	f := Format{Vocab: cfg.Vocab, EOT: 0, Items: items, Channels: channels}
	rng := rand.New(rand.NewPCG(1, 1))
	words := func(n int) []int {
		ids := make([]int, n)
		for i := range ids {
			ids[i] = 1 + rng.IntN(2047)
		}
		return ids
	}
	image := func(r *Row) {
		mu, scale := make([]float32, items*channels), make([]float32, items*channels)
		for i := range mu {
			mu[i], scale[i] = float32(rng.NormFloat64()), 0.9
		}
		r.Image(f, mu, scale)
	}
	rows := make([]Row, batch)
	for i := range rows {
		r := &rows[i]
		r.EOT(f)
		switch i % 4 {
		case 0: // text, filling the sequence
			r.Text(f, words(length-2))
		case 1: // caption → image
			r.Text(f, words(12))
			image(r)
		case 2: // image → caption
			image(r)
			r.Text(f, words(12))
		case 3: // image + question → answer
			image(r)
			r.Prompt(f, words(8))
			r.Text(f, words(2))
		}
		r.EOT(f)
	}
	bt, err := f.Pack(rows, length)
	if err != nil {
		b.Fatal(err)
	}
	sched := diffusion.Cosine(1000)
	for _, mode := range []string{"every-position", "head-rows"} {
		gather := mode == "head-rows"
		b.Run(mode, func(b *testing.B) {
			testutil.TimeTrainSteps(b, cfg.Specs(), func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
				return Losses(scope, w, cfg, vae.DefaultConfig(), sched, batchMul, 16, InputsOf(in, false, gather))
			}, bt.Inputs(f.Channels, false, gather))
			head := batch * (length - 1)
			if gather {
				head = len(bt.HeadRows)
			}
			b.ReportMetric(float64(head), "head-rows")
			b.ReportMetric(3*cfg.ForwardFLOPsRows(batch, length, head, batchMul)/1e9, "GFLOP/step")
			b.Logf("%s: the head on %d of %d positions; CPU: %s", mode, head, batch*(length-1), benchmark.CPUFeatures())
		})
	}
}
