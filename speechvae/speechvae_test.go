package speechvae

import (
	"math"
	"math/cmplx"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/speech"
	"github.com/latentlm/latentlm/vae"
)

func tinyConfig(domain string, kind vae.Variant) Config {
	c := DefaultConfig()
	c.Domain, c.Kind = domain, kind
	c.Channels, c.Dim, c.Depth, c.Heads = 8, 32, 1, 2
	return c
}

// withFrameStages is c with one STFT-frame-rate block of width 16 on each side.
func withFrameStages(c Config) Config {
	c.FrameDim, c.FrameDepth = 16, 1
	return c
}

// configs are the tiny configurations every shape test covers: both
// domains, with and without the frame-rate stages.
func configs(kind vae.Variant) map[string]Config {
	out := map[string]Config{}
	for _, domain := range []string{Spectrum, Wave} {
		out[domain] = tinyConfig(domain, kind)
		out[domain+"-framed"] = withFrameStages(tinyConfig(domain, kind))
	}
	return out
}

// voiced is a toy utterance: a harmonic tone whose pitch glides, with a
// formant-like emphasis, and silence at both ends.
func voiced(n int, f0 float64) []float32 {
	x := make([]float32, n)
	for i := n / 8; i < n-n/8; i++ {
		t := float64(i) / speech.Rate
		f := f0 * (1 + 0.2*t)
		var v float64
		for h := 1; h <= 8; h++ {
			v += math.Sin(2*math.Pi*f*float64(h)*t) / float64(h) * (1 + 2*math.Exp(-math.Pow(float64(h)*f-700, 2)/1e5))
		}
		x[i] = float32(0.1 * v)
	}
	return x
}

