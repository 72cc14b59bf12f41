package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/data"
	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/imageio"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/train"
	"github.com/latentlm/latentlm/vae"
)

func init() {
	register("train", "train LatentLM on tokenizer latents of mnist or fashion (class → image)", runTrain)
}

// lmTrainOptions are the flags of `train`, also set by `demo --train`.
type lmTrainOptions struct {
	backend, data, vaeDir, out    string
	cfg                           lm.Config
	steps, saveEvery, sampleEvery int64
	batch, batchMul               int
	lr, labelDropout, ema         float64
	seed                          uint64
	resume, quiet                 bool
}

func defaultLMTrainOptions() lmTrainOptions {
	return lmTrainOptions{data: "mnist", cfg: lm.DefaultConfig(), steps: 2400, saveEvery: 400, sampleEvery: 1200,
		batch: defaultTrainBatch, batchMul: 4, lr: 2e-3, labelDropout: 0.1, ema: 0.999, seed: 1}
}

func runTrain(args []string) error {
	o := defaultLMTrainOptions()
	fs := newFlags("train", "train [--data mnist|fashion] [--vae DIR] [--out DIR] [--steps N] [--resume] [flags]")
	fs.StringVar(&o.backend, "backend", "", "compute backend: onnx, go or xla")
	fs.StringVar(&o.data, "data", o.data, "data set: mnist or fashion")
	fs.StringVar(&o.vaeDir, "vae", "", "tokenizer checkpoint (default: the shipped one for --data)")
	fs.StringVar(&o.out, "out", "", "checkpoint folder (default runs/latentlm-<data>)")
	fs.Int64Var(&o.steps, "steps", o.steps, "training steps")
	fs.IntVar(&o.batch, "batch", o.batch, "sequences per step")
	fs.IntVar(&o.batchMul, "batch-mul", o.batchMul, "noise draws per latent item (batch_mul)")
	fs.Float64Var(&o.lr, "lr", o.lr, "peak learning rate (cosine schedule with warm-up)")
	fs.Float64Var(&o.labelDropout, "label-dropout", o.labelDropout, "probability of replacing the class by the null class")
	fs.Float64Var(&o.ema, "ema", o.ema, "EMA decay of the weights (sampling uses the EMA)")
	fs.Uint64Var(&o.seed, "seed", o.seed, "seed of initialisation, data order and noise")
	fs.Int64Var(&o.saveEvery, "save-every", o.saveEvery, "checkpoint period in steps")
	fs.Int64Var(&o.sampleEvery, "sample-every", o.sampleEvery, "sample-grid period in steps (0: never)")
	fs.BoolVar(&o.resume, "resume", false, "continue the run saved in --out exactly where it stopped")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress bar")
	fs.IntVar(&o.cfg.Dim, "dim", o.cfg.Dim, "backbone width")
	fs.IntVar(&o.cfg.Depth, "depth", o.cfg.Depth, "backbone blocks")
	fs.IntVar(&o.cfg.Heads, "heads", o.cfg.Heads, "attention heads")
	fs.IntVar(&o.cfg.KVHeads, "kv-heads", o.cfg.KVHeads, "key/value heads (grouped-query attention)")
	fs.IntVar(&o.cfg.HeadDim, "head-dim", o.cfg.HeadDim, "diffusion head width")
	fs.IntVar(&o.cfg.HeadDepth, "head-depth", o.cfg.HeadDepth, "diffusion head blocks")
	fs.StringVar(&o.cfg.Target, "target", o.cfg.Target, "diffusion target: eps or v")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	_, err := trainLM(ctx, o)
	return err
}

