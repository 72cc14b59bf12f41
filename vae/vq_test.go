package vae

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/train"
)

func tinyVQ() Config {
	c := tinyConfig("vq")
	c.Codebook = 32
	return c
}

func randVec(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// TestQuantizeNearestCode: Quantize returns, for every latent vector, the
// index of its nearest codebook entry (a float64 argmin on the host) and
// that entry.
func TestQuantizeNearestCode(t *testing.T) {
	const b, n, ch, k = 3, 7, 4, 16
	rng := rand.New(rand.NewPCG(1, 2))
	z, book := randVec(rng, b*n*ch), randVec(rng, k*ch)
	out, err := ExecOnceN(testutil.Backend(t, ""), func(z, book *Node) (*Node, *Node) { return Quantize(z, book) },
		tensors.FromFlatDataAndDimensions(z, b, n, ch), tensors.FromFlatDataAndDimensions(book, k, ch))
	if err != nil {
		t.Fatal(err)
	}
	e, codes := tensors.MustCopyFlatData[float32](out[0]), tensors.MustCopyFlatData[int32](out[1])
	if got := out[1].Shape().Dimensions; len(got) != 2 || got[0] != b || got[1] != n {
		t.Fatalf("codes shape %v, want [%d %d]", got, b, n)
	}
	for i := range b * n {
		best, bestD := -1, math.Inf(1)
		for j := range k {
			var d float64
			for c := range ch {
				x := float64(z[i*ch+c]) - float64(book[j*ch+c])
				d += x * x
			}
			if d < bestD {
				best, bestD = j, d
			}
		}
		if int(codes[i]) != best {
			t.Errorf("vector %d: code %d, nearest is %d", i, codes[i], best)
		}
		for c := range ch {
			if e[i*ch+c] != book[best*ch+c] {
				t.Fatalf("vector %d: entry %v, want codebook row %d %v", i, e[i*ch:(i+1)*ch], best, book[best*ch:(best+1)*ch])
			}
		}
	}
}

// TestStraightThroughGradients: with z_q = StraightThrough(z, e), the
// gradient of Σ c·z_q with respect to z is c (the gradient with respect to
// z_q, copied past the quantiser) and reaches the codebook only through
// VQLoss: d/dz = c + β·2(z − e)/n, d/de_k = Σ_{i: code i = k} 2(e_k − z_i)/n.
func TestStraightThroughGradients(t *testing.T) {
	const n, ch, k, beta = 12, 3, 5, 0.25
	rng := rand.New(rand.NewPCG(3, 4))
	z, book, coef := randVec(rng, n*ch), randVec(rng, k*ch), randVec(rng, n*ch)
	out, err := ExecOnceN(testutil.Backend(t, ""), func(z, book, coef *Node) []*Node {
		e, _ := Quantize(z, book)
		st := ReduceAllSum(Mul(coef, StraightThrough(z, e)))
		g := Gradient(st, z, book)
		gv := Gradient(Add(st, VQLoss(z, e, beta)), z, book)
		return []*Node{g[0], g[1], gv[0], gv[1]}
	}, tensors.FromFlatDataAndDimensions(z, n, ch), tensors.FromFlatDataAndDimensions(book, k, ch), tensors.FromFlatDataAndDimensions(coef, n, ch))
	if err != nil {
		t.Fatal(err)
	}
	gz, gbook := tensors.MustCopyFlatData[float32](out[0]), tensors.MustCopyFlatData[float32](out[1])
	for i := range gz {
		if gz[i] != coef[i] {
			t.Fatalf("d/dz[%d] = %v, want c = %v", i, gz[i], coef[i])
		}
	}
	for i, v := range gbook {
		if v != 0 {
			t.Fatalf("d/dcodebook[%d] = %v without VQLoss, want 0", i, v)
		}
	}
	// Expected gradients with the VQ loss, from the host's nearest codes.
	wantZ, wantBook := make([]float64, n*ch), make([]float64, k*ch)
	for i := range n {
		best, bestD := 0, math.Inf(1)
		for j := range k {
			var d float64
			for c := range ch {
				x := float64(z[i*ch+c] - book[j*ch+c])
				d += x * x
			}
			if d < bestD {
				best, bestD = j, d
			}
		}
		for c := range ch {
			diff := float64(z[i*ch+c] - book[best*ch+c])
			wantZ[i*ch+c] = float64(coef[i*ch+c]) + beta*2*diff/(n*ch)
			wantBook[best*ch+c] -= 2 * diff / (n * ch)
		}
	}
	for i, v := range tensors.MustCopyFlatData[float32](out[2]) {
		if math.Abs(float64(v)-wantZ[i]) > 1e-5 {
			t.Errorf("with VQLoss d/dz[%d] = %v, want %v", i, v, wantZ[i])
		}
	}
	for i, v := range tensors.MustCopyFlatData[float32](out[3]) {
		if math.Abs(float64(v)-wantBook[i]) > 1e-5 {
			t.Errorf("with VQLoss d/dcodebook[%d] = %v, want %v", i, v, wantBook[i])
		}
	}
}

// TestVQTrainingReducesLoss: a tiny vq tokenizer on a few MNIST digits.
func TestVQTrainingReducesLoss(t *testing.T) {
	cfg := tinyVQ()
	_, tr := testutil.TinyTrainer(t, cfg.Specs(), func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
		l := cfg.Loss(scope, w, in[0])
		return []*Node{l.Total, l.Recon, l.Reg}
	})
	imgs := mnistImages(t, 128)
	var flat []float32
	for _, im := range imgs {
		flat = append(flat, im...)
	}
	testutil.ExpectLossFalls(t, 40, 4, 0.6, func(step int) float64 {
		b := (step % 4) * 32
		res, err := tr.Step(tensors.FromFlatDataAndDimensions(flat[b*784:(b+32)*784], 32, 28, 28))
		if err != nil {
			t.Fatal(err)
		}
		return res.Loss
	})
}

