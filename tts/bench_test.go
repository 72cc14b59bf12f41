package tts

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

// BenchmarkTrainStep times a training step of the text-to-speech recipe's
// default model (d192 × 4 blocks, head 128 × 3, batch 16, batch_mul 4, 32
// channels at 25 Hz) on rows shaped like the spoken numbers' (a 3 s prompt,
// 28 characters, 53 speech frames, padded to 248 items), with the diffusion
// head on every position ("every-position") and on the speech frames'
// rows alone ("head-rows", lm.LossOptions.HeadRows), and that with the
// guided attention term too ("guided", the recipe's default): the
// sub-benchmarks' ns/op give the speed-up of the gathered head and the
// cost of the guide in one run on one machine.
//
//	go test -run '^$' -bench TrainStep -benchtime 10x ./tts
func BenchmarkTrainStep(b *testing.B) {
	f, err := NewFormat(Alphabet, 32, 25)
	if err != nil {
		b.Fatal(err)
	}
	const batch, batchMul, length = 16, 4, 248
	cfg := lm.DefaultConfig()
	cfg.Dim, cfg.Heads, cfg.KVHeads, cfg.Depth = 192, 4, 4, 4
	cfg.Target, cfg.Layout, cfg.Vocab, cfg.Latent, cfg.MaxLen = Target, lm.LayoutBOL, f.Vocab, f.Channels, length
	rng := rand.New(rand.NewPCG(1, 1))
	random := func(n int) [][]float32 {
		return frames(n, f.Channels, func(int, int) float32 { return float32(rng.NormFloat64()) })
	}
	text := encode(b, f, "seven thousand four hundred six")[:28]
	rows := make([]Row, batch)
	for i := range rows {
		rows[i] = f.TrainingRow(random(75), text, random(53), make([]float32, f.Channels), false)
	}
	bt, err := f.Pack(rows, length)
	if err != nil {
		b.Fatal(err)
	}
	sched := diffusion.Cosine(1000)
	guide := f.Guide(rows, length)
	for _, mode := range []string{"every-position", "head-rows", "guided"} {
		b.Run(mode, func(b *testing.B) {
			gb := *bt
			if mode == "guided" {
				gb.Guide = guide
			}
			inputs := gb.Inputs(f.Channels)
			if mode == "every-position" {
				inputs = inputs[:6]
			}
			testutil.TimeTrainSteps(b, cfg.Specs(), func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
				if mode == "every-position" {
					in = append(in, nil, nil)
				}
				align, g := 0.0, (*Node)(nil)
				if mode == "guided" {
					align, g = 1, in[8]
				}
				return Losses(scope, w, cfg, vae.Sigma, sched, batchMul, 1, 0, align, in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7], g)
			}, inputs)
			head := batch * (length - 1)
			if mode != "every-position" {
				head = len(bt.HeadRows)
			}
			b.ReportMetric(float64(head), "head-rows")
			b.Logf("%s: the head on %d of %d positions; CPU: %s", mode, head, batch*(length-1), benchmark.CPUFeatures())
		})
	}
}
