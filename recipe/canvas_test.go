package recipe_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/latentlm/latentlm/canvas"
	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/classifier"
	"github.com/latentlm/latentlm/recipe"
	"github.com/latentlm/latentlm/vae"
)

func TestCanvasData(t *testing.T) {
	for _, name := range []string{"mnist", "fashion", "mnist-canvas", "fashion-canvas"} {
		if err := recipe.CheckData(name); err != nil {
			t.Error(err)
		}
	}
	if got := recipe.DataNames(); !slices.Equal(got, []string{"mnist", "fashion", "mnist-canvas", "fashion-canvas"}) {
		t.Errorf("DataNames() = %q", got)
	}
	ds, err := recipe.LoadSplit("fashion-canvas", "judge", 30)
	if err != nil {
		t.Fatal(err)
	}
	if ds.N != 30 || ds.Height != 56 || ds.Width != 56 || ds.Name != "fashion-canvas" || ds.Split != "judge" {
		t.Errorf("LoadSplit(fashion-canvas, judge, 30): %s %s of %d %d×%d", ds.Name, ds.Split, ds.N, ds.Height, ds.Width)
	}
	for _, c := range []struct{ name, split, want string }{
		{"mnist", "judge", `unknown split "judge"`},
		{"mnist-canvas", "valid", `unknown split "valid"`},
		{"cifar", "train", `unknown data set "cifar"`},
	} {
		if _, err := recipe.LoadSplit(c.name, c.split, 0); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("LoadSplit(%s, %s): %v, want %q", c.name, c.split, err, c.want)
		}
	}
	if recipe.ClassifierSplit("mnist-canvas") != "judge" || recipe.ClassifierSplit("mnist") != "train" {
		t.Error("ClassifierSplit")
	}
}

func TestCanvasDefaultModels(t *testing.T) {
	if got := recipe.DefaultTokenizerModel("mnist"); got != vae.DefaultConfig() {
		t.Errorf("DefaultTokenizerModel(mnist) = %+v", got)
	}
	v := recipe.DefaultTokenizerModel("fashion-canvas")
	if v.ImageSize != 56 || v.Patch != 8 || v.Channels != 16 || v.Items() != 49 || v.Validate() != nil {
		t.Errorf("DefaultTokenizerModel(fashion-canvas) = %+v (%v)", v, v.Validate())
	}
	if got := recipe.DefaultClassifierModel("fashion"); !slices.Equal(got.Widths, classifier.DefaultConfig().Widths) || got.Classes != 10 || got.ImageSize != 28 {
		t.Errorf("DefaultClassifierModel(fashion) = %+v", got)
	}
	c := recipe.DefaultClassifierModel("mnist-canvas")
	if c.ImageSize != 56 || c.Classes != canvas.NumScenes || !slices.Equal(c.Widths, []int{16, 32, 64}) || c.Validate() != nil {
		t.Errorf("DefaultClassifierModel(mnist-canvas) = %+v (%v)", c, c.Validate())
	}
}

// TestCanvasRecipes trains a tiny tokenizer and a tiny judge on canvases:
// the image size and the classes come from the data set.
func TestCanvasRecipes(t *testing.T) {
	root := t.TempDir()
	tok := tinyTokenizer(filepath.Join(root, "vae"), 2)
	tok.Data, tok.Model = "mnist-canvas", recipe.DefaultTokenizerModel("mnist-canvas")
	tok.Model.Dim, tok.Model.Depth = 32, 1
	tok.Model.ImageSize = 28 // replaced by the data set's
	if _, err := recipe.Tokenizer(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	var cfg vae.Config
	if _, err := checkpoint.ReadHeader(tok.Out, vae.Kind, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.ImageSize != 56 || cfg.Patch != 8 || cfg.Channels != 16 {
		t.Errorf("canvas tokenizer saved %+v", cfg)
	}

	o := recipe.DefaultClassifierOptions()
	o.Data, o.Out, o.Steps, o.Limit, o.Batch, o.Quiet = "mnist-canvas", filepath.Join(root, "judge"), 2, 64, 16, true
	o.Model = classifier.Config{ImageSize: 28, Widths: []int{4, 4, 4}, Features: 8, Classes: 10}
	res, err := recipe.Classifier(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	var cc classifier.Config
	if _, err := checkpoint.ReadHeader(res.Dir, classifier.Kind, &cc); err != nil {
		t.Fatal(err)
	}
	if cc.ImageSize != 56 || cc.Classes != canvas.NumScenes {
		t.Errorf("canvas judge saved %+v", cc)
	}
	if !(res.TestAccuracy >= 0 && res.TestAccuracy <= 1) {
		t.Errorf("test accuracy %v", res.TestAccuracy)
	}
}