// TestVQModelRoundTrip: a vq tokenizer's codes are in range, its latents
// are the normalised codebook entries of its codes (CodeLatents), and both
// survive a checkpoint round trip, config and codebook included.
func TestVQModelRoundTrip(t *testing.T) {
	cfg := tinyVQ()
	cfg.CommitWeight = 0.5
	m := newModel(t, cfg)
	imgs := mnistImages(t, 64)
	if err := m.ComputeStats(func(yield func([][]float32) error) error { return yield(imgs) }); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "vq")
	if err := m.Save(dir, nil, false); err != nil {
		t.Fatal(err)
	}
	back, err := Load(testutil.Backend(t, ""), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	if back.Config != cfg {
		t.Fatalf("config %+v, want %+v", back.Config, cfg)
	}
	codes, err := m.Codes(imgs)
	if err != nil {
		t.Fatal(err)
	}
	codes2, err := back.Codes(imgs)
	if err != nil {
		t.Fatal(err)
	}
	zs, err := back.Encode(imgs, true)
	if err != nil {
		t.Fatal(err)
	}
	fromCodes, err := back.CodeLatents(codes2)
	if err != nil {
		t.Fatal(err)
	}
	used := map[int32]bool{}
	for i := range imgs {
		if len(codes[i]) != cfg.Items() {
			t.Fatalf("image %d: %d codes, want %d", i, len(codes[i]), cfg.Items())
		}
		for j, k := range codes[i] {
			if k != codes2[i][j] || k < 0 || int(k) >= cfg.Codebook {
				t.Fatalf("image %d latent %d: code %d before saving, %d after", i, j, k, codes2[i][j])
			}
			used[k] = true
		}
		for j := range zs[i] {
			if math.Abs(float64(zs[i][j]-fromCodes[i][j])) > 1e-5 {
				t.Fatalf("image %d value %d: Encode %v, CodeLatents %v", i, j, zs[i][j], fromCodes[i][j])
			}
		}
	}
	t.Logf("%d of %d codes used by %d images", len(used), cfg.Codebook, len(imgs))
	if rec, err := back.Decode(fromCodes); err != nil || len(rec) != len(imgs) || len(rec[0]) != 784 {
		t.Fatalf("decoding codes: %d images, %v", len(rec), err)
	}
	if _, err := back.CodeLatents([][]int32{make([]int32, cfg.Items()-1)}); err == nil {
		t.Error("short codes accepted")
	}
	bad := make([]int32, cfg.Items())
	bad[3] = int32(cfg.Codebook)
	if _, err := back.CodeLatents([][]int32{bad}); err == nil || !strings.Contains(err.Error(), "outside the codebook") {
		t.Errorf("code out of range: %v", err)
	}
}

