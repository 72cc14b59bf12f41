package recipe

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/classifier"
	"github.com/latentlm/latentlm/emoji"
	"github.com/latentlm/latentlm/evaluate"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/multimodal"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/vae"
)

// TestEmojiClasses: the judges' classes — 99 subcategories, and the skin
// tones with none and two — and each entry's class.
func TestEmojiClasses(t *testing.T) {
	for key, want := range map[string]int{"": 0, "1F3FB": 1, "1F3FD": 3, "1F3FF": 5, "1F3FC-1F3FC": 2, "1F3FB-1F3FF": 6, "1F3FA": -1} {
		if got := toneClass(key); got != want {
			t.Errorf("toneClass(%q) = %d, want %d", key, got, want)
		}
	}
	if len(ToneClasses) != 7 || ToneClasses[3] != "medium skin tone" {
		t.Errorf("tone classes %q", ToneClasses)
	}
	if _, err := EmojiClasses(nil, "colour"); err == nil {
		t.Error("an unknown target: no error")
	}
	dir, err := emoji.Dir()
	if err != nil {
		t.Skip(err)
	}
	entries, err := emoji.ReadEntries(dir)
	if err != nil {
		t.Fatal(err)
	}
	subs, err := EmojiClasses(entries, TargetSubcategory)
	if err != nil || len(subs) != 99 || !slices.IsSorted(subs) {
		t.Fatalf("%d subcategories (%v), want 99 sorted", len(subs), err)
	}
	for _, e := range entries {
		if c := EmojiClass(e, TargetSubcategory, subs); c < 0 || subs[c] != e.Subcategory {
			t.Fatalf("%s: subcategory class %d", e.Caption, c)
		}
		c := EmojiClass(e, TargetTone, ToneClasses)
		switch {
		case e.SkinTone == "" && c != 0,
			strings.Contains(e.SkinTone, ", ") && c != 6,
			e.SkinTone != "" && !strings.Contains(e.SkinTone, ", ") && ToneClasses[c] != e.SkinTone:
			t.Fatalf("%s (%q): tone class %d", e.Caption, e.SkinTone, c)
		}
	}
}