func newModel(t *testing.T, cfg Config) *Model {
	t.Helper()
	store := model.NewStore()
	if err := nn.Init(store, cfg.Specs(), 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	if err := store.SetRNGStateFromSeed(3); err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(testutil.Backend(t, ""), cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// TestEncodeDecodeKeepsLength: n samples → ⌈n/640⌉ latent frames → n samples,
// for lengths that are and are not whole frames or buckets, both domains.
func TestEncodeDecodeKeepsLength(t *testing.T) {
	for domain, c := range configs(vae.Sigma) {
		m := newModel(t, c)
		for _, n := range []int{100, 640, 6401, 20000} {
			z, err := m.Encode(voiced(n, 150), true)
			if err != nil {
				t.Fatal(err)
			}
			if want := (n + 639) / 640; len(z) != want || len(z[0]) != 8 {
				t.Fatalf("%s, %d samples: %d×%d latents, want %d×8", domain, n, len(z), len(z[0]), want)
			}
			y, err := m.Decode(z, n, 1)
			if err != nil {
				t.Fatal(err)
			}
			if len(y) != n {
				t.Fatalf("%s: decoded %d samples, want %d", domain, len(y), n)
			}
		}
	}
}

// TestFrameRates: 5 STFT frames of 128 samples per latent is 25 Hz, 10 is
// 12.5 Hz, and the bound is 25 Hz.
func TestFrameRates(t *testing.T) {
	c := DefaultConfig()
	if c.FrameRate() != 25 {
		t.Errorf("default frame rate %g Hz, want 25", c.FrameRate())
	}
	c.FramesPerLatent = 10
	if c.FrameRate() != 12.5 {
		t.Errorf("10 frames per latent: %g Hz, want 12.5", c.FrameRate())
	}
	for _, tc := range []struct {
		name, want string
		edit       func(*Config)
	}{
		{"domain mel", "domain", func(c *Config) { c.Domain = "mel" }},
		{"frame_depth without frame_dim", "both or neither", func(c *Config) { c.FrameDepth = 2 }},
		{"frame_dim 20 in 4 heads of 5", "heads", func(c *Config) { c.FrameDim, c.FrameDepth = 20, 1 }},
		{"loss_floor 2", "loss_floor", func(c *Config) { c.LossFloor = 2 }},
		{"adv_weight -1", "adv_weight", func(c *Config) { c.AdvWeight = -1 }},
	} {
		bad := DefaultConfig()
		tc.edit(&bad)
		if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about %q", tc.name, err, tc.want)
		}
	}
}

// run builds and runs a one-output graph on the test backend.
func run(t *testing.T, fn func(g *Graph) *Node) []float32 {
	t.Helper()
	e, err := NewExec(testutil.Backend(t, ""), fn)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Finalize()
	out, err := e.Call()
	if err != nil {
		t.Fatal(err)
	}
	return tensors.MustCopyFlatData[float32](out[0])
}

// TestWaveformIsTheInverseSTFT: the wave decoder's fixed head (inverse
// DFT, window, overlap-add) turned on the STFT of a signal gives the
// signal back, as speech.ISTFT (float64, on the host) does.
func TestWaveformIsTheInverseSTFT(t *testing.T) {
	c := tinyConfig(Wave, vae.Sigma)
	l := 4
	n := l * c.SamplesPerLatent()
	x := voiced(n, 180)
	spec, err := speech.STFT(x, c.STFT())
	if err != nil {
		t.Fatal(err)
	}
	if len(spec) != l*c.FramesPerLatent {
		t.Fatalf("%d STFT frames, want %d", len(spec), l*c.FramesPerLatent)
	}
	// Decoder output layout per frame: Bins real parts, then Bins imaginary.
	flat := make([]float32, 0, len(spec)*2*c.Bins())
	for _, row := range spec {
		for _, v := range row {
			flat = append(flat, float32(real(v)))
		}
		for _, v := range row {
			flat = append(flat, float32(imag(v)))
		}
	}
	y := run(t, func(g *Graph) *Node {
		return c.Waveform(Const(g, tensors.FromFlatDataAndDimensions(flat, 1, l, 2*c.FramesPerLatent*c.Bins())))
	})
	var worst float64
	for i := range x {
		worst = math.Max(worst, math.Abs(float64(x[i]-y[i])))
	}
	if worst > 1e-4 {
		t.Errorf("graph inverse STFT is off by up to %g", worst)
	}
}

// TestLogMagnitudeGraphMatchesHost: the losses' in-graph STFT equals
// speech.Magnitudes (float64 FFT) frame for frame.
func TestLogMagnitudeGraphMatchesHost(t *testing.T) {
	n := 2560
	x := voiced(n, 130)
	for _, fft := range []int{256, 512} {
		o := speech.STFTOptions{FFT: fft, Window: fft, Hop: fft / 4}
		want, err := speech.STFT(x, o)
		if err != nil {
			t.Fatal(err)
		}
		got := run(t, func(g *Graph) *Node {
			return logMagnitudeGraph(Const(g, tensors.FromFlatDataAndDimensions(x, 1, n)), fft)
		})
		bins := fft/2 + 1
		if len(got)/bins < len(want) {
			t.Fatalf("fft %d: %d graph frames, want at least %d", fft, len(got)/bins, len(want))
		}
		for f := range want {
			for k := range want[f] {
				w := math.Log(math.Max(cmplx.Abs(want[f][k]), magFloor))
				if d := math.Abs(float64(got[f*bins+k]) - w); d > 2e-3*(1+math.Abs(w)) && cmplx.Abs(want[f][k]) > 1e-2 {
					t.Fatalf("fft %d frame %d bin %d: ln|X| %g in the graph, %g on the host", fft, f, k, got[f*bins+k], w)
				}
			}
		}
	}
}

// TestTinyTrainingLowersLoss: a few steps on toy voices lower the
// spectral losses in both domains.
func TestTinyTrainingLowersLoss(t *testing.T) {
	for name, c := range configs(vae.Sigma) {
		t.Run(name, func(t *testing.T) {
			domain := c.Domain
			l := 8
			n := l * c.SamplesPerLatent()
			var x, wave []float32
			for _, f0 := range []float64{110, 160, 220, 300} {
				clip := voiced(n, f0)
				in, err := c.Inputs(clip)
				if err != nil {
					t.Fatal(err)
				}
				x, wave = append(x, in...), append(wave, clip...)
			}
			_, tr := testutil.TinyTrainer(t, c.Specs(), func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
				var target *Node
				if len(in) > 1 {
					target = in[1]
				}
				return []*Node{c.Loss(scope, w, in[0], target).Total}
			})
			inputs := []any{tensors.FromFlatDataAndDimensions(x, 4, l, c.InputWidth())}
			if domain == Wave {
				inputs = append(inputs, tensors.FromFlatDataAndDimensions(wave, 4, n))
			}
			testutil.ExpectLossFalls(t, 40, 5, 0.8, func(int) float64 {
				r, err := tr.Step(inputs...)
				if err != nil {
					t.Fatal(err)
				}
				return r.Loss
			})
		})
	}
}

// TestLatentsFile: latents and the sample count survive a file; a file
// for another channel count or domain, or with a NaN, is refused by name.
func TestLatentsFile(t *testing.T) {
	m := newModel(t, tinyConfig(Spectrum, vae.Sigma))
	dir := t.TempDir()
	x := voiced(3000, 200)
	z, err := m.Encode(x, false)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "a.safetensors")
	if err := m.WriteLatents(path, z, len(x)); err != nil {
		t.Fatal(err)
	}
	back, n, err := m.ReadLatents(path)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(x) || len(back) != len(z) || back[2][3] != z[2][3] {
		t.Fatalf("round trip: %d frames, %d samples; want %d, %d", len(back), n, len(z), len(x))
	}
	z[1][0] = float32(math.NaN())
	bad := filepath.Join(dir, "nan.safetensors")
	if err := m.WriteLatents(bad, z, len(x)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.ReadLatents(bad); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "frame 1") {
		t.Errorf("NaN latents: %v", err)
	}
	other := newModel(t, DefaultConfig())
	if _, _, err := other.ReadLatents(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("8-channel latents read by a 32-channel tokenizer: %v", err)
	}
	wave := newModel(t, tinyConfig(Wave, vae.Sigma))
	if wave.Config.Channels != m.Config.Channels {
		t.Fatalf("the wave tokenizer has %d channels, want %d as the spectrum one", wave.Config.Channels, m.Config.Channels)
	}
	if _, _, err := wave.ReadLatents(path); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "domain=spectrum") {
		t.Errorf("spectrum latents read by a wave tokenizer of as many channels: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "junk.safetensors"), []byte("not a file"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.ReadLatents(filepath.Join(dir, "junk.safetensors")); err == nil {
		t.Error("junk latents file accepted")
	}
}

