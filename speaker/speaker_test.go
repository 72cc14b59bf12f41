package speaker

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/internal/deps"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/speech"
	"github.com/latentlm/latentlm/wav"
)

// tinyConfig is a judge small enough to train in seconds.
func tinyConfig(voices ...string) Config {
	return Config{Mels: 80, Frames: 50, Kernel: 3, Widths: []int{8}, Embedding: 8, Voices: voices, FloorDB: 50, SpeechDB: 30}
}

func TestConfig(t *testing.T) {
	c := DefaultConfig()
	c.Voices = []string{"a", "b", "c", "d", "e", "f", "g"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	// Two 5-tap convolutions of 96 channels, 192 pooled statistics into
	// 128, the head: about 0.4 MB of float32.
	want := 5*80*96 + 96 + 5*96*96 + 96 + 128*192 + 128 + 7*128 + 7
	if got := nn.CountParams(c.Specs()); got != want {
		t.Errorf("%d parameters, want %d", got, want)
	}
	for name, mutate := range map[string]func(*Config){
		"even kernel":    func(c *Config) { c.Kernel = 4 },
		"no widths":      func(c *Config) { c.Widths = nil },
		"zero width":     func(c *Config) { c.Widths = []int{8, 0} },
		"one voice":      func(c *Config) { c.Voices = c.Voices[:1] },
		"repeat voice":   func(c *Config) { c.Voices = []string{"a", "a"} },
		"empty voice":    func(c *Config) { c.Voices = []string{"a", ""} },
		"speech>floor":   func(c *Config) { c.SpeechDB = 60 },
		"zero frames":    func(c *Config) { c.Frames = 0 },
		"zero mels":      func(c *Config) { c.Mels = 0 },
		"zero embedding": func(c *Config) { c.Embedding = 0 },
	} {
		bad := c
		bad.Voices = append([]string(nil), c.Voices...)
		mutate(&bad)
		if bad.Validate() == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// voiced is a synthetic "voice": harmonics of f0 between lo and hi Hz
// (each with its own phase), syllables of 150 ms separated by 50 ms of
// digital silence, at amplitude amp.
func voiced(rng *rand.Rand, seconds, f0, lo, hi, amp float64) []float32 {
	n := int(seconds * speech.Rate)
	x := make([]float32, n)
	var phases []float64
	for h := f0; h < hi; h += f0 {
		phases = append(phases, rng.Float64()*2*math.Pi)
	}
	jitter := 1 + 0.05*(rng.Float64()-0.5)
	for i := range x {
		tt := float64(i) / speech.Rate
		if math.Mod(tt, 0.2) > 0.15 {
			continue // a pause
		}
		var s float64
		for k, p := range phases {
			f := f0 * jitter * float64(k+1)
			if f >= lo {
				s += math.Sin(2*math.Pi*f*tt + p)
			}
		}
		x[i] = float32(amp * s / float64(len(phases)))
	}
	return x
}

// synthVoices are two voices of different pitch and spectrum.
var synthVoices = map[string]func(rng *rand.Rand, seconds float64) []float32{
	"low":  func(rng *rand.Rand, s float64) []float32 { return voiced(rng, s, 110, 0, 1200, 0.5) },
	"high": func(rng *rand.Rand, s float64) []float32 { return voiced(rng, s, 230, 1500, 4500, 0.5) },
}

// writeSyntheticCache writes a speech cache of the synthetic voices:
// train clips of every voice but heldout, valid and test clips of all,
// each 0.4–2 s.
func writeSyntheticCache(t *testing.T, dir, heldout string, perSplit int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 5))
	man := speech.Manifest{Format: 1, Rate: speech.Rate, Seed: 5, Heldout: []string{heldout}}
	var rows []string
	for _, v := range []string{"low", "high"} {
		man.Voices = append(man.Voices, speech.VoiceInfo{Voice: speech.Voice{Name: v, Synth: "test", Rate: speech.Rate}, Heldout: v == heldout})
		if err := os.MkdirAll(filepath.Join(dir, "wav", v), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, split := range speech.Splits {
			if split == speech.SplitTrain && v == heldout {
				continue
			}
			for i := range perSplit {
				secs := 0.4 + 1.6*rng.Float64()
				file := fmt.Sprintf("wav/%s/numbers-%s-%04d.wav", v, split, i)
				if err := wav.Write(filepath.Join(dir, file), wav.Audio{Rate: speech.Rate, Samples: synthVoices[v](rng, secs)}); err != nil {
					t.Fatal(err)
				}
				rows = append(rows, fmt.Sprintf("%s\t%s\tnumbers\t%s\t%.4f\tone two", file, split, v, secs))
			}
		}
	}
	js, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, speech.ManifestFile), js, 0o644); err != nil {
		t.Fatal(err)
	}
	tsv := "file\tsplit\tset\tvoice\tseconds\ttext\n" + strings.Join(rows, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, speech.UtterancesFile), []byte(tsv), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFeatures(t *testing.T) {
	c := tinyConfig("a", "b")
	rng := rand.New(rand.NewPCG(1, 1))
	x := voiced(rng, 1, 110, 0, 1200, 0.5) // 16000 samples: 100 frames of 10 ms
	f, err := c.features(x)
	if err != nil {
		t.Fatal(err)
	}
	if f.frames != 100 || len(f.x) != 100*c.Mels || len(f.speech) != 100 {
		t.Fatalf("%d frames, %d values, %d mask entries; want 100, 100×%d, 100", f.frames, len(f.x), len(f.speech), c.Mels)
	}
	// Syllables of 150 ms and pauses of 50 ms: the mask keeps the one and
	// drops the middle of the other (its edges hold the window's spill).
	for _, tc := range []struct {
		frame  int
		speech float32
	}{{7, 1}, {17, 0}, {27, 1}, {37, 0}} {
		if f.speech[tc.frame] != tc.speech {
			t.Errorf("frame %d: speech %v, want %v", tc.frame, f.speech[tc.frame], tc.speech)
		}
	}
	// The level is removed: a tenth of the gain gives the same features.
	quiet := make([]float32, len(x))
	for i, v := range x {
		quiet[i] = v / 10
	}
	g, err := c.features(quiet)
	if err != nil {
		t.Fatal(err)
	}
	for i := range f.x {
		if d := math.Abs(float64(f.x[i] - g.x[i])); d > 1e-3 {
			t.Fatalf("value %d: %v at full gain, %v at a tenth", i, f.x[i], g.x[i])
		}
	}
	// Nothing lies below the floor.
	floor := float32(-dbToNats(c.FloorDB)) - 1e-4
	for i, v := range f.x {
		if v < floor {
			t.Fatalf("value %d is %v, below the floor %v", i, v, floor)
		}
	}
	if _, err := c.features(nil); err == nil {
		t.Error("empty clip: no error")
	}
	if _, err := c.features([]float32{0, float32(math.NaN())}); err == nil {
		t.Error("NaN sample: no error")
	}
}

func TestSpans(t *testing.T) {
	c := tinyConfig("a", "b") // windows of 50 frames
	for _, tc := range []struct {
		n    int
		want []span
	}{
		{1, []span{{0, 1}}},
		{50, []span{{0, 50}}},
		{100, []span{{0, 50}, {50, 50}}},
		{120, []span{{0, 50}, {50, 50}, {70, 50}}},
	} {
		got := c.spans(tc.n)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%d frames: %v, want %v", tc.n, got, tc.want)
		}
	}
}

