package vae

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/nn"
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
	s := tinyConfig("sigma")
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
