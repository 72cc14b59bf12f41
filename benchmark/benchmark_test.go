package benchmark

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/dit"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
)

// tiny is a LatentLM small enough to compile and run in a few seconds, with
// grouped-query attention so that the FLOP count covers it.
func tiny() lm.Config {
	return lm.Config{Dim: 32, Depth: 2, Heads: 2, KVHeads: 1, MLPRatio: 2, HeadDepth: 1, HeadDim: 32,
		Latent: 4, MaxLen: 52, Target: diffusion.Epsilon, Vocab: lm.Vocab{Classes: 10}}
}

func BenchmarkTrainStep(b *testing.B) {
	be := testutil.Backend(b, "")
	for _, arch := range []string{lm.Kind, dit.Kind} {
		b.Run(arch, func(b *testing.B) {
			var (
				j   *job
				err error
			)
			if arch == dit.Kind {
				j, err = prepareTrainDiT(be, dit.FromLM(tiny(), Grid), 4)
			} else {
				j, err = prepareTrain(be, tiny(), 4, Grid*Grid)
			}
			if err != nil {
				b.Fatal(err)
			}
			runJob(b, j)
		})
	}
}

func BenchmarkSample(b *testing.B) {
	be := testutil.Backend(b, "")
	for _, arch := range []string{lm.Kind, dit.Kind} {
		b.Run(arch, func(b *testing.B) {
			j, err := prepareSample(be, arch, tiny(), 4, 2)
			if err != nil {
				b.Fatal(err)
			}
			runJob(b, j)
		})
	}
}

// runJob times j's calls after a compiling call and reports the counted
// matmul rate, items/s and, as the project prints with every figure, the
// CPU's features.
func runJob(b *testing.B, j *job) {
	b.Logf("cpu_features=%q", CPUFeatures())
	if err := j.call(); err != nil { // compile
		b.Fatal(err)
	}
	for b.Loop() {
		if err := j.call(); err != nil {
			b.Fatal(err)
		}
	}
	s := b.Elapsed().Seconds()
	b.ReportMetric(j.flops*float64(b.N)/s/1e9, "GFLOP/s")
	b.ReportMetric(float64(j.items*b.N)/s, "items/s")
}

// matmulFLOPs counts 2 FLOPs per weight entry of the 2-D specs that use
// selects: a weight [out, in] applied to one vector costs out·in
// multiply-adds.
func matmulFLOPs(specs []nn.Spec, use func(name string) bool) float64 {
	var f float64
	for _, s := range specs {
		if len(s.Shape) == 2 && use(s.Name) {
			f += 2 * float64(s.Shape[0]*s.Shape[1])
		}
	}
	return f
}