// trainLM runs a training job and returns the checkpoint folder.
func trainLM(ctx context.Context, o lmTrainOptions) (string, error) {
	if err := checkDataName(o.data); err != nil {
		return "", err
	}
	if o.out == "" {
		o.out = filepath.Join("runs", "latentlm-"+o.data)
	}
	b, bname, err := openBackend(o.backend)
	if err != nil {
		return "", err
	}
	if o.vaeDir == "" {
		if o.vaeDir, err = weightsDir("vae-" + o.data); err != nil {
			return "", err
		}
	}
	tokenizer, err := vae.Load(b, o.vaeDir)
	if err != nil {
		return "", err
	}
	o.cfg.Latent = tokenizer.Config.Channels
	o.cfg.MaxLen = tokenizer.Config.Items() + 3
	rs, err := startRun(o.out, lm.Kind, &o.cfg, o.seed, o.resume)
	if err != nil {
		return "", err
	}
	store, history := rs.store, rs.history
	o.seed = rs.seed
	tokSum, err := checkpoint.FileSHA256(filepath.Join(o.vaeDir, checkpoint.WeightsFile))
	if err != nil {
		return "", err
	}
	tok := lm.Tokenizer{Path: o.vaeDir, SHA256: tokSum, Kind: tokenizer.Config.Kind, Items: tokenizer.Config.Items(),
		Channels: tokenizer.Config.Channels, Data: o.data}

	// μ is computed once; σ·ε is re-drawn every step in the graph.
	ds, err := data.Load(o.data, "train")
	if err != nil {
		return "", err
	}
	if !o.quiet {
		fmt.Fprintf(os.Stderr, "encoding %d training images with the tokenizer...\n", ds.N)
	}
	items, ch := tok.Items, tok.Channels
	per := items * ch
	mus := make([]float32, 0, ds.N*per)
	scales := make([]float32, 0, ds.N*per)
	if err := batches(ds, 1000, 0)(func(imgs [][]float32) error {
		mu, sc, err := tokenizer.EncodeMoments(imgs)
		for i := range mu {
			mus = append(mus, mu[i]...)
			scales = append(scales, sc[i]...)
		}
		return err
	}); err != nil {
		return "", err
	}
	perExample := tokenizer.Config.PerExampleNoise()
	sched := diffusion.Cosine(1000)
	tc := train.DefaultConfig()
	tc.LR, tc.MinLR, tc.TotalSteps, tc.WarmupSteps, tc.EMADecay = o.lr, o.lr/20, int(o.steps), 100, o.ema
	cfg := o.cfg
	tr, err := train.New(b, store, tc, func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		labels, mu, scale := in[0], in[1], in[2]
		g := mu.Graph()
		noise := Mul(scale, scope.RandomNormal(g, mu.Shape()))
		if perExample {
			noise = Mul(noise, Abs(scope.RandomNormal(g, nn.Shape(dtypes.Float32, mu.Shape().Dimensions[0], 1, 1))))
		}
		l := cfg.ClassLoss(scope, w, labels, Add(mu, noise), sched, o.batchMul, o.labelDropout)
		return []*Node{l.Total, l.CE, l.Diffusion}
	})
	if err != nil {
		return "", err
	}
	started := time.Now()
	gather := func(idx []int, src []float32) []float32 {
		out := make([]float32, 0, len(idx)*per)
		for _, i := range idx {
			out = append(out, src[i*per:(i+1)*per]...)
		}
		return out
	}
	save := func(step int64, h []train.Point) error {
		info := map[string]any{"data": o.data, "steps": step, "backend": bname, "seed": o.seed,
			"train_seconds": time.Since(started).Seconds(), "batch": o.batch, "batch_mul": o.batchMul}
		if err := lm.Save(o.out, cfg, store, tok, info); err != nil {
			return err
		}
		if err := saveState(o.out, store, h, o.seed); err != nil {
			return err
		}
		if o.sampleEvery > 0 && (step%o.sampleEvery == 0 || step == o.steps) {
			return writeClassGrid(b, o.out, tokenizer, filepath.Join(o.out, fmt.Sprintf("samples-%06d.png", step)), 4)
		}
		return nil
	}
	loop := &train.Loop{
		Trainer: tr, Store: store, Steps: o.steps, History: history, Every: o.saveEvery, Hook: save,
		Desc: "latentlm " + o.data, Quiet: o.quiet, RecordEvery: 10,
		Batch: func(step int64) ([]any, int, error) {
			idx := data.BatchIndices(ds.N, o.batch, step, o.seed)
			labels := make([]int32, len(idx))
			for j, i := range idx {
				labels[j] = int32(ds.Labels[i])
			}
			return []any{
				tensors.FromFlatDataAndDimensions(labels, len(idx)),
				tensors.FromFlatDataAndDimensions(gather(idx, mus), len(idx), items, ch),
				tensors.FromFlatDataAndDimensions(gather(idx, scales), len(idx), items, ch),
			}, len(idx) * items, nil
		},
	}
	if err := loop.Run(ctx); err != nil {
		return "", err
	}
	if err := writeLossPlot(filepath.Join(o.out, "loss.png"), "LatentLM training loss ("+o.data+")", loop.History); err != nil {
		return "", err
	}
	if !o.quiet {
		fmt.Fprintf(os.Stderr, "saved %s (%d steps in %s)\n", o.out, o.steps, time.Since(started).Round(time.Second))
	}
	return o.out, nil
}

// writeClassGrid samples perClass images of every class from the checkpoint
// in dir and writes them as a grid, one row per class.
func writeClassGrid(b compute.Backend, dir string, tokenizer *vae.Model, out string, perClass int) error {
	cfg, store, _, err := lm.Load(dir)
	if err != nil {
		return err
	}
	var labels []int
	for c := range cfg.Vocab.Classes {
		for range perClass {
			labels = append(labels, c)
		}
	}
	imgs, err := generate(b, cfg, store, tokenizer, labels, lm.SampleOptions{Steps: 20, CFG: 4, Temperature: 1, Seed: 1}, 64)
	if err != nil {
		return err
	}
	return imageio.WriteGrid(out, imgs, tokenizer.Config.ImageSize, tokenizer.Config.ImageSize, perClass)
}

// generate samples images for labels in batches of at most batch.
func generate(b compute.Backend, cfg lm.Config, store *model.Store, tokenizer *vae.Model, labels []int, opts lm.SampleOptions, batch int) ([][]float32, error) {
	s, err := lm.NewSampler(b, store, cfg, tokenizer.Config.Items(), opts)
	if err != nil {
		return nil, err
	}
	var imgs [][]float32
	for start := 0; start < len(labels); start += batch {
		end := min(start+batch, len(labels))
		lat, err := s.Sample(labels[start:end])
		if err != nil {
			return nil, err
		}
		dec, err := tokenizer.Decode(lat)
		if err != nil {
			return nil, err
		}
		imgs = append(imgs, dec...)
	}
	return imgs, nil
}
