package multimodal

import (
	"context"
	"errors"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/canvas"
	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/vae"
)

// seqOptions are the options of the sequence tests: a short solver plan.
func seqOptions() Options {
	o := DefaultOptions()
	o.Steps, o.CFG, o.Temperature, o.TextTemperature, o.TopP, o.MaxTokens = 3, 3, 0.9, 1, 0.95, 64
	return o
}

// boostBOL scales the softmax head's <BOL> row, so that a random model
// opens images in its completions now and then.
func boostBOL(t *testing.T, store *model.Store, cfg lm.Config, by float32) {
	t.Helper()
	head := store.GetVariable(nn.WeightsScope + "/lm_head.weight")
	w := tensors.MustCopyFlatData[float32](head.MustValue())
	for k := range cfg.Dim {
		w[cfg.Vocab.BOL()*cfg.Dim+k] *= by
	}
	if err := head.SetValue(tensors.FromFlatDataAndDimensions(w, cfg.Vocab.Size(), cfg.Dim)); err != nil {
		t.Fatal(err)
	}
}

// tinyModel is a random model of arch over tinyTokenizer, with a random
// image tokenizer of 8×8 gray images (a grid of 2×2: 4 latents of 4
// channels, or 4 of tinyCodes codes), ready to generate with opts.
func tinyModel(t *testing.T, arch Arch, opts Options) *Model {
	t.Helper()
	b := testutil.Backend(t, "")
	vc := vae.Config{Kind: vae.Sigma, ImageSize: 8, Patch: 4, Channels: 4, Dim: 16, Depth: 1, Heads: 2, MLPRatio: 2, CSigma: 0.5, KLWeight: 0.01}
	tok := tinyTokenizer(t)
	cfg := lm.Config{Dim: 32, Depth: 2, Heads: 4, KVHeads: 2, MLPRatio: 2, HeadDepth: 2, HeadDim: 24,
		Latent: 4, MaxLen: 48, Target: diffusion.Velocity, Vocab: lm.Vocab{Extra: tok.Size()}}
	mc := Config{LM: cfg}
	if arch == VQ {
		vc.Kind, vc.Codebook = vae.VQ, tinyCodes
		mc = tinyVQConfig(t, tok)
		mc.LM.MaxLen = 48
	}
	vs := model.NewStore()
	if err := nn.Init(vs, vc.Specs(), 5, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	img, err := vae.NewModel(b, vc, vs)
	if err != nil {
		t.Fatal(err)
	}
	specs := mc.Specs()
	for i := range specs {
		specs[i].Std = 0.1
	}
	store := model.NewStore()
	if err := nn.Init(store, specs, 3, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	boostBOL(t, store, mc.LM, 8)
	m := &Model{Config: mc.LM, Arch: arch, Text: tok, Image: img, backend: b, store: store, opts: opts,
		Format: Format{Vocab: mc.LM.Vocab, EOT: tok.EOT(), Items: vc.Items(), Channels: vc.Channels, Codes: mc.Codes}}
	if m.engine, err = lm.NewEngine(b, store, mc.LM, opts.SampleOptions); err != nil {
		t.Fatal(err)
	}
	m.rng = rand.New(rand.NewPCG(uint64(opts.Seed), textStream))
	t.Cleanup(m.Close)
	return m
}

// testImages are n random 8×8 gray images.
func testImages(n int, seed uint64) [][]float32 {
	rng := rand.New(rand.NewPCG(seed, 0))
	out := make([][]float32, n)
	for i := range out {
		out[i] = make([]float32, 64)
		for j := range out[i] {
			out[i][j] = rng.Float32()
		}
	}
	return out
}

// job is one request of a batch run: a sequence that joins at tick start,
// and what it streamed.
type job struct {
	name     string
	start    int
	img      *ImageSequence
	ans      *AnswerSequence
	comp     *CompleteSequence
	streamed []string    // an answer's OnText pieces
	progress []int       // an image's OnLatent indices
	images   [][]float32 // the latents (or codes, as floats) of a completion's images
}

// result is what a job made, for comparison: text, and latents or codes
// (as floats) or pixels.
type result struct {
	text   []string
	values [][]float32
}

func (j *job) result(t *testing.T) result {
	t.Helper()
	var r result
	switch {
	case j.img != nil:
		if !j.img.Done() {
			t.Fatalf("%s: image not done", j.name)
		}
		r.values = append(r.values, slices.Clone(j.img.Latents()), codeFloats(j.img.Codes()))
		px, err := j.img.Decode()
		if err != nil {
			t.Fatal(err)
		}
		r.values = append(r.values, px)
		if len(j.progress) != j.img.m.Format.Items {
			t.Fatalf("%s: %d latents streamed", j.name, len(j.progress))
		}
	case j.ans != nil:
		if !j.ans.Done() {
			t.Fatalf("%s: answer not done", j.name)
		}
		r.text = []string{j.ans.Text(), strings.Join(j.streamed, "")}
	case j.comp != nil:
		if !j.comp.Done() {
			t.Fatalf("%s: completion not done", j.name)
		}
		for _, p := range j.comp.Pieces() {
			r.text = append(r.text, p.Text)
			if p.Image != nil {
				r.values = append(r.values, p.Image)
			}
		}
		r.values = append(r.values, j.images...)
	}
	return r
}

func codeFloats(c []int32) []float32 {
	out := make([]float32, len(c))
	for i, k := range c {
		out[i] = float32(k)
	}
	return out
}

// idle is a sequence that never appends an item.
type idle struct{}

func (idle) Next() lm.RowItem                  { return lm.RowItem{Idle: true} }
func (idle) Want() lm.Want                     { return lm.Want{} }
func (idle) Take(_, _ []float32) (bool, error) { return false, nil }

// runJobs runs the jobs in a guided and an unguided batch of the model,
// each joining at its start tick, the images of completions as they are
// handed out, until all are done. It returns the most sequences the
// unguided and the guided batch held at once.
//
// The unguided batch holds an idle sequence besides the jobs: a batch of
// one unguided slot computes one stream, and ONNX Runtime's kernels round
// a single row differently from several (matrix-vector rather than
// matrix-matrix products), so a lone unguided sequence's latents differ
// in the last bits from its latents in company. A guided batch always
// has two streams or more.
func runJobs(t *testing.T, m *Model, jobs []*job) (maxU, maxG int) {
	t.Helper()
	u, err := m.NewBatch(m.Options().Steps, 16, false)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if err := u.Add(idle{}); err != nil {
		t.Fatal(err)
	}
	g, err := m.NewBatch(m.Options().Steps, 16, true)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	batchOf := func(img *ImageSequence) *lm.Batch {
		if img.Guided() {
			return g
		}
		return u
	}
	last := 0
	for _, j := range jobs {
		last = max(last, j.start)
		switch {
		case j.img != nil:
			j.img.OnLatent = func(p ImageProgress) error {
				if p.Index != len(j.progress) || p.Row != p.Index/2 || p.Col != p.Index%2 {
					return fmt.Errorf("progress %+v after %d latents", p, len(j.progress))
				}
				j.progress = append(j.progress, p.Index)
				return nil
			}
		case j.ans != nil:
			j.ans.OnText = func(s string) error {
				j.streamed = append(j.streamed, s)
				return nil
			}
		}
	}
	for tick := 0; ; tick++ {
		if tick > 2000 {
			t.Fatal("the jobs did not finish")
		}
		for _, j := range jobs {
			if j.start != tick {
				continue
			}
			switch {
			case j.img != nil:
				err = j.img.AddTo(batchOf(j.img))
			case j.ans != nil:
				err = u.Add(j.ans)
			case j.comp != nil:
				err = u.Add(j.comp)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if tick > last && u.Len() == 1 && g.Len() == 0 {
			return maxU, maxG
		}
		maxU, maxG = max(maxU, u.Len()-1), max(maxG, g.Len())
		for _, b := range []*lm.Batch{u, g} {
			ended, err := b.Step()
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ended {
				if e.Err != nil {
					t.Fatalf("tick %d: a sequence ended with %v", tick, e.Err)
				}
			}
		}
		for _, j := range jobs {
			if j.comp == nil {
				continue
			}
			if img := j.comp.TakeImage(); img != nil {
				j.images = append(j.images, nil)
				k := len(j.images) - 1
				img.OnLatent = func(ImageProgress) error {
					j.images[k] = append(slices.Clone(img.Latents()), codeFloats(img.Codes())...)
					return nil
				}
				if err := img.AddTo(batchOf(img)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// mixedJobs are requests of every kind for m, joining at staggered ticks:
// three answers of different lengths, three images (one unconditional)
// of different seeds, scales and temperatures, and two completions.
func mixedJobs(t *testing.T, m *Model) []*job {
	t.Helper()
	imgs := testImages(3, 1)
	opts := func(seed int64, maxTokens int, cfg, temp float64) Options {
		o := seqOptions()
		o.Seed, o.MaxTokens, o.CFG, o.Temperature = seed, maxTokens, cfg, temp
		return o
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var jobs []*job
	add := func(name string, start int, x any, err error) {
		must(err)
		j := &job{name: name, start: start}
		switch x := x.(type) {
		case *ImageSequence:
			j.img = x
		case *AnswerSequence:
			j.ans = x
		case *CompleteSequence:
			j.comp = x
		}
		jobs = append(jobs, j)
	}
	a1, err := m.NewCaptionSequence(imgs[0], opts(1, 30, 3, 1))
	add("caption 0", 0, a1, err)
	i1, err := m.NewImageSequence(corpus[0], 0, opts(7, 8, 3, 1))
	add("image 0", 1, i1, err)
	c1, err := m.NewCompleteSequence("the digit", opts(11, 24, 2, 1))
	add("completion 0", 2, c1, err)
	a2, err := m.NewAskSequence(imgs[1], "which digit is on the left?", opts(2, 12, 3, 1))
	add("answer 1", 3, a2, err)
	i3, err := m.NewImageSequence("", 2, opts(9, 8, 3, 1.1))
	add("unconditional image", 4, i3, err)
	i2, err := m.NewImageSequence(corpus[1], 1, opts(8, 8, 0.5, 0.8))
	add("image 1", 5, i2, err)
	a3, err := m.NewCaptionSequence(imgs[2], opts(3, 5, 3, 1))
	add("caption 2", 8, a3, err)
	c2, err := m.NewCompleteSequence("A fool", opts(12, 40, 4, 1))
	add("completion 1", 9, c2, err)
	return jobs
}

// testJoinAndLeave: every job's results in the staggered run equal, bit
// for bit, its results run alone; the runs really overlapped, and the
// completions drew images.
func testJoinAndLeave(t *testing.T, arch Arch) {
	m := tinyModel(t, arch, seqOptions())
	jobs := mixedJobs(t, m)
	maxU, maxG := runJobs(t, m, jobs)
	t.Logf("staggered: at most %d sequences unguided, %d guided", maxU, maxG)
	if maxU < 5 || (arch != VQ && maxG < 2) {
		t.Fatalf("the runs hardly overlapped: %d unguided, %d guided", maxU, maxG)
	}
	together := make([]result, len(jobs))
	for i, j := range jobs {
		together[i] = j.result(t)
	}
	drawn := 0
	for _, j := range jobs {
		if j.comp != nil {
			drawn += len(j.images)
		}
	}
	if drawn == 0 {
		t.Fatal("no completion opened an image")
	}
	for i, j := range mixedJobs(t, m) {
		j.start = 0
		runJobs(t, m, []*job{j})
		alone := j.result(t)
		if !slices.Equal(alone.text, together[i].text) {
			t.Errorf("%s: text alone %q, staggered %q", j.name, alone.text, together[i].text)
		}
		if len(alone.values) != len(together[i].values) {
			t.Fatalf("%s: %d results alone, %d staggered", j.name, len(alone.values), len(together[i].values))
		}
		for k := range alone.values {
			if !slices.Equal(alone.values[k], together[i].values[k]) {
				t.Errorf("%s: result %d alone %v, staggered %v", j.name, k, alone.values[k], together[i].values[k])
			}
		}
		if j.ans != nil && !strings.ContainsRune(alone.text[0], '\uFFFD') && alone.text[0] != alone.text[1] {
			// Only invalid bytes split between pieces may differ.
			t.Errorf("%s: streamed %q, text %q", j.name, alone.text[1], alone.text[0])
		}
		t.Logf("%s: %q, %d values", j.name, alone.text, len(alone.values))
	}
	// Another seed, another image: the comparison can fail.
	if slices.Equal(together[1].values[0], together[5].values[0]) && arch != VQ {
		t.Error("two images of different captions and seeds agree")
	}
}

// TestSequencesJoinAndLeave: answers, images and completions of different
// lengths, seeds, scales and temperatures, joining a guided and an
// unguided batch at staggered ticks and leaving when done (the batches
// growing and shrinking meanwhile), each make bit for bit what they make
// alone.
func TestSequencesJoinAndLeave(t *testing.T) { testJoinAndLeave(t, Latent) }

// TestVQSequencesJoinAndLeave is TestSequencesJoinAndLeave for a VQ-MLLM,
// whose images (and their guidance streams) run in the unguided batch.
func TestVQSequencesJoinAndLeave(t *testing.T) { testJoinAndLeave(t, VQ) }

// TestAnswerSequencesMatchCaption: greedy answers through a batch are
// Caption's and Ask's strings for the same images.
func TestAnswerSequencesMatchCaption(t *testing.T) {
	for _, arch := range []Arch{Latent, VQ} {
		m := tinyModel(t, arch, seqOptions())
		imgs := testImages(3, 2)
		ctx := context.Background()
		question := "which digit is on the left?"
		for _, o := range []int{64, 7} {
			opts := seqOptions()
			opts.MaxTokens = o
			if err := m.SetOptions(opts); err != nil {
				t.Fatal(err)
			}
			caps, err := m.Caption(ctx, imgs)
			if err != nil {
				t.Fatal(err)
			}
			answers, err := m.Ask(ctx, imgs, question)
			if err != nil {
				t.Fatal(err)
			}
			var jobs []*job
			for i, img := range imgs {
				c, err := m.NewCaptionSequence(img, opts)
				if err != nil {
					t.Fatal(err)
				}
				a, err := m.NewAskSequence(img, question, opts)
				if err != nil {
					t.Fatal(err)
				}
				jobs = append(jobs, &job{name: fmt.Sprint("caption ", i), start: 2 * i, ans: c}, &job{name: fmt.Sprint("answer ", i), start: i, ans: a})
			}
			runJobs(t, m, jobs)
			for i := range imgs {
				if got := jobs[2*i].ans.Text(); got != caps[i] {
					t.Errorf("%v, %d tokens: caption %d through the batch %q, Caption %q", arch, o, i, got, caps[i])
				}
				if got := jobs[2*i+1].ans.Text(); got != answers[i] {
					t.Errorf("%v, %d tokens: answer %d through the batch %q, Ask %q", arch, o, i, got, answers[i])
				}
			}
			t.Logf("%v, %d tokens: %q", arch, o, caps)
		}
	}
}

// closeTo fails unless a and b agree within float32 rounding.
func closeTo(t *testing.T, what string, a, b []float32) float64 {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d values, want %d", what, len(a), len(b))
	}
	var worst float64
	for i := range a {
		d := math.Abs(float64(a[i] - b[i]))
		worst = max(worst, d)
		if !(d <= 1e-4*(1+math.Abs(float64(b[i])))) {
			t.Fatalf("%s: value %d is %v, want %v", what, i, a[i], b[i])
		}
	}
	return worst
}

// TestImageSequenceMatchesImagesFor: an image through a batch of one is
// ImagesFor's (its prompts and drawImages) given the same noise, up to
// float32 rounding (ImagesFor reads the prompt in one pass); a VQ-MLLM's
// codes are drawCodes's given the same generator.
func TestImageSequenceMatchesImagesFor(t *testing.T) {
	ctx := context.Background()
	captions := []string{corpus[0], "", corpus[2]}
	for _, arch := range []Arch{Latent, VQ} {
		opts := seqOptions()
		opts.Seed, opts.TopK = 5, 4
		m := tinyModel(t, arch, opts)
		bs, err := ImageBatches(m.Format, m.Text, m.Config.MaxLen, captions, 1)
		if err != nil {
			t.Fatal(err)
		}
		var worst float64
		for _, b := range bs {
			i := b.Index[0]
			seq, err := m.NewImageSequence(captions[i], i, opts)
			if err != nil {
				t.Fatal(err)
			}
			if seq.Guided() != (arch != VQ && captions[i] != "") {
				t.Errorf("%v, caption %q: guided %v", arch, captions[i], seq.Guided())
			}
			runJobs(t, m, []*job{{img: seq}})
			got, err := seq.Decode()
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(uint64(opts.Seed), uint64(i)))
			if arch == VQ {
				m.rng = rng
				codes, err := m.drawCodes(ctx, b.Cond, b.Guide)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(seq.Codes(), codes[0]) {
					t.Errorf("caption %q: codes through the batch %v, drawCodes %v", captions[i], seq.Codes(), codes[0])
				}
				continue
			}
			lat, err := m.drawLatents(ctx, b.Cond, b.Guide, []*rand.Rand{rng})
			if err != nil {
				t.Fatal(err)
			}
			worst = max(worst, closeTo(t, "latents of "+captions[i], seq.Latents(), lat[0]))
			px, err := m.drawImages(ctx, b.Cond, b.Guide, []*rand.Rand{rand.New(rand.NewPCG(uint64(opts.Seed), uint64(i)))})
			if err != nil {
				t.Fatal(err)
			}
			closeTo(t, "pixels of "+captions[i], got, px[0])
		}
		if arch != VQ {
			t.Logf("largest difference from ImagesFor's latents %.2g", worst)
		}
	}
}

// TestCompleteSequenceMatchesComplete: a completion through the batches
// makes Complete's pieces (given Complete the sequence's image noise):
// the same text, images up to float32 rounding.
func TestCompleteSequenceMatchesComplete(t *testing.T) {
	ctx := context.Background()
	for _, arch := range []Arch{Latent, VQ} {
		images := 0
		m := tinyModel(t, arch, seqOptions())
		for _, seed := range []int64{11, 12, 13} {
			opts := seqOptions()
			opts.Seed, opts.MaxTokens = seed, 30
			if err := m.SetOptions(opts); err != nil { // Complete's options, and its generator reseeded
				t.Fatal(err)
			}
			seq, err := m.NewCompleteSequence("the digit", opts)
			if err != nil {
				t.Fatal(err)
			}
			runJobs(t, m, []*job{{comp: seq}})
			var want []Piece
			noise := func(i int) *rand.Rand { return rand.New(rand.NewPCG(uint64(seed), uint64(i))) }
			if arch == VQ {
				// drawCodes draws from m.rng, the text's generator.
				noise = nil
			}
			if err := m.complete(ctx, "the digit", func(p Piece) error { want = append(want, p); return nil }, noise); err != nil {
				t.Fatal(err)
			}
			got := seq.Pieces()
			var gotText string
			var gotImgs [][]float32
			for _, p := range got {
				if p.Image != nil {
					gotImgs = append(gotImgs, p.Image)
				}
				gotText += p.Text
			}
			images += len(gotImgs)
			if arch == VQ {
				// The codes come from another generator (Complete's come
				// from the text's): the pieces agree up to the first image.
				first := len(want)
				for k, p := range want {
					if p.Image != nil {
						first = k
						break
					}
				}
				for k := range min(first+1, len(got), len(want)) {
					if got[k].Text != want[k].Text || (got[k].Image == nil) != (want[k].Image == nil) {
						t.Errorf("vq seed %d: piece %d is %q (image %v), Complete's %q (image %v)", seed, k, got[k].Text, got[k].Image != nil, want[k].Text, want[k].Image != nil)
					}
				}
				t.Logf("%v seed %d: %q, %d images", arch, seed, gotText, len(gotImgs))
				continue
			}
			if len(got) != len(want) {
				t.Fatalf("seed %d: %d pieces, Complete %d", seed, len(got), len(want))
			}
			for k := range got {
				if got[k].Text != want[k].Text || (got[k].Image == nil) != (want[k].Image == nil) {
					t.Fatalf("seed %d: piece %d is %q (image %v), Complete's %q (image %v)", seed, k, got[k].Text, got[k].Image != nil, want[k].Text, want[k].Image != nil)
				}
				if got[k].Image != nil {
					closeTo(t, fmt.Sprint("image piece ", k), got[k].Image, want[k].Image)
				}
			}
			t.Logf("%v seed %d: %q, %d images", arch, seed, gotText, len(gotImgs))
		}
		if images == 0 {
			t.Errorf("%v: no completion opened an image", arch)
		}
	}
}

// TestSequenceAbort: a completion aborted while it waits for its image
// ends with the error, and so does the image; a VQ-MLLM image whose two
// streams join at different ticks fails rather than waits.
func TestSequenceAbort(t *testing.T) {
	for _, arch := range []Arch{Latent, VQ} {
		m := tinyModel(t, arch, seqOptions())
		u, err := m.NewBatch(m.Options().Steps, 4, false)
		if err != nil {
			t.Fatal(err)
		}
		g, err := m.NewBatch(m.Options().Steps, 4, true)
		if err != nil {
			t.Fatal(err)
		}
		var c *CompleteSequence
		var img *ImageSequence
		for seed := int64(1); img == nil && seed < 40; seed++ {
			opts := seqOptions()
			opts.Seed = seed
			if c, err = m.NewCompleteSequence("the digit", opts); err != nil {
				t.Fatal(err)
			}
			if err := u.Add(c); err != nil {
				t.Fatal(err)
			}
			for range 60 {
				ended, err := u.Step()
				if err != nil {
					t.Fatal(err)
				}
				if len(ended) > 0 {
					break
				}
				if img = c.TakeImage(); img != nil {
					break
				}
			}
			if img == nil {
				u.Remove(c)
			}
		}
		if img == nil {
			t.Fatalf("%v: no completion opened an image", arch)
		}
		if c.TakeImage() != nil || !c.Waiting() {
			t.Fatal("the image was handed out twice, or the completion does not wait")
		}
		b := g
		if !img.Guided() {
			b = u
		}
		if err := img.AddTo(b); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Step(); err != nil {
			t.Fatal(err)
		}
		stop := errors.New("client gone")
		c.Abort(stop)
		endedWith := map[lm.Sequence]error{}
		for range 3 {
			for _, x := range []*lm.Batch{u, g} {
				ended, err := x.Step()
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range ended {
					endedWith[e.Seq] = e.Err
				}
			}
		}
		if endedWith[c] != stop || endedWith[img] != stop {
			t.Errorf("%v: completion ended with %v, its image with %v, want %v", arch, endedWith[c], endedWith[img], stop)
		}
		if u.Len() != 0 || g.Len() != 0 {
			t.Errorf("%v: %d and %d sequences left", arch, u.Len(), g.Len())
		}
		if arch == VQ {
			opts := seqOptions()
			s, err := m.NewImageSequence(corpus[0], 0, opts)
			if err != nil {
				t.Fatal(err)
			}
			seqs := s.Sequences()
			if len(seqs) != 2 {
				t.Fatalf("a guided vq image is %d sequences", len(seqs))
			}
			if err := u.Add(seqs[0]); err != nil {
				t.Fatal(err)
			}
			var failed error
			for tick := 0; tick < 40 && failed == nil; tick++ {
				if tick == 1 {
					if err := u.Add(seqs[1]); err != nil {
						t.Fatal(err)
					}
				}
				ended, err := u.Step()
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range ended {
					if e.Seq == s {
						failed = e.Err
					}
				}
			}
			if failed == nil || !strings.Contains(failed.Error(), "out of step") {
				t.Errorf("streams out of step: %v", failed)
			}
		}
		u.Close()
		g.Close()
	}
}

// Caption a test canvas and answer a question about it in one continuous
// batch with the shipped multimodal model, streaming the caption as it is
// written: the requests of two users, each its own sequence.
func ExampleModel_NewBatch() {
	b, err := backend.Open(backend.Resolve(""))
	if err != nil {
		log.Fatal(err)
	}
	opts := DefaultOptions()
	m, err := Load(b, "../weights/multimodal-mnist", "", opts)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	test, err := canvas.Load("mnist-canvas", "test")
	if err != nil {
		log.Fatal(err)
	}
	img := make([]float32, test.Height*test.Width)
	test.Float32(0, img)
	batch, err := m.NewBatch(m.Options().Steps, 8, false) // text needs no guidance
	if err != nil {
		log.Fatal(err)
	}
	defer batch.Close()
	caption, err := m.NewCaptionSequence(img, opts)
	if err != nil {
		log.Fatal(err)
	}
	var streamed strings.Builder
	caption.OnText = func(s string) error { // on this goroutine, inside Step
		streamed.WriteString(s)
		return nil
	}
	ask, err := m.NewAskSequence(img, "how many digits are there?", opts)
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range []lm.Sequence{caption, ask} {
		if err := batch.Add(s); err != nil {
			log.Fatal(err)
		}
	}
	for batch.Len() > 0 {
		ended, err := batch.Step()
		if err != nil {
			log.Fatal(err)
		}
		for _, e := range ended {
			if e.Err != nil {
				log.Fatal(e.Err)
			}
		}
	}
	fmt.Println(strings.TrimSpace(streamed.String()))
	fmt.Println(strings.TrimSpace(ask.Text()))
	// Output:
	// the digit 9 is at the bottom right of the image
	// one
}

// TestCloseReleasesLoadedWeights checks that Close frees the weights Load
// read, the model's and its image tokenizer's, at once (nn.ReleaseStores):
// a process that opens snapshot after snapshot (sweep) grew by each one's
// until a collection that the backend's C memory never triggers.
func TestCloseReleasesLoadedWeights(t *testing.T) {
	b, err := backend.Open(backend.Resolve(""))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Load(b, "../weights/multimodal-mnist", "", DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	weights, image := m.store, m.Image.Store
	if weights.NumVariables() == 0 || image.NumVariables() == 0 {
		t.Fatalf("loaded model holds %d and %d variables", weights.NumVariables(), image.NumVariables())
	}
	m.Close()
	if n, k := weights.NumVariables(), image.NumVariables(); n != 0 || k != 0 {
		t.Errorf("after Close the model's store holds %d variables and the tokenizer's %d, want none", n, k)
	}
	m.Close() // a second Close is harmless
	if _, err := m.ImagesFor(context.Background(), []string{"the digit 3 is at the top left of the image"}); err == nil {
		t.Error("drawing after Close did not fail")
	}
}