// TestLossFloor: with a LossFloor, log errors wholly under it cost
// nothing, errors above it cost what they did, and without one the same
// errors under it are counted; mel checked band by band on the host.
func TestLossFloor(t *testing.T) {
	const fft, frames = 512, 3
	bins := fft/2 + 1
	constant := func(g *Graph, v float64) *Node {
		flat := make([]float32, frames*bins)
		for i := range flat {
			flat[i] = float32(math.Log(v))
		}
		return Const(g, tensors.FromFlatDataAndDimensions(flat, 1, frames, bins))
	}
	losses := func(floor, ref, got float64) (logMag, mel float64) {
		c := DefaultConfig()
		c.LossFloor = floor
		out := run(t, func(g *Graph) *Node {
			_, l, m := c.spectralLosses(constant(g, ref), constant(g, got), fft)
			return Stack([]*Node{l, m}, 0)
		})
		return float64(out[0]), float64(out[1])
	}
	// Host mel: each band's power is its filter weights' sum times the
	// (flat) power; with the floor's square under both.
	hostMel := func(floor, ref, got float64) float64 {
		fb := melMatrix(fft)
		var sum float64
		mels := len(fb[0])
		for m := range mels {
			var w float64
			for k := range bins {
				w += float64(fb[k][m])
			}
			pr, pg := w*ref*ref, w*got*got
			if floor > 0 {
				pr, pg = math.Max(pr, floor*floor), math.Max(pg, floor*floor)
			} else {
				pr, pg = pr+1e-8, pg+1e-8
			}
			sum += math.Abs(math.Log(pr) - math.Log(pg))
		}
		return sum / float64(mels)
	}
	for _, tc := range []struct {
		name            string
		floor, ref, got float64
		wantLog         float64
	}{
		{"under the floor", 1e-2, 1e-3, 1e-5, 0},
		{"no floor", 0, 1e-3, 1e-4, math.Log(10)},
		{"above the floor", 1e-2, 1, 0.5, math.Log(2)},
		{"across the floor", 1e-2, 1e-1, 1e-4, math.Log(10)},
	} {
		l, m := losses(tc.floor, tc.ref, tc.got)
		if math.Abs(l-tc.wantLog) > 1e-4 {
			t.Errorf("%s: log-magnitude loss %g, want %g", tc.name, l, tc.wantLog)
		}
		if want := hostMel(tc.floor, tc.ref, tc.got); math.Abs(m-want) > 1e-3*(1+want) {
			t.Errorf("%s: mel loss %g, want %g", tc.name, m, want)
		}
	}
}