// TestVQConfig: kind vq needs a codebook, the other kinds refuse one, and
// their config.json is unchanged (no codebook field).
func TestVQConfig(t *testing.T) {
	c := tinyVQ()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(c.JSON()), `"codebook": 32`) || !strings.Contains(string(c.JSON()), `"kind": "vq"`) {
		t.Errorf("vq config.json lacks its kind or codebook:\n%s", c.JSON())
	}
	if c.Beta() != DefaultCommitWeight {
		t.Errorf("default β %v", c.Beta())
	}
	c.Codebook = 0
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "codebook") {
		t.Errorf("vq without a codebook: %v", err)
	}
	c.Codebook = 32
	for _, bad := range []struct {
		decay, restart float64
		msg            string
	}{{1, 0, "codebook_decay"}, {-0.1, 0, "codebook_decay"}, {0, 1, "restart_below needs"}, {0.99, -1, "restart_below"}} {
		c.CodebookDecay, c.RestartBelow = bad.decay, bad.restart
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), bad.msg) {
			t.Errorf("decay %v restart %v: %v, want an error about %s", bad.decay, bad.restart, err, bad.msg)
		}
	}
	c.CodebookDecay, c.RestartBelow = 0.99, 1
	if err := c.Validate(); err != nil || !c.CodebookEMAEnabled() {
		t.Errorf("EMA vq config: %v", err)
	}
	s := tinyConfig("sigma")
	if s.CodebookDecay = 0.9; s.Validate() == nil {
		t.Error("sigma with a codebook decay accepted")
	}
	s.CodebookDecay = 0
	if j := string(s.JSON()); strings.Contains(j, "codebook") || strings.Contains(j, "commit") {
		t.Errorf("sigma config.json mentions the codebook:\n%s", j)
	}
	if len(s.Specs()) != len(tinyConfig("ae").Specs()) {
		t.Error("sigma and ae weights differ")
	}
	s.Codebook = 16
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "only kind vq") {
		t.Errorf("sigma with a codebook: %v", err)
	}
}

// TestCodebookEMAMatchesReference: one CodebookEMA update equals eqs. 6–8
// of van den Oord et al. 2017 (appendix A.1) with Laplace smoothing,
// computed in float64 on the host, on a small case where one code is
// chosen by no vector (its entry must stay finite: m_k/N̂_k).
func TestCodebookEMAMatchesReference(t *testing.T) {
	const m, ch, k, decay = 10, 3, 4, 0.9
	rng := rand.New(rand.NewPCG(5, 6))
	z, sum := randVec(rng, m*ch), randVec(rng, k*ch)
	size := []float32{1, 0.5, 2, 0.25}
	codes := []int32{0, 2, 2, 1, 0, 0, 2, 1, 0, 2} // code 3 unused
	out, err := ExecOnceN(testutil.Backend(t, ""), func(size, sum, z, codes *Node) []*Node {
		a, b, c := CodebookEMA(size, sum, z, codes, decay)
		return []*Node{a, b, c}
	}, tensors.FromFlatDataAndDimensions(size, k), tensors.FromFlatDataAndDimensions(sum, k, ch),
		tensors.FromFlatDataAndDimensions(z, 2, m/2, ch), tensors.FromFlatDataAndDimensions(codes, 2, m/2))
	if err != nil {
		t.Fatal(err)
	}
	wantN, wantM := make([]float64, k), make([]float64, k*ch)
	for j := range k {
		wantN[j] = decay * float64(size[j])
		for c := range ch {
			wantM[j*ch+c] = decay * float64(sum[j*ch+c])
		}
	}
	for i, code := range codes {
		wantN[code] += 1 - decay
		for c := range ch {
			wantM[int(code)*ch+c] += (1 - decay) * float64(z[i*ch+c])
		}
	}
	var n float64
	for _, v := range wantN {
		n += v
	}
	gotN, gotM, gotE := tensors.MustCopyFlatData[float32](out[0]), tensors.MustCopyFlatData[float32](out[1]), tensors.MustCopyFlatData[float32](out[2])
	for j := range k {
		if math.Abs(float64(gotN[j])-wantN[j]) > 1e-6 {
			t.Errorf("N_%d = %v, want %v", j, gotN[j], wantN[j])
		}
		smoothed := (wantN[j] + 1e-5) / (n + k*1e-5) * n
		for c := range ch {
			i := j*ch + c
			if math.Abs(float64(gotM[i])-wantM[i]) > 1e-6 {
				t.Errorf("m_%d[%d] = %v, want %v", j, c, gotM[i], wantM[i])
			}
			if want := wantM[i] / smoothed; math.Abs(float64(gotE[i])-want) > 1e-5*math.Max(1, math.Abs(want)) {
				t.Errorf("e_%d[%d] = %v, want %v", j, c, gotE[i], want)
			}
		}
	}
}

