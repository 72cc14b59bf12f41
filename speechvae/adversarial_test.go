package speechvae

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/vae"
)

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
		score, _ := discriminate(weight, logMag(real), fft)
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

// TestAdversarialGradients: in the training loss, the decoder's
// adversarial term moves the encoder and decoder and not the
// discriminator, and the discriminator's term the reverse; and encode and
// decode work without reading the discriminator.
func TestAdversarialGradients(t *testing.T) {
	c := tinyConfig(Spectrum, vae.Sigma)
	c.AdvWeight = 0.5
	store := model.NewStore()
	if err := nn.Init(store, c.Specs(), 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	if err := store.SetRNGStateFromSeed(3); err != nil {
		t.Fatal(err)
	}
	players := []string{"encoder.out.weight", "decoder.out.weight", discNames[0], discNames[2]}
	e, err := model.NewExec(testutil.Backend(t, ""), store, func(scope *model.Scope, x *Node) []*Node {
		w := nn.WeightsOf(scope.Store(), x.Graph())
		l := c.Loss(scope, w, x, nil)
		var wrt []*Node
		for _, name := range players {
			wrt = append(wrt, w.Get("%s", name))
		}
		var norms []*Node
		for _, loss := range []*Node{l.AdvGen, l.AdvDisc} {
			for _, g := range Gradient(loss, wrt...) {
				norms = append(norms, Sqrt(ReduceAllSum(Square(g))))
			}
		}
		return []*Node{Stack(norms, 0)}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Finalize()
	const l = 8
	var x []float32
	for _, f0 := range []float64{110, 220} {
		in, err := c.Inputs(voiced(l*c.SamplesPerLatent(), f0))
		if err != nil {
			t.Fatal(err)
		}
		x = append(x, in...)
	}
	out, err := e.Call(tensors.FromFlatDataAndDimensions(x, 2, l, c.InputWidth()))
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
	m, err := NewModel(testutil.Backend(t, ""), c, store)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	z, err := m.Encode(voiced(4000, 150), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Decode(z, 4000, 1); err != nil {
		t.Fatal(err)
	}
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