// TestAdversarialLossesAgainstHost: the discriminator's scores and both
// players' losses match a float64 computation on the host, mel filterbank,
// patches, leaky ReLUs, least squares and feature matching included; the
// frames after the last whole patch are left out.
func TestAdversarialLossesAgainstHost(t *testing.T) {
	const fft, frames = 512, 2*discPatch + 3
	bins := fft/2 + 1
	rng := rand.New(rand.NewPCG(7, 8))
	random := func(n int, std float64) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = rng.NormFloat64() * std
		}
		return v
	}
	real, fake := random(frames*bins, 1), random(frames*bins, 1)
	c := DefaultConfig()
	c.AdvWeight = 1
	weights := map[string][]float64{}
	for _, s := range c.discSpecs() {
		weights[s.Name] = random(s.Size(), s.Std)
	}
	f32 := func(v []float64) []float32 {
		out := make([]float32, len(v))
		for i, x := range v {
			out[i] = float32(x)
		}
		return out
	}
	out := run(t, func(g *Graph) *Node {
		weight := func(name string) *Node {
			var shape []int
			for _, s := range c.discSpecs() {
				if s.Name == name {
					shape = s.Shape
				}
			}
			return Const(g, tensors.FromFlatDataAndDimensions(f32(weights[name]), shape...))
		}
		logMag := func(v []float64) *Node { return Const(g, tensors.FromFlatDataAndDimensions(f32(v), 1, frames, bins)) }
		score, _ := discriminate(weight, discInput(logMag(real), fft))
		gen, disc := adversarialLosses(weight, logMag(real), logMag(fake), fft)
		return Concatenate([]*Node{Reshape(score, 2), Reshape(gen, 1), Reshape(disc, 1)}, 0)
	})

	// The host: mel power, ln on the input scale, patches, the MLP.
	fb := melMatrix(fft)
	mels := len(fb[0])
	leaky := func(x float64) float64 {
		if x < 0 {
			return 0.2 * x
		}
		return x
	}
	linear := func(w []float64, x []float64) []float64 {
		y := make([]float64, len(w)/len(x))
		for o := range y {
			for i, v := range x {
				y[o] += w[o*len(x)+i] * v
			}
		}
		return y
	}
	host := func(logMag []float64) (scores []float64, hidden [][]float64) {
		for p := range 2 {
			x := make([]float64, 0, discPatch*mels)
			for f := p * discPatch; f < (p+1)*discPatch; f++ {
				for m := range mels {
					var power float64
					for k := range bins {
						power += math.Exp(2*logMag[f*bins+k]) * float64(fb[k][m])
					}
					x = append(x, (0.5*math.Log(power+1e-8)-logOffset)/logScale)
				}
			}
			h1 := linear(weights[discNames[0]], x)
			for i := range h1 {
				h1[i] = leaky(h1[i])
			}
			h2 := linear(weights[discNames[1]], h1)
			for i := range h2 {
				h2[i] = leaky(h2[i])
			}
			scores = append(scores, linear(weights[discNames[2]], h2)[0])
			hidden = append(hidden, h1, h2)
		}
		return scores, hidden
	}
	sReal, hReal := host(real)
	sFake, hFake := host(fake)
	var wantDisc, wantGen float64
	for p := range 2 {
		wantDisc += ((sReal[p]-1)*(sReal[p]-1) + sFake[p]*sFake[p]) / 2
		wantGen += (sFake[p] - 1) * (sFake[p] - 1) / 2
	}
	for layer := range 2 {
		var sum float64
		for p := range 2 {
			for i := range hReal[2*p+layer] {
				sum += math.Abs(hReal[2*p+layer][i] - hFake[2*p+layer][i])
			}
		}
		wantGen += featureMatchWeight * sum / float64(2*discDim)
	}
	for i, want := range append(sReal, wantGen, wantDisc) {
		if got := float64(out[i]); math.Abs(got-want) > 1e-3*(1+math.Abs(want)) {
			t.Errorf("output %d (scores, decoder's loss, discriminator's loss): %g in the graph, %g on the host", i, got, want)
		}
	}
}