// TestRestartDead: the codes whose moving count is below the threshold
// become the picked encoder outputs, with count τ and sum τ·entry; the
// others are untouched, and the count of restarts is right.
func TestRestartDead(t *testing.T) {
	const m, ch, k, tau = 6, 2, 4, 0.5
	rng := rand.New(rand.NewPCG(7, 8))
	z, book, sum := randVec(rng, m*ch), randVec(rng, k*ch), randVec(rng, k*ch)
	size := []float32{0.1, 3, 0.49, 0.5} // codes 0 and 2 dead; 3 sits on τ and lives
	pick := []int32{5, 0, 2, 1}
	out, err := ExecOnceN(testutil.Backend(t, ""), func(book, size, sum, z, pick *Node) []*Node {
		a, b, c, d := RestartDead(book, size, sum, z, pick, tau)
		return []*Node{a, b, c, d}
	}, tensors.FromFlatDataAndDimensions(book, k, ch), tensors.FromFlatDataAndDimensions(size, k),
		tensors.FromFlatDataAndDimensions(sum, k, ch), tensors.FromFlatDataAndDimensions(z, m, ch), tensors.FromFlatDataAndDimensions(pick, k))
	if err != nil {
		t.Fatal(err)
	}
	gotE, gotN, gotM := tensors.MustCopyFlatData[float32](out[0]), tensors.MustCopyFlatData[float32](out[1]), tensors.MustCopyFlatData[float32](out[2])
	if r := tensors.ToScalar[float32](out[3]); r != 2 {
		t.Errorf("%v codes restarted, want 2", r)
	}
	for j := range k {
		dead := size[j] < tau
		wantN := size[j]
		if dead {
			wantN = tau
		}
		if gotN[j] != wantN {
			t.Errorf("N_%d = %v, want %v", j, gotN[j], wantN)
		}
		for c := range ch {
			wantE, wantM := book[j*ch+c], sum[j*ch+c]
			if dead {
				wantE = z[int(pick[j])*ch+c]
				wantM = tau * wantE
			}
			if gotE[j*ch+c] != wantE || math.Abs(float64(gotM[j*ch+c]-wantM)) > 1e-7 {
				t.Errorf("code %d (dead %v) channel %d: e %v m %v, want %v %v", j, dead, c, gotE[j*ch+c], gotM[j*ch+c], wantE, wantM)
			}
		}
	}
}

// TestCodePerplexity: codes spread evenly over m of k entries have
// perplexity m; one code alone has 1.
func TestCodePerplexity(t *testing.T) {
	b := testutil.Backend(t, "")
	for _, tc := range []struct {
		codes []int32
		want  float64
	}{{[]int32{0, 3, 0, 3, 5, 5}, 3}, {[]int32{2, 2, 2, 2}, 1}} {
		got, err := ExecOnce(b, func(c *Node) *Node { return CodePerplexity(c, 8) }, tensors.FromFlatDataAndDimensions(tc.codes, 2, len(tc.codes)/2))
		if err != nil {
			t.Fatal(err)
		}
		if p := float64(tensors.ToScalar[float32](got)); math.Abs(p-tc.want) > 1e-5 {
			t.Errorf("codes %v: perplexity %v, want %v", tc.codes, p, tc.want)
		}
	}
}