// TestEmojiTextToImageEval: the emoji evaluation draws one prompt per test
// image — the held-out emoji/skin-tone combinations and the unseen emoji
// in groups of their own — and the seen captions asked for; only prompts
// that name a skin tone are judged for it; content words come from the
// emoji's name, never its tone; and judges of other classes are refused.
func TestEmojiTextToImageEval(t *testing.T) {
	dir, err := emoji.Dir()
	if err != nil {
		t.Skip(err)
	}
	entries, err := emoji.ReadEntries(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, held := emoji.Split(entries)
	b := testutil.Backend(t, "")
	vc := vae.Config{Kind: vae.Sigma, ImageSize: 32, InChannels: 3, Patch: 4, Channels: 4, Dim: 16, Depth: 1, Heads: 2, MLPRatio: 2, CSigma: 0.9375, KLWeight: 0.01}
	store := model.NewStore()
	if err := nn.Init(store, vc.Specs(), 1, dtypes.Float32); err != nil {
		t.Fatal(err)
	}
	tok, err := vae.NewModel(b, vc, store)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	judge := func(target string) evaluate.Judge {
		classes, err := EmojiClasses(entries, target)
		if err != nil {
			t.Fatal(err)
		}
		cc := DefaultClassifierModel(EmojiData)
		cc.Widths, cc.Features, cc.Classes, cc.Labels = []int{4}, 8, len(classes), classes
		s := model.NewStore()
		if err := nn.Init(s, cc.Specs(), 2, dtypes.Float32); err != nil {
			t.Fatal(err)
		}
		m, err := classifier.NewModel(b, cc, s)
		if err != nil {
			t.Fatal(err)
		}
		return evaluate.Judge{Models: []*classifier.Model{m}}
	}
	judges := map[string]evaluate.Judge{TargetSubcategory: judge(TargetSubcategory), TargetTone: judge(TargetTone)}
	m := &multimodal.Model{Image: tok, Dir: "emoji-model", Info: map[string]any{"data": "emoji", "size": 32.0, "fit": "crop", "background": "white"}}
	e, err := TextToImageEval(m, judges, ImageEvalOptions{PerPrompt: 2, Seen: 30}, nil)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for i, p := range e.Prompts {
		count[p.Group]++
		if i > 0 && p.Group == GroupSeen && e.Prompts[i-1].Group != GroupSeen {
			t.Fatalf("the groups are not in order: %q after %q", p.Group, e.Prompts[i-1].Group)
		}
		if p.Real == (p.Group == GroupSeen) {
			t.Errorf("prompt %q of group %s: real %v", p.Text, p.Group, p.Real)
		}
		if _, ok := p.Want[TargetSubcategory]; !ok {
			t.Errorf("prompt %q is not judged for its subcategory", p.Text)
		}
		_, judged := p.Want[TargetTone]
		if judged != strings.Contains(p.Text, "skin tone") {
			t.Errorf("prompt %q: judged for tone %v", p.Text, judged)
		}
		if p.Content == "" || slices.Contains([]string{"skin", "tone", "light", "medium", "dark"}, p.Content) {
			t.Errorf("prompt %q: content word %q", p.Text, p.Content)
		}
		// The judges' ceiling reads the real image of each caption: a
		// held-out prompt's is its held-out image.
		if len(p.Source) != 32*32*3 {
			t.Fatalf("prompt %q: a real image of %d values, want 32×32×3", p.Text, len(p.Source))
		}
		if p.Real && !slices.ContainsFunc(e.Test, func(img []float32) bool { return slices.Equal(img, p.Source) }) {
			t.Errorf("prompt %q: its real image is not among the held-out images", p.Text)
		}
	}
	t.Logf("prompts per group %v; %d held-out real images, %d training, %d to retrieve from", count, len(e.Test), len(e.Train), len(e.Reference))
	if count[GroupHeldOut] != len(held) || count[GroupSeen] != 30 || count[GroupHeldOut]+count[GroupUnseen] != len(e.Test) || count[GroupUnseen] < 100 {
		t.Errorf("prompts per group %v, want %d held-out combinations, 30 seen, and the unseen emoji", count, len(held))
	}
	if len(e.Reference) != len(entries) || len(e.Train)+len(e.Test) != len(entries) || len(e.Judges) != 2 {
		t.Errorf("%d images to retrieve from, %d training and %d held-out, of %d emoji; %d judges", len(e.Reference), len(e.Train), len(e.Test), len(entries), len(e.Judges))
	}
	if err := e.Validate(); err != nil {
		t.Error(err)
	}

	bad := map[string]evaluate.Judge{TargetTone: judge(TargetSubcategory)}
	if _, err := TextToImageEval(m, bad, ImageEvalOptions{PerPrompt: 1}, nil); err == nil || !strings.Contains(err.Error(), "tone judge") {
		t.Errorf("a subcategory judge given for tone: %v", err)
	}
	m.Info = map[string]any{"data": "mnist-canvas"}
	if _, err := TextToImageEval(m, nil, ImageEvalOptions{PerPrompt: 1}, nil); err == nil {
		t.Error("a canvas model: no error")
	}
}

// TestEmojiJudgeRecipe: a two-step emoji judge trains on colour images of
// the train split, records its classes and its accuracy on the test split
// and the held-out combinations, which EmojiJudgeAccuracy measures again;
// a judge needs a target, and the named sets take none.
func TestEmojiJudgeRecipe(t *testing.T) {
	if _, err := emoji.Dir(); err != nil {
		t.Skip(err)
	}
	o := DefaultClassifierOptions()
	o.Data, o.Target, o.Out, o.Steps, o.Batch, o.Quiet, o.SaveEvery, o.Shift = EmojiData, TargetTone, t.TempDir(), 2, 16, true, 0, 2
	o.Model = DefaultClassifierModel(EmojiData)
	o.Model.Widths, o.Model.Features = []int{4, 8}, 8
	res, err := Classifier(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	b := testutil.Backend(t, "")
	m, err := classifier.Load(b, res.Dir)
	if err != nil {
		t.Fatal(err)
	}
	c := m.Config
	if c.ImageChannels() != 3 || c.ImageSize != 32 || !slices.Equal(c.Labels, ToneClasses) || m.Info["target"] != TargetTone || m.Info["data"] != EmojiData {
		t.Errorf("judge config %+v, info %v", c, m.Info)
	}
	acc, err := EmojiJudgeAccuracy(m, TargetTone, ImageOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if acc.Test.Rate != res.TestAccuracy || m.Info["held_out_accuracy"] != acc.HeldOut.Rate || acc.HeldOut.N+acc.Unseen.N != acc.Test.N || acc.HeldOut.N < 300 {
		t.Errorf("accuracy %+v, recorded %v and %v", acc, res.TestAccuracy, m.Info["held_out_accuracy"])
	}
	for _, c := range []struct {
		data, target, want string
	}{{EmojiData, "", "target"}, {EmojiData, "colour", "target"}, {"mnist", TargetTone, "target"}} {
		o := DefaultClassifierOptions()
		o.Data, o.Target, o.Out = c.data, c.target, t.TempDir()
		var oe *OptionError
		if _, err := Classifier(context.Background(), o); !errors.As(err, &oe) || oe.Option != c.want {
			t.Errorf("data %s, target %q: error %v, want one of --%s", c.data, c.target, err, c.want)
		}
	}
}

// TestShiftImages: a shift moves the pixels and repeats the edges.
func TestShiftImages(t *testing.T) {
	img := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9} // 3×3, one channel
	// With a maximum shift of 1 the generator draws some offset; find one
	// image whose result is a shift right and down by one.
	for seed := range uint64(200) {
		x := slices.Clone(img)
		rng := rand.New(rand.NewPCG(seed, 0))
		dx, dy := rng.IntN(3)-1, rng.IntN(3)-1
		shiftImages(x, 1, 3, 1, 1, rand.New(rand.NewPCG(seed, 0)))
		if dx == 1 && dy == 1 {
			if want := []float32{1, 1, 2, 1, 1, 2, 4, 4, 5}; !slices.Equal(x, want) {
				t.Errorf("shifted by (1, 1): %v, want %v", x, want)
			}
			return
		}
	}
	t.Error("no seed drew the shift (1, 1)")
}