func TestSimilarity(t *testing.T) {
	a := []float32{1, 2, 3}
	for _, tc := range []struct {
		a, b []float32
		want float64
	}{
		{a, a, 1},
		{a, []float32{2, 4, 6}, 1},
		{[]float32{1, 0}, []float32{0, 5}, 0},
		{a, []float32{-1, -2, -3}, -1},
		{a, []float32{0, 0, 0}, 0},
		{a, []float32{1, 2}, 0},
	} {
		if got := Similarity(tc.a, tc.b); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("Similarity(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
	c := Centroid([][]float32{{1, 0}, {0, 1}})
	if math.Abs(Similarity(c, []float32{1, 1})-1) > 1e-6 || math.Abs(float64(c[0])-1) > 1e-6 {
		t.Errorf("centroid of the axes: %v, want (1, 1)", c)
	}
}

// TestTrainSynthetic trains a tiny judge on a synthetic cache of two
// voices, one of them held out of the train split (so it learns from its
// valid split), and checks that the loss falls, that it tells the voices'
// test clips apart, and that the saved checkpoint predicts the same.
func TestTrainSynthetic(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "speech")
	writeSyntheticCache(t, data, "high", 8)
	o := DefaultTrainOptions()
	o.Data, o.Out, o.Quiet = data, filepath.Join(dir, "judge"), true
	o.Model = tinyConfig()
	o.Steps, o.Batch, o.LR = 60, 8, 1e-2
	o.Command = "test"
	m, err := Train(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if fmt.Sprint(m.Voices) != "[low high]" {
		t.Errorf("voices %v, want the manifest's order [low high]", m.Voices)
	}
	test := m.Info["test"].(map[string]any)
	if acc := test["accuracy"].(float64); acc != 1 {
		t.Errorf("test accuracy %v, want 1", acc)
	}
	trained := m.Info["train"].(map[string]any)
	if s := trained["high"].(map[string]any)["split"]; s != speech.SplitValid {
		t.Errorf("the held-out voice trained on %v, want its valid split", s)
	}
	if s := trained["low"].(map[string]any)["split"]; s != speech.SplitTrain {
		t.Errorf("low trained on %v, want its train split", s)
	}
	if _, err := os.Stat(filepath.Join(o.Out, "loss.png")); err != nil {
		t.Error(err)
	}

	// The checkpoint predicts what the returned model does.
	b := testutil.Backend(t, "")
	loaded, err := Load(b, o.Out)
	if err != nil {
		t.Fatal(err)
	}
	defer loaded.Close()
	rng := rand.New(rand.NewPCG(8, 8))
	clips := [][]float32{synthVoices["low"](rng, 0.3), synthVoices["high"](rng, 3.3), synthVoices["low"](rng, 1.7), synthVoices["high"](rng, 0.5)}
	p1, e1, err := m.Predict(clips)
	if err != nil {
		t.Fatal(err)
	}
	p2, e2, err := loaded.Predict(clips)
	if err != nil {
		t.Fatal(err)
	}
	for i := range clips {
		if want := i % 2; argmax(p1[i]) != want {
			t.Errorf("clip %d: probabilities %v, want voice %d", i, p1[i], want)
		}
		if s := Similarity(e1[i], e2[i]); s < 0.99999 {
			t.Errorf("clip %d: the loaded model's embedding differs (cosine %v)", i, s)
		}
		if d := math.Abs(float64(p1[i][0] - p2[i][0])); d > 1e-5 {
			t.Errorf("clip %d: the loaded model's probabilities differ by %v", i, d)
		}
	}
	if s, d := Similarity(e1[0], e1[2]), Similarity(e1[0], e1[1]); !(s > d) {
		t.Errorf("same-voice SIM %.3f not above cross-voice SIM %.3f", s, d)
	}
	acc, err := loaded.Accuracy(clips, []string{"low", "high", "low", "high"})
	if err != nil || acc != 1 {
		t.Errorf("Accuracy = %v, %v; want 1", acc, err)
	}
	if _, err := loaded.Accuracy(clips[:1], []string{"nobody"}); err == nil || !strings.Contains(err.Error(), "nobody") {
		t.Errorf("unknown voice: %v", err)
	}

	// A second fresh run on the folder is refused; the data's check comes
	// first for a folder with no cache.
	if _, err := Train(context.Background(), o); err == nil || !strings.Contains(err.Error(), "already holds a checkpoint") {
		t.Errorf("second run on the same folder: %v", err)
	}
	o.Data = filepath.Join(dir, "nothing")
	if _, err := Train(context.Background(), o); err == nil || !strings.Contains(err.Error(), "latentlm speech data") {
		t.Errorf("missing cache: %v", err)
	}
}

// TestLossFalls checks with the trainer alone that the tiny judge learns
// the synthetic voices: the loss falls by more than half in 60 steps.
func TestLossFalls(t *testing.T) {
	c := tinyConfig("low", "high")
	rng := rand.New(rand.NewPCG(3, 3))
	var fs []clipFeatures
	for i := range 8 {
		v := []string{"low", "high"}[i%2]
		f, err := c.features(synthVoices[v](rng, 1))
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	st := computeStats(fs, c.Mels)
	for i := range fs {
		st.normalise(&fs[i])
	}
	_, tr := testutil.TinyTrainer(t, c.Specs(), func(_ *model.Scope, w nn.Weights, in []*Node) []*Node {
		loss, acc := c.Loss(w, in[0], in[1], in[2])
		return []*Node{loss, acc}
	})
	const batch = 8
	win := c.Frames * c.Mels
	x, mask, labels := make([]float32, batch*win), make([]float32, batch*c.Frames), make([]int32, batch)
	testutil.ExpectLossFalls(t, 60, 10, 0.5, func(step int) float64 {
		for i := range batch {
			f := fs[(i+step)%len(fs)]
			start := rng.IntN(f.frames - c.Frames + 1)
			c.fill(x[i*win:(i+1)*win], mask[i*c.Frames:(i+1)*c.Frames], f, span{start, c.Frames})
			labels[i] = int32((i + step) % 2)
		}
		res, err := tr.Step(tensors.FromFlatDataAndDimensions(x, batch, c.Frames, c.Mels),
			tensors.FromFlatDataAndDimensions(mask, batch, c.Frames), tensors.FromFlatDataAndDimensions(labels, batch))
		if err != nil {
			t.Fatal(err)
		}
		return res.Loss
	})
}

// TestGradientFiniteDifference checks the analytic gradient of every
// weight, through the masked mean and standard-deviation pooling, in
// float64 against central differences.
func TestGradientFiniteDifference(t *testing.T) {
	c := Config{Mels: 4, Frames: 6, Kernel: 3, Widths: []int{3, 2}, Embedding: 3, Voices: []string{"a", "b", "c"}, FloorDB: 50, SpeechDB: 30}
	b := testutil.Backend(t, "go")
	store := model.NewStore()
	specs := c.Specs()
	for i := range specs {
		if specs[i].Std == 0 {
			specs[i].Std = 0.3 // non-zero biases, so that every path carries gradient
		}
	}
	if err := nn.Init(store, specs, 4, dtypes.Float64); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	const batch = 2
	x := make([]float64, batch*c.Frames*c.Mels)
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	mask := []float64{1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 0, 0}
	args := []any{tensors.FromFlatDataAndDimensions(x, batch, c.Frames, c.Mels),
		tensors.FromFlatDataAndDimensions(mask, batch, c.Frames),
		tensors.FromFlatDataAndDimensions([]int32{0, 2}, batch)}
	checked := testutil.CheckGradients(t, b, store, func(scope *model.Scope, in []*Node) *Node {
		loss, _ := c.Loss(nn.WeightsOf(scope.Store(), in[0].Graph()), in[0], in[1], in[2])
		return loss
	}, args, 3, rng)
	t.Logf("%d gradient entries checked", checked)
	if checked == 0 {
		t.Fatal("no gradient checked")
	}
}

// randomModel is an untrained judge with identity statistics.
func randomModel(t *testing.T, c Config) *Model {
	t.Helper()
	store := model.NewStore()
	if err := nn.Init(store, c.Specs(), 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	st := Stats{Mean: make([]float32, c.Mels), Std: make([]float32, c.Mels)}
	for k := range st.Std {
		st.Std[k] = 1
	}
	m, err := NewModel(testutil.Backend(t, ""), c, st, store)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPredictErrors(t *testing.T) {
	m := randomModel(t, tinyConfig("a", "b"))
	rng := rand.New(rand.NewPCG(2, 2))
	good := synthVoices["low"](rng, 0.5)
	if _, _, err := m.Predict([][]float32{good, nil}); err == nil || !strings.Contains(err.Error(), "clip 1") {
		t.Errorf("empty clip: %v", err)
	}
	if _, _, err := m.Predict([][]float32{{0.1, float32(math.Inf(1))}}); err == nil || !strings.Contains(err.Error(), "clip 0") {
		t.Errorf("infinite sample: %v", err)
	}
	// Digital silence has no speech frame: it is still scored.
	probs, embs, err := m.Predict([][]float32{make([]float32, 8000), good})
	if err != nil {
		t.Fatal(err)
	}
	if len(probs) != 2 || len(probs[0]) != 2 || len(embs[1]) != 8 {
		t.Fatalf("shapes %d×%d and %d×%d", len(probs), len(probs[0]), len(embs), len(embs[1]))
	}
	if s := probs[0][0] + probs[0][1]; math.Abs(float64(s)-1) > 1e-5 {
		t.Errorf("probabilities sum to %v", s)
	}
	m.Close()
	m.Close()
	if _, _, err := m.Predict([][]float32{good}); err == nil {
		t.Error("Predict after Close: no error")
	}
}

// TestBackendParity runs one judge on ONNX Runtime and on the pure-Go
// backend.
func TestBackendParity(t *testing.T) {
	c := tinyConfig("a", "b", "c")
	st := Stats{Mean: make([]float32, c.Mels), Std: make([]float32, c.Mels)}
	for k := range st.Std {
		st.Mean[k], st.Std[k] = -3, 2
	}
	rng := rand.New(rand.NewPCG(4, 4))
	clips := [][]float32{synthVoices["low"](rng, 1.2), synthVoices["high"](rng, 0.3)}
	var embs [][][]float32
	for _, name := range []string{"onnx", "go"} {
		// A store per backend: a tensor lives on one backend.
		store := model.NewStore()
		if err := nn.Init(store, c.Specs(), 7, dtypes.Float32); err != nil {
			t.Fatal(err)
		}
		m, err := NewModel(testutil.Backend(t, name), c, st, store)
		if err != nil {
			t.Fatal(err)
		}
		_, e, err := m.Predict(clips)
		m.Close()
		if err != nil {
			t.Fatal(err)
		}
		embs = append(embs, e)
	}
	for i := range clips {
		a, b := make([]float64, len(embs[0][i])), make([]float64, len(embs[0][i]))
		for k := range a {
			a[k], b[k] = float64(embs[0][i][k]), float64(embs[1][i][k])
		}
		if d := testutil.RelErr(a, b); d > 1e-4 {
			t.Errorf("clip %d: onnx and go embeddings differ by %.2g", i, d)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	if _, err := Load(testutil.Backend(t, ""), missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing folder: %v", err)
	}
	m := randomModel(t, tinyConfig("a", "b"))
	defer m.Close()
	good := filepath.Join(dir, "good")
	if err := m.Save(good, map[string]any{"note": "test"}); err != nil {
		t.Fatal(err)
	}
	if l, err := Load(testutil.Backend(t, ""), good); err != nil {
		t.Fatalf("loading what was saved: %v", err)
	} else {
		l.Close()
	}
	cases := map[string]func(d string){
		"garbage config": func(d string) {
			os.WriteFile(filepath.Join(d, "config.json"), []byte("{not json"), 0o644)
		},
		"truncated weights": func(d string) {
			b, _ := os.ReadFile(filepath.Join(d, "model.safetensors"))
			os.WriteFile(filepath.Join(d, "model.safetensors"), b[:len(b)/2], 0o644)
		},
		"no weights": func(d string) { os.Remove(filepath.Join(d, "model.safetensors")) },
		"other kind": func(d string) {
			b, _ := os.ReadFile(filepath.Join(d, "config.json"))
			os.WriteFile(filepath.Join(d, "config.json"), []byte(strings.Replace(string(b), `"speaker"`, `"vae"`, 1)), 0o644)
		},
		"wider config": func(d string) {
			b, _ := os.ReadFile(filepath.Join(d, "config.json"))
			os.WriteFile(filepath.Join(d, "config.json"), []byte(strings.Replace(string(b), `"embedding": 8`, `"embedding": 9`, 1)), 0o644)
		},
	}
	for name, corrupt := range cases {
		t.Run(name, func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "ckpt")
			if err := m.Save(d, nil); err != nil {
				t.Fatal(err)
			}
			corrupt(d)
			_, err := Load(testutil.Backend(t, ""), d)
			if err == nil || !strings.Contains(err.Error(), d) {
				t.Errorf("error %v does not name %s", err, d)
			}
		})
	}
	// Statistics that cannot normalise (a zero std) are refused by name.
	m.Stats.Std[3] = 0
	d := filepath.Join(dir, "zero-std")
	if err := m.Save(d, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(testutil.Backend(t, ""), d); err == nil || !strings.Contains(err.Error(), "band 3") {
		t.Errorf("zero std: %v", err)
	}
}

// shippedJudge loads weights/speaker, or skips the test.
func shippedJudge(t *testing.T) *Model {
	t.Helper()
	dir, err := deps.Weights("speaker")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "config.json"))
	}
	if err != nil {
		t.Skipf("no shipped speaker weights: %v", err)
	}
	m, err := Load(testutil.Backend(t, ""), dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestShippedJudge checks that weights/speaker names the voice of the
// first five real test utterances of each voice of the speech cache. Its
// test accuracy is 99.86%: one miss in 700, a 1.2 s flite-kal16 clip of
// the first five taken for festival-kal, the same speaker's diphones in
// another synthesiser; so one miss in the 35 is allowed.
func TestShippedJudge(t *testing.T) {
	m := shippedJudge(t)
	defer m.Close()
	if len(m.Voices) != len(speech.Voices) {
		t.Errorf("the shipped judge knows %d voices, the speech data has %d", len(m.Voices), len(speech.Voices))
	}
	data, err := DataDir("")
	if err == nil {
		_, err = os.Stat(filepath.Join(data, speech.ManifestFile))
	}
	if err != nil {
		t.Skipf("no speech data (run `latentlm speech data`): %v", err)
	}
	_, utts, err := speech.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]int{}
	var sel []speech.Utterance
	var voices []string
	for _, u := range utts {
		if u.Split == speech.SplitTest && per[u.Voice] < 5 {
			per[u.Voice]++
			sel = append(sel, u)
			voices = append(voices, u.Voice)
		}
	}
	clips, err := readClips(data, sel)
	if err != nil {
		t.Fatal(err)
	}
	r, err := m.Score(clips, voices)
	if err != nil {
		t.Fatal(err)
	}
	if r.Correct < r.Utterances-1 || len(r.Voices) != len(m.Voices) {
		t.Errorf("%d of %d test utterances right, over %d voices; want all but at most one, over %d", r.Correct, r.Utterances, len(r.Voices), len(m.Voices))
	}
	if !(r.SIM > r.OtherSIM+0.3) {
		t.Errorf("real-speech SIM %.3f is not well above the other voices' %.3f", r.SIM, r.OtherSIM)
	}
}

func ExampleSimilarity() {
	same := Similarity([]float32{0.5, -1, 2}, []float32{1, -2, 4})
	orthogonal := Similarity([]float32{1, 0}, []float32{0, 1})
	fmt.Printf("%.2f %.2f\n", same, orthogonal)
	// Output: 1.00 0.00
}