// TestEMARestartsRescueCollapsedCodebook: a codebook initialised far from
// every encoder output, where one code wins every vector. Trained by its
// gradient it stays collapsed on that code; with moving averages and
// restarts the other codes are re-seeded at the first step (all but one
// restarted, their entries now near the encoder outputs), the codebook is
// left to the averages (not trainable, Adam does not move it), and after
// a few steps the images use many codes.
func TestEMARestartsRescueCollapsedCodebook(t *testing.T) {
	imgs := mnistImages(t, 32)
	var flat []float32
	for _, im := range imgs {
		flat = append(flat, im...)
	}
	batch := func() *tensors.Tensor { return tensors.FromFlatDataAndDimensions(flat, 32, 28, 28) }
	run := func(cfg Config, steps int) (used int, restartedFirst float64, store *model.Store) {
		store = model.NewStore()
		if err := nn.Init(store, cfg.Specs(), 1, dtypes.Float32); err != nil {
			t.Fatal(err)
		}
		if err := store.SetRNGStateFromSeed(1); err != nil {
			t.Fatal(err)
		}
		// Code k far out along the diagonal: code 0 is nearest to all.
		far := make([]float32, cfg.Codebook*cfg.Channels)
		for i := range far {
			far[i] = 50 + 10*float32(i/cfg.Channels)
		}
		if err := store.GetVariable(nn.WeightsScope + "/" + CodebookWeight).SetValue(tensors.FromFlatDataAndDimensions(far, cfg.Codebook, cfg.Channels)); err != nil {
			t.Fatal(err)
		}
		if err := cfg.PrepareTraining(store); err != nil {
			t.Fatal(err)
		}
		tc := train.DefaultConfig()
		tc.LR, tc.WarmupSteps, tc.TotalSteps = 3e-3, 5, 60
		trainer, err := train.New(testutil.Backend(t, ""), store, tc, func(scope *model.Scope, w nn.Weights, in []*Node) []*Node {
			l := cfg.Loss(scope, w, in[0])
			restarted := ScalarZero(in[0].Graph(), l.Total.DType())
			if cfg.CodebookEMAEnabled() {
				restarted = cfg.UpdateCodebook(scope, l.Mu, l.Codes)
			}
			return []*Node{l.Total, restarted, CodePerplexity(l.Codes, cfg.Codebook)}
		})
		if err != nil {
			t.Fatal(err)
		}
		for i := range steps {
			res, err := trainer.Step(batch())
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				restartedFirst = res.Metrics[0]
			}
		}
		m, err := NewModel(testutil.Backend(t, ""), cfg, store)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		codes, err := m.Codes(imgs)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int32]bool{}
		for _, c := range codes {
			for _, k := range c {
				seen[k] = true
			}
		}
		return len(seen), restartedFirst, store
	}
	grad := tinyVQ()
	if used, _, _ := run(grad, 5); used != 1 {
		t.Fatalf("gradient codebook from a far init uses %d codes, want the 1 of the collapse this test needs", used)
	}
	ema := tinyVQ()
	ema.CodebookDecay, ema.RestartBelow = 0.99, 1
	used, restarted, store := run(ema, 5)
	if restarted != float64(ema.Codebook-1) {
		t.Errorf("first step restarted %v codes, want %d (all but the winner)", restarted, ema.Codebook-1)
	}
	if used < ema.Codebook/4 {
		t.Errorf("with EMA and restarts %d of %d codes used, want ≥ %d", used, ema.Codebook, ema.Codebook/4)
	}
	if v := store.GetVariable(nn.WeightsScope + "/" + CodebookWeight); v.Trainable {
		t.Error("an EMA codebook is trainable: Adam would move it too")
	}
	if store.GetVariable(ClusterSizePath) == nil || store.GetVariable(EmbedSumPath) == nil {
		t.Error("no EMA state in the store")
	}
	t.Logf("EMA + restarts: %d of %d codes used after 5 steps", used, ema.Codebook)
}
