package lm

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/internal/flopcount"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/nn"
)

func f64s(x []float32) []float64 {
	r := make([]float64, len(x))
	for i, v := range x {
		r[i] = float64(v)
	}
	return r
}

func flat(rows [][]float32) []float32 {
	var r []float32
	for _, x := range rows {
		r = append(r, x...)
	}
	return r
}

// TestSampleIsPrefillSolveStep: Sample is exactly the composition of the
// engine's parts — prefill [class] <BOL> with a [null] <BOL> guidance
// stream, then solve a latent and step it in, item after item — so the
// same seed gives the same bytes either way.
func TestSampleIsPrefillSolveStep(t *testing.T) {
	cfg := tinyConfig()
	b := testutil.Backend(t, "")
	store := randomStore(t, cfg, 0.05, dtypes.Float32)
	const items = 4
	labels := []int{2, 0, 1}
	opts := SampleOptions{Steps: 6, CFG: 3, Temperature: 0.9, Seed: 11}
	s, err := NewSampler(b, store, cfg, items, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want, err := s.Sample(labels)
	if err != nil {
		t.Fatal(err)
	}

	e, err := NewEngine(b, store, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	prefix, guide := make([][]Item, len(labels)), make([][]Item, len(labels))
	for i, l := range labels {
		prefix[i] = []Item{TokenItem(l), TokenItem(cfg.Vocab.BOL())}
		guide[i] = []Item{TokenItem(cfg.Vocab.Null()), TokenItem(cfg.Vocab.BOL())}
	}
	sess, err := e.Prefill(prefix, guide)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	got := make([][]float32, len(labels))
	for k := range items {
		z, err := sess.Solve()
		if err != nil {
			t.Fatal(err)
		}
		step := make([]Item, len(labels))
		for i := range z {
			got[i] = append(got[i], z[i]...)
			step[i] = LatentItem(z[i])
		}
		if k < items-1 {
			if err := sess.Step(step); err != nil {
				t.Fatal(err)
			}
		}
	}
	if sess.Len() != 2+items-1 {
		t.Errorf("session holds %d items, want %d", sess.Len(), 2+items-1)
	}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("sequence %d: %d values, Sample gave %d", i, len(got[i]), len(want[i]))
		}
		for k := range want[i] {
			if got[i][k] != want[i][k] {
				t.Fatalf("sequence %d value %d: engine %v, Sample %v", i, k, got[i][k], want[i][k])
			}
		}
	}
}