func hasAnyPrefix(name string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// lmCounts splits LatentLM's weights by how often they run: the backbone
// once per item (with its attention over keys items), the softmax head
// once per item in training only, the diffusion head once per evaluation.
func lmCounts(c lm.Config, keys int) (backbone, softmax, head float64) {
	specs := c.Specs()
	isHead := func(n string) bool {
		return hasAnyPrefix(n, "noisy_x_embedder.", "t_embedder.", "diffusion_blocks.", "final_layer.")
	}
	backbone = matmulFLOPs(specs, func(n string) bool {
		return !isHead(n) && n != "lm_head.weight" && n != "tok_embeddings.weight" // a lookup
	}) + float64(c.Depth)*2*2*float64(keys*c.Dim) // scores and weighted values
	return backbone, matmulFLOPs(specs, func(n string) bool { return n == "lm_head.weight" }), matmulFLOPs(specs, isHead)
}

// ditForward counts one forward pass of a DiT over batch grids: per item
// the patch embedding, the blocks (with attention over all items) and the
// output projection; per image the timestep embedder and the adaLN
// modulations.
func ditForward(c dit.Config, batch int) float64 {
	specs := c.Specs()
	n := float64(c.Items())
	perImage := func(name string) bool {
		return strings.HasPrefix(name, "t_embedder.") || strings.Contains(name, "adaLN_modulation")
	}
	perItem := matmulFLOPs(specs, func(name string) bool {
		return !perImage(name) && !strings.HasPrefix(name, "y_embedder.") // a lookup
	}) + float64(c.Depth)*2*2*n*float64(c.Dim)
	return float64(batch) * (n*perItem + matmulFLOPs(specs, perImage))
}

func expectClose(t *testing.T, what string, got, want float64) {
	t.Helper()
	if !(want > 0) || math.Abs(got-want) > 1e-9*want {
		t.Errorf("%s: the benchmark counts %.6g FLOPs, the weight shapes %.6g", what, got, want)
	}
}

// TestFLOPs checks the FLOP counts the benchmarks report against a count
// from the weight shapes of a tiny configuration, and that every result
// names the machine.
func TestFLOPs(t *testing.T) {
	be := testutil.Backend(t, "")
	cfg := tiny()
	const batch, items, solverSteps = 3, 5, 2
	check := func(r Result, err error) Result {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if r.CPUs < 1 || r.CPUFeatures == "" || r.Date == "" || r.Backend == "" || !(r.MedianS > 0) {
			t.Errorf("%s: machine or timing fields missing: %+v", r.Name, r)
		}
		return r
	}

	r := check(Train(be, cfg, batch, items, 1))
	length := items + 2 // class, <BOL> and the latents predict the next item
	bb, sm, head := lmCounts(cfg, length)
	expectClose(t, "LatentLM training step", r.GFLOPs*r.MedianS*1e9,
		3*batch*float64(length)*(bb+sm+BatchMul*head))
	if r.Arch != lm.Kind || r.SeqLen != items+3 || r.Batch != batch || r.Params != nn.CountParams(cfg.Specs()) {
		t.Errorf("LatentLM training result %+v", r)
	}

	dc := dit.FromLM(cfg, 2)
	r = check(TrainDiT(be, dc, batch, 1))
	expectClose(t, "DiT training step", r.GFLOPs*r.MedianS*1e9, 3*ditForward(dc, batch))
	if r.Arch != dit.Kind || r.SeqLen != 4 {
		t.Errorf("DiT training result %+v", r)
	}

	// Sampling: two guidance streams; LatentLM steps its backbone over the
	// class token and the latents with attention over the whole cache, and
	// runs its head at every solver step of every latent.
	n := Grid * Grid
	bb, _, head = lmCounts(cfg, cfg.MaxLen)
	want := map[string]float64{
		lm.Kind:  2 * (float64(n+1)*bb + float64(n*solverSteps)*head),
		dit.Kind: 2 * solverSteps * ditForward(dit.FromLM(cfg, Grid), 1),
	}
	for _, arch := range []string{lm.Kind, dit.Kind} {
		r := check(Sample(be, arch, cfg, batch, solverSteps, 1))
		expectClose(t, arch+" sampling, per image", r.GFLOPPerImage*1e9, want[arch])
		expectClose(t, arch+" sampling, rate", r.GFLOPs*r.MedianS*1e9, batch*want[arch])
		if r.SolverSteps != solverSteps || r.Name != arch+"_sample_b3_steps2_cfg" {
			t.Errorf("%s sampling result %+v", arch, r)
		}
	}
	if _, err := Sample(be, "rnn", cfg, 1, 1, 1); err == nil {
		t.Error("Sample accepted an unknown architecture")
	}
}

// TestResultJSON pins the JSON field names that `latentlm bench --json`
// prints and scripts read.
func TestResultJSON(t *testing.T) {
	raw, err := json.Marshal(Result{Name: "x", SeqLen: 1, GFLOPs: 1, SolverSteps: 1, GFLOPPerImage: 1})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"name", "arch", "backend", "batch", "seq_len", "params", "steps", "first_call_s",
		"median_s", "min_s", "items_per_s", "gflop_per_s", "solver_steps", "gflop_per_image", "cpus", "cpu_features", "date"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, raw)
		}
	}
	if len(m) != 17 {
		t.Errorf("JSON has %d fields, want 17: %s", len(m), raw)
	}
}

func TestThroughputSeries(t *testing.T) {
	rs := []Result{
		{Arch: "latentlm", Params: 1e6, SolverSteps: 20, Batch: 1, ItemsPerS: 2, Backend: "onnx", CPUs: 2, CPUFeatures: "avx2"},
		{Arch: "latentlm", Params: 1e6, SolverSteps: 20, Batch: 4, ItemsPerS: 6},
		{Arch: "dit", Params: 2e6, SolverSteps: 20, Batch: 1, ItemsPerS: 9},
	}
	title, series := ThroughputSeries(rs)
	if !strings.Contains(title, "onnx backend, 2 CPUs: avx2") {
		t.Errorf("title %q", title)
	}
	if len(series) != 2 || series[0].Name != "latentlm (1.00M params), 20 steps" || len(series[0].X) != 2 ||
		series[0].X[1] != 4 || series[0].Y[1] != 6 || series[1].Y[0] != 9 {
		t.Errorf("series %+v", series)
	}
}