// TestAdversarialGradients: in the training loss of both domains, the
// decoder's adversarial term moves the encoder and decoder and not the
// discriminator, and the discriminator's term the reverse; the total
// reaches the discriminator only through its own term, unweighted; and a
// tokenizer saved with its discriminator loads, encodes and decodes.
func TestAdversarialGradients(t *testing.T) {
	for _, domain := range []string{Spectrum, Wave} {
		t.Run(domain, func(t *testing.T) {
			c := tinyConfig(domain, vae.Sigma)
			c.AdvWeight = 0.5
			store := model.NewStore()
			if err := nn.Init(store, c.Specs(), 1, dtypes.Float32); err != nil {
				t.Fatal(err)
			}
			if err := store.SetRNGStateFromSeed(3); err != nil {
				t.Fatal(err)
			}
			players := append([]string{"encoder.out.weight", "decoder.out.weight"}, discNames...)
			e, err := model.NewExec(testutil.Backend(t, ""), store, func(scope *model.Scope, x, wave *Node) []*Node {
				w := nn.WeightsOf(scope.Store(), x.Graph())
				var target *Node
				if domain == Wave {
					target = wave
				}
				l := c.Loss(scope, w, x, target)
				var wrt []*Node
				for _, name := range players {
					wrt = append(wrt, w.Get("%s", name))
				}
				norm := func(g *Node) *Node { return Sqrt(ReduceAllSum(Square(g))) }
				var norms []*Node
				for _, loss := range []*Node{l.AdvGen, l.AdvDisc} {
					for _, g := range Gradient(loss, wrt...) {
						norms = append(norms, norm(g))
					}
				}
				// The total's gradient on the discriminator, and its
				// difference from the discriminator's own term's.
				total, own := Gradient(l.Total, wrt[2:]...), Gradient(l.AdvDisc, wrt[2:]...)
				for i := range total {
					norms = append(norms, norm(total[i]), norm(Sub(total[i], own[i])))
				}
				return []*Node{Stack(norms, 0)}
			})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Finalize()
			const l = 8
			var x, wave []float32
			for _, f0 := range []float64{110, 220} {
				clip := voiced(l*c.SamplesPerLatent(), f0)
				in, err := c.Inputs(clip)
				if err != nil {
					t.Fatal(err)
				}
				x, wave = append(x, in...), append(wave, clip...)
			}
			out, err := e.Call(tensors.FromFlatDataAndDimensions(x, 2, l, c.InputWidth()),
				tensors.FromFlatDataAndDimensions(wave, 2, l*c.SamplesPerLatent()))
			if err != nil {
				t.Fatal(err)
			}
			norms := tensors.MustCopyFlatData[float32](out[0])
			for i, loss := range []string{"decoder's adversarial loss", "discriminator's loss"} {
				for j, name := range players {
					got := norms[i*len(players)+j]
					moves := (j < 2) == (i == 0) // the decoder's term moves encoder and decoder
					if moves && !(got > 0) || !moves && got != 0 {
						t.Errorf("%s: gradient norm %g for %s", loss, got, name)
					}
				}
			}
			for j, name := range discNames {
				total, diff := norms[2*len(players)+2*j], norms[2*len(players)+2*j+1]
				if !(total > 0) || diff > 1e-6*total {
					t.Errorf("the total loss's gradient on %s: norm %g, %g away from the discriminator's own term's", name, total, diff)
				}
			}
			m, err := NewModel(testutil.Backend(t, ""), c, store)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			err = m.Save(dir, nil)
			m.Close()
			if err != nil {
				t.Fatal(err)
			}
			loaded, err := Load(testutil.Backend(t, ""), dir)
			if err != nil {
				t.Fatal(err)
			}
			defer loaded.Close()
			if loaded.Config.AdvWeight != c.AdvWeight {
				t.Errorf("loaded adv_weight %g, saved %g", loaded.Config.AdvWeight, c.AdvWeight)
			}
			z, err := loaded.Encode(voiced(4000, 150), false)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := loaded.Decode(z, 4000, 1); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestAdversarialMetrics: the metrics' names and order for every kind,
// with and without the term (recipe's TestSpeechTokenizerAdversarial
// checks that the training graph gives a value for each).
func TestAdversarialMetrics(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{tinyConfig(Spectrum, vae.Sigma), ""},
		{tinyConfig(Spectrum, vae.Sigma).withAdv(0.1), "adv_g adv_d"},
		{tinyConfig(Spectrum, vae.Sigma).RVQ(2, 8), "ppl1 ppl restarts"},
		{tinyConfig(Spectrum, vae.Sigma).RVQ(2, 8).withAdv(0.1), "ppl1 ppl restarts adv_g adv_d"},
	} {
		if got := strings.Join(tc.c.TrainingMetrics(), " "); got != tc.want {
			t.Errorf("kind %v, adv_weight %g: metrics %q, want %q", tc.c.Kind, tc.c.AdvWeight, got, tc.want)
		}
	}
}

func (c Config) withAdv(w float64) Config {
	c.AdvWeight = w
	return c
}

// TestCheckCrop: crops shorter than a discriminator patch are refused
// with the adversarial term, and accepted without it.
func TestCheckCrop(t *testing.T) {
	c := DefaultConfig()
	if err := c.CheckCrop(1); err != nil {
		t.Errorf("no adversarial term, 1-frame crops: %v", err)
	}
	c.AdvWeight = 0.1
	if err := c.CheckCrop(1); err == nil {
		t.Error("a 1-frame crop (5 STFT frames) accepted for 8-frame patches")
	}
	if err := c.CheckCrop(2); err != nil {
		t.Errorf("a 2-frame crop (10 STFT frames): %v", err)
	}
}

// TestGrownDecoderStartsAsTheSmallerOne: a decoder grown by two blocks,
// with the smaller one's weights copied and GrownDecoderOutputs set to
// zero, decodes the same latents to the same audio, in both domains and
// with the frame-rate stages; left at their random start, the new blocks
// change it. The grown config's Specs have the encoder's blocks unchanged.
func TestGrownDecoderStartsAsTheSmallerOne(t *testing.T) {
	for name, c := range configs(vae.Sigma) {
		small := newModel(t, c)
		grown := c
		grown.DecoderDepth = c.Depth + 2
		if got := grown.DecoderBlocks(); got != 3 {
			t.Fatalf("%s: DecoderBlocks %d, want 3", name, got)
		}
		encoderBlocks := 0
		for _, s := range grown.Specs() {
			if strings.HasPrefix(s.Name, "encoder.blocks.") && strings.HasSuffix(s.Name, ".attn.qkv.weight") {
				encoderBlocks++
			}
		}
		if encoderBlocks != c.Depth {
			t.Fatalf("%s: the grown config has %d encoder blocks, want %d", name, encoderBlocks, c.Depth)
		}
		reconstruct := func(m *Model) []float32 {
			z, err := m.Encode(voiced(4000, 140), false)
			if err != nil {
				t.Fatal(err)
			}
			y, err := m.Decode(z, 4000, 1)
			if err != nil {
				t.Fatal(err)
			}
			return y
		}
		decode := func(zeroed bool) []float32 {
			big := newModel(t, grown)
			from := nn.TrainableByName(small.Store)
			for _, v := range nn.Trainable(big.Store) {
				if sv := from[nn.WeightName(v)]; sv != nil {
					val, err := nn.CopyValue(sv)
					if err != nil {
						t.Fatal(err)
					}
					if err := v.SetValue(val); err != nil {
						t.Fatal(err)
					}
				}
			}
			if zeroed {
				names := grown.GrownDecoderOutputs(c.Depth)
				if len(names) != 4 {
					t.Fatalf("%s: %d grown outputs, want 2 for each of 2 blocks: %v", name, len(names), names)
				}
				if err := nn.ZeroWeights(big.Store, names); err != nil {
					t.Fatal(err)
				}
			}
			return reconstruct(big)
		}
		want := reconstruct(small)
		maxDiff := func(y []float32) float64 {
			d := 0.0
			for i := range y {
				d = max(d, math.Abs(float64(y[i]-want[i])))
			}
			return d
		}
		if d := maxDiff(decode(true)); d > 1e-6 {
			t.Errorf("%s: the grown decoder differs from the smaller one by up to %g", name, d)
		}
		if d := maxDiff(decode(false)); d < 1e-4 {
			t.Errorf("%s: new blocks left at their random start change the audio by only %g", name, d)
		}
	}
}