// TestPrefillAnyMix: a prefix mixing tokens and latents read in one prefill
// gives the hidden states and logits of reading its first item and
// stepping in the rest one by one, with or without a guidance stream.
func TestPrefillAnyMix(t *testing.T) {
	cfg := tinyConfig()
	b := testutil.Backend(t, "")
	store := randomStore(t, cfg, 0.1, dtypes.Float32)
	e, err := NewEngine(b, store, cfg, SampleOptions{Steps: 3, CFG: 2, Temperature: 1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	lat := func() Item {
		z := make([]float32, cfg.Latent)
		for i := range z {
			z[i] = float32(rng.NormFloat64())
		}
		return LatentItem(z)
	}
	const n, length = 2, 7
	prefix := make([][]Item, n)
	for i := range prefix {
		prefix[i] = []Item{TokenItem(i), TokenItem(cfg.Vocab.BOL()), lat(), lat(), TokenItem(cfg.Vocab.EOL()), TokenItem(cfg.Vocab.Size() - 1), lat()}
	}
	guide := make([][]Item, n)
	for i := range guide {
		guide[i] = append([]Item{TokenItem(cfg.Vocab.Null())}, prefix[i][1:]...)
	}
	for _, g := range [][][]Item{nil, guide} {
		whole, err := e.Prefill(prefix, g)
		if err != nil {
			t.Fatal(err)
		}
		first := make([][]Item, n)
		var firstGuide [][]Item
		for i := range first {
			first[i] = prefix[i][:1]
			if g != nil {
				firstGuide = append(firstGuide, g[i][:1])
			}
		}
		stepped, err := e.Prefill(first, firstGuide)
		if err != nil {
			t.Fatal(err)
		}
		for j := 1; j < length; j++ {
			col := make([]Item, n)
			for i := range col {
				col[i] = prefix[i][j]
			}
			if err := stepped.Step(col); err != nil {
				t.Fatal(err)
			}
		}
		if whole.Len() != length || stepped.Len() != length || whole.Guided() != (g != nil) {
			t.Errorf("lengths %d and %d, guided %v", whole.Len(), stepped.Len(), whole.Guided())
		}
		hw, _ := whole.Hidden()
		hs, _ := stepped.Hidden()
		lw, _ := whole.Logits()
		ls, err := stepped.Logits()
		if err != nil {
			t.Fatal(err)
		}
		if len(hw) != n || len(hw[0]) != cfg.Dim || len(lw[0]) != cfg.Vocab.Size() {
			t.Fatalf("hidden %d×%d, logits %d×%d", len(hw), len(hw[0]), len(lw), len(lw[0]))
		}
		if e := testutil.RelErr(f64s(flat(hs)), f64s(flat(hw))); e > 1e-5 {
			t.Errorf("guided %v: hidden states of stepping and of one prefill differ by %.3g", g != nil, e)
		}
		if e := testutil.RelErr(f64s(flat(ls)), f64s(flat(lw))); e > 1e-5 {
			t.Errorf("guided %v: logits of stepping and of one prefill differ by %.3g", g != nil, e)
		}
		whole.Close()
		stepped.Close()
	}
	for name, bad := range map[string]func() ([][]Item, [][]Item){
		"ragged prefixes": func() ([][]Item, [][]Item) { return [][]Item{prefix[0], prefix[1][:3]}, nil },
		"guide length":    func() ([][]Item, [][]Item) { return prefix, [][]Item{guide[0][:3], guide[1][:3]} },
		"guide count":     func() ([][]Item, [][]Item) { return prefix, guide[:1] },
		"token range":     func() ([][]Item, [][]Item) { return [][]Item{{TokenItem(cfg.Vocab.Size())}}, nil },
		"latent width":    func() ([][]Item, [][]Item) { return [][]Item{{LatentItem(make([]float32, cfg.Latent+1))}}, nil },
		"too long":        func() ([][]Item, [][]Item) { return [][]Item{make([]Item, cfg.MaxLen+1)}, nil },
		"empty":           func() ([][]Item, [][]Item) { return [][]Item{{}}, nil },
	} {
		p, g := bad()
		if s, err := e.Prefill(p, g); err == nil {
			s.Close()
			t.Errorf("%s: prefill accepted", name)
		}
	}
}

// TestGuidanceBySameStream: a guidance stream identical to its sequence
// leaves the prediction unchanged at any scale, so the guided solve equals
// the unguided one from the same noise; a different guidance stream and a
// scale other than 1 change it.
func TestGuidanceBySameStream(t *testing.T) {
	cfg := tinyConfig()
	b := testutil.Backend(t, "")
	store := randomStore(t, cfg, 0.1, dtypes.Float32)
	prefix := [][]Item{{TokenItem(0), TokenItem(cfg.Vocab.BOL())}, {TokenItem(2), TokenItem(cfg.Vocab.BOL())}}
	null := [][]Item{{TokenItem(cfg.Vocab.Null()), TokenItem(cfg.Vocab.BOL())}, {TokenItem(cfg.Vocab.Null()), TokenItem(cfg.Vocab.BOL())}}
	solve := func(guide [][]Item) []float32 {
		t.Helper()
		e, err := NewEngine(b, store, cfg, SampleOptions{Steps: 8, CFG: 4, Temperature: 1, Seed: 5})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		s, err := e.Prefill(prefix, guide)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		z, err := s.Solve()
		if err != nil {
			t.Fatal(err)
		}
		return flat(z)
	}
	plain, same, other := solve(nil), solve(prefix), solve(null)
	if e := testutil.RelErr(f64s(same), f64s(plain)); e > 1e-5 {
		t.Errorf("guidance by an identical stream changed the latent by %.3g", e)
	}
	if e := testutil.RelErr(f64s(other), f64s(plain)); e < 1e-3 {
		t.Errorf("guidance by the null stream at scale 4 changed the latent by only %.3g", e)
	}
}

// forcedEOLModel is a one-layer model built by hand so that its softmax
// head predicts <EOL> after exactly stops[c] latents of class c (never,
// for +Inf). Attention has zero queries and keys, so it averages the
// values of positions 0…p, and only the class token has a value: at a
// latent at position p the residual stream is a_c/(p+1) along axis 0.
// The MLP turns that direction into a constant m along axis 1, and the
// head's <EOL> logit reads axis 1, its <BOL> logit axis 0: <EOL> wins once
// a_c/(p+1) < m, that is from p+1 > a_c/m. Latents and the (random)
// diffusion head do not matter: x_embedder is zero.
func forcedEOLModel(t *testing.T, stops []float64) (Config, *model.Store) {
	t.Helper()
	cfg := Config{Dim: 8, Depth: 1, Heads: 1, KVHeads: 1, MLPRatio: 2, HeadDepth: 1, HeadDim: 8,
		Latent: 4, MaxLen: 16, Target: diffusion.Epsilon, Vocab: Vocab{Classes: len(stops)}}
	d := float64(cfg.Dim)
	rms := func(a float64) float64 { return a / math.Sqrt(a*a/d+1e-6) } // RMSNorm of a·e_i, along e_i
	// m: the MLP's constant output, silu(r)·r for r = RMSNorm(a) ≈ √d.
	r := rms(1)
	m := r * r / (1 + math.Exp(-r))
	rng := rand.New(rand.NewPCG(7, 7))
	store := model.NewStore()
	for _, s := range cfg.Specs() {
		vals := make([]float64, s.Size())
		set := func(row, col int, v float64) { vals[row*s.Shape[1]+col] = v }
		switch name := s.Name; {
		case name == "tok_embeddings.weight":
			for c := range stops {
				set(c, 2+c, 1)
			}
		case name == "blocks.0.attn.qkv.weight": // rows: q 0…7, k 8…15, v 16…23
			for c, k := range stops {
				k = math.Min(k, 1000) // never, within any max_len
				// a stop after k latents is a decision at p = k+1: p+1 > a/m
				// from there on, not before; a/m = k + 1.5 sits in between.
				set(16, 2+c, (k+1.5)*m/rms(1))
			}
		case name == "blocks.0.attn.proj.weight":
			for i := range cfg.Dim {
				set(i, i, 1)
			}
		case name == "blocks.0.mlp.fc1.weight", name == "blocks.0.mlp.gate.weight":
			set(0, 0, 1)
		case name == "blocks.0.mlp.fc2.weight":
			set(1, 0, 1)
		case name == "lm_head.weight":
			set(cfg.Vocab.EOL(), 1, 10)
			set(cfg.Vocab.BOL(), 0, 10)
		case strings.HasPrefix(name, "blocks.") || name == "x_embedder.weight":
		default: // the diffusion head and its condition: random
			for i := range vals {
				vals[i] = 0.1 * rng.NormFloat64()
			}
		}
		if _, err := store.CreateVariable(nn.WeightsScope+"/"+s.Name, nn.Tensor(vals, dtypes.Float32, s.Shape...)); err != nil {
			t.Fatal(err)
		}
	}
	return cfg, store
}

// TestLatentsStopAtEOL: with StopAtEOL each sequence's segment ends where
// the softmax head predicts <EOL> (a hand-built model stops class 0 after
// 2 latents and class 1 after 5), a sequence whose head never does runs to
// the maximum, and a fixed-length segment gives exactly Max latents
// whatever the head says.
func TestLatentsStopAtEOL(t *testing.T) {
	never := math.Inf(1)
	cfg, store := forcedEOLModel(t, []float64{2, 5, never})
	b := testutil.Backend(t, "")
	const max = 9
	s, err := NewSampler(b, store, cfg, max, SampleOptions{Steps: 4, CFG: 2, Temperature: 1, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	run := func(labels []int, seg Segment) (*Session, []int) {
		t.Helper()
		sess, err := s.Prefill(labels)
		if err != nil {
			t.Fatal(err)
		}
		z, err := sess.Latents(seg)
		if err != nil {
			t.Fatal(err)
		}
		lens := make([]int, len(z))
		for i := range z {
			if len(z[i])%cfg.Latent != 0 {
				t.Fatalf("sequence %d: %d values", i, len(z[i]))
			}
			lens[i] = len(z[i]) / cfg.Latent
		}
		return sess, lens
	}
	same := func(a, b []int) bool {
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
		return len(a) == len(b)
	}

	for _, temp := range []float64{0, 0.05} {
		sess, lens := run([]int{0, 1, 2}, Segment{Max: max, StopAtEOL: true, TokenTemperature: temp})
		if !same(lens, []int{2, 5, max}) {
			t.Errorf("token temperature %g: segments of %v latents, want [2 5 %d]", temp, lens, max)
		}
		if err := sess.Step([]Item{TokenItem(0), TokenItem(0), TokenItem(0)}); err == nil {
			t.Error("a batch whose segments ended at different lengths went on")
		}
		sess.Close()
	}

	// All sequences stop together: the session goes on after <EOL>.
	sess, lens := run([]int{1, 1}, Segment{Max: max, StopAtEOL: true})
	if !same(lens, []int{5, 5}) || sess.Len() != 2+5 {
		t.Errorf("segments of %v latents, session of %d items; want [5 5] and 7", lens, sess.Len())
	}
	eol := TokenItem(cfg.Vocab.EOL())
	if err := sess.Step([]Item{eol, eol}); err != nil || sess.Len() != 8 {
		t.Errorf("stepping <EOL> in: %v, %d items", err, sess.Len())
	}
	sess.Close()

	// The head never predicts <EOL>: the maximum bounds the segment.
	sess, lens = run([]int{2, 2}, Segment{Max: 6, StopAtEOL: true})
	if !same(lens, []int{6, 6}) || sess.Len() != 2+6 {
		t.Errorf("segments of %v latents, session of %d items; want [6 6] and 8", lens, sess.Len())
	}
	sess.Close()

	// Fixed length: exactly Max, <EOL> or not.
	sess, lens = run([]int{0, 1, 2}, Segment{Max: 7})
	if !same(lens, []int{7, 7, 7}) || sess.Len() != 2+7 {
		t.Errorf("fixed segments of %v latents, session of %d items; want 7 each and 9", lens, sess.Len())
	}
	if _, err := sess.Latents(Segment{Max: cfg.MaxLen}); err == nil {
		t.Error("a segment past max_len accepted")
	}
	sess.Close()
	if z, err := s.Sample([]int{0, 1, 2}); err != nil || len(z[0]) != max*cfg.Latent || len(z[1]) != max*cfg.Latent {
		t.Errorf("Sample is fixed-length: %v", err)
	}

	// Closing the engine ends its sessions and its sampler.
	sess, _ = run([]int{1}, Segment{Max: 2})
	s.Close()
	if _, err := sess.Solve(); err == nil {
		t.Error("Solve after the engine's Close succeeded")
	}
	if _, err := sess.Logits(); err == nil {
		t.Error("Logits after the engine's Close succeeded")
	}
	sess.Close()
	if _, err := s.Sample([]int{0}); err == nil {
		t.Error("Sample after Close succeeded")
	}
}

// standardNormalHead zeroes the diffusion head's output layer: with the v
// target, v̂ ≡ 0 is the exact denoiser of standard normal data
// (E[v | x_t] = α·E[ε | x_t] − σ·E[x₀ | x_t] = α·σ·x_t − σ·α·x_t = 0), so
// any correct sampler must then draw N(0, 1) latents, whatever the
// backbone and guidance do.
func standardNormalHead(t *testing.T, cfg Config, store *model.Store) {
	t.Helper()
	v := store.GetVariable(nn.WeightsScope + "/final_layer.linear.weight")
	if err := v.SetValue(nn.Tensor(make([]float64, cfg.Latent*cfg.HeadDim), dtypes.Float32, cfg.Latent, cfg.HeadDim)); err != nil {
		t.Fatal(err)
	}
}

// TestSamplersRecoverGaussian: DDPM (1000 steps, looped) and DPM-Solver++
// (20 steps, unrolled) through the whole sampler draw standard normal
// latents from a model whose head is the exact denoiser of N(0, 1).
func TestSamplersRecoverGaussian(t *testing.T) {
	cfg := tinyConfig()
	cfg.Target, cfg.Latent = diffusion.Velocity, 16
	b := testutil.Backend(t, "")
	store := randomStore(t, cfg, 0.1, dtypes.Float32)
	standardNormalHead(t, cfg, store)
	const items, batch = 4, 64
	labels := make([]int, batch)
	for i := range labels {
		labels[i] = i % cfg.Vocab.Classes
	}
	for _, steps := range []int{0, 20} {
		s, err := NewSampler(b, store, cfg, items, SampleOptions{Steps: steps, CFG: 3, Temperature: 1, Seed: 2})
		if err != nil {
			t.Fatal(err)
		}
		z, err := s.Sample(labels)
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		var sum, sq float64
		var n int
		for _, row := range z {
			if len(row) != items*cfg.Latent {
				t.Fatalf("steps %d: %d values per image", steps, len(row))
			}
			for _, v := range row {
				sum += float64(v)
				sq += float64(v) * float64(v)
				n++
			}
		}
		mean := sum / float64(n)
		std := math.Sqrt(sq/float64(n) - mean*mean)
		// 4096 draws: the standard errors are 0.016 (mean) and 0.011 (std).
		t.Logf("steps %d: mean %.4f std %.4f over %d values", steps, mean, std, n)
		if math.Abs(mean) > 0.06 || math.Abs(std-1) > 0.045 {
			t.Errorf("steps %d: mean %.4f std %.4f, want N(0, 1) within 4 standard errors", steps, mean, std)
		}
	}
}

// TestSamplerLoopedMatchesUnrolled: DPM-Solver++ adds no noise after the
// first draw, so running its plan as a host loop gives the unrolled
// graph's latent from the same seed. (Only one latent per image: the loop
// draws, and discards, noise at every step, so the starting noise of later
// latents differs between the modes.)
func TestSamplerLoopedMatchesUnrolled(t *testing.T) {
	cfg := tinyConfig()
	b := testutil.Backend(t, "")
	store := randomStore(t, cfg, 0.05, dtypes.Float32)
	run := func(loop bool) []float32 {
		s, err := newSampler(b, store, cfg, 1, SampleOptions{Steps: 8, CFG: 2.5, Temperature: 1, Seed: 4}, loop)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		z, err := s.Sample([]int{0, 2, 1})
		if err != nil {
			t.Fatal(err)
		}
		return flat(z)
	}
	if e := testutil.RelErr(f64s(run(true)), f64s(run(false))); e > 1e-5 {
		t.Errorf("unrolled and looped samplers differ by %.3g", e)
	}
}

// TestSampleFLOPs counts the products (flopcount.Matmul) of the graphs one
// image runs — the prefill of [class] <BOL>, items−1 decoding steps, and
// items solver runs over the two guidance streams — and compares
// SampleFLOPs with it. SampleFLOPs charges the condition layer to every
// backbone item, the prefill's class token included, on which the sampler
// never conditions the head: one [HeadDim, Dim] product per stream more
// than the graphs.
func TestSampleFLOPs(t *testing.T) {
	cfg := Config{Dim: 32, Depth: 2, Heads: 4, KVHeads: 2, MLPRatio: 3, HeadDepth: 2, HeadDim: 48,
		Latent: 6, MaxLen: 12, Target: diffusion.Epsilon, Vocab: Vocab{Classes: 4}}
	b := testutil.Backend(t, "")
	store := randomStore(t, cfg, 0.05, dtypes.Float32)
	const items, steps = 5, 7
	e, err := NewEngine(b, store, cfg, SampleOptions{Steps: steps, CFG: 2, Temperature: 1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	hd := cfg.Dim / cfg.Heads
	stepFLOPs := func(seq int) float64 {
		in := []shapes.Shape{
			shapes.Make(dtypes.Int32, 2, seq), shapes.Make(dtypes.Float32, 2, seq, cfg.Latent),
			shapes.Make(dtypes.Float32, 2, seq), shapes.Make(dtypes.Float32, seq),
		}
		for range 2 * cfg.Depth {
			in = append(in, shapes.Make(dtypes.Float32, 2, cfg.MaxLen, cfg.KVHeads, hd))
		}
		g, err := e.step.Compile(in...)
		if err != nil {
			t.Fatal(err)
		}
		f, err := flopcount.Matmul(g)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	var solve float64
	graphs := e.headGraphs(true, false)
	plan, err := e.sched.PlanFor(steps)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := model.CallOnce(b, store, func(scope *model.Scope, h *Node) *Node {
		in := []*Node{h}
		conds := graphs.Conditions(scope, in)
		x := graphs.Noise(scope, in)
		out := e.sched.Run(plan, x, e.target, graphs.Denoiser(scope, conds), func(int) *Node { return scope.RandomNormal(h.Graph(), x.Shape()) })
		var err error
		if solve, err = flopcount.Matmul(h.Graph()); err != nil {
			panic(err)
		}
		return out
	}, nn.Tensor(make([]float64, 2*cfg.Dim), dtypes.Float32, 2, cfg.Dim)); err != nil {
		t.Fatal(err)
	}
	graphs2 := stepFLOPs(2) + float64(items-1)*stepFLOPs(1) + float64(items)*solve
	condition := 2 * (2 * float64(cfg.HeadDim*cfg.Dim))
	got := cfg.SampleFLOPs(items, steps)
	t.Logf("graphs %.6g FLOPs, SampleFLOPs %.6g", graphs2, got)
	if math.Abs(got-(graphs2+condition)) > 1e-9*got {
		t.Errorf("SampleFLOPs(%d, %d) = %.9g, the graphs %.9g plus one condition per stream %.9g", items, steps, got, graphs2, graphs2+condition)
	}
}
