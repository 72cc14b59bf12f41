package recipe

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latentlm/latentlm/canvas"
	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/internal/testutil"
	"github.com/latentlm/latentlm/multimodal"
	"github.com/latentlm/latentlm/transfusion"
)

// TestMultimodalTransfusion: Transfusion.On trains the Transfusion
// baseline through the multimodal recipe: its checkpoint is of kind
// "transfusion" and records the arch, one noise draw per image and its
// context images read as their mean and noised by default as the paper
// noises them (t < 500), its history has both terms, its sample grid is
// drawn (CaptionGrid dispatches on the kind), and it loads through
// transfusion.Load and draws and captions; combining it with --arch vq,
// and resuming it as LatentLM, are refused, and a resumed run keeps its
// own context noise. (That the losses fall is TestTinyTrainingLowersBothLosses of
// package transfusion, on data that can be learnt in a few steps.)
func TestMultimodalTransfusion(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny model")
	}
	o := tinyMultimodal(t, 20)
	o.Transfusion.On = true
	o.Arch = multimodal.VQ
	if _, err := Multimodal(context.Background(), o); err == nil || !strings.Contains(err.Error(), "Transfusion") {
		t.Fatalf("transfusion with arch vq: %v", err)
	}
	o.Arch = multimodal.Latent
	res, err := Multimodal(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if kind, err := checkpoint.ReadKind(res.Dir); err != nil || kind != transfusion.Kind {
		t.Fatalf("checkpoint kind %q (%v), want %q", kind, err, transfusion.Kind)
	}
	if _, err := os.Stat(filepath.Join(res.Dir, "samples-000020.png")); err != nil {
		t.Errorf("no sample grid: %v", err)
	}
	h := res.History
	if len(h) < 2 || len(h[0].Metrics) != 2 {
		t.Fatalf("history %+v: want points with two terms (ce, diff)", h)
	}
	for _, p := range h {
		if !(p.Metrics[0] > 0 && p.Metrics[1] >= 0 && p.Loss < 100) {
			t.Fatalf("step %d: loss %v, terms %v", p.Step, p.Loss, p.Metrics)
		}
	}
	m, err := transfusion.Load(testutil.Backend(t, ""), res.Dir, "", multimodal.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Info["arch"] != transfusion.Arch || m.Info["batch_mul"] != 1.0 || m.Info["context_mean"] != true {
		t.Errorf("info %v: want arch %q, batch_mul 1 and context_mean true", m.Info, transfusion.Arch)
	}
	if v, ok := m.Info["context_clean"]; ok {
		t.Errorf("info records LatentLM's context_clean (%v) for a Transfusion run", v)
	}
	if v := m.Info["context_noise"]; v != transfusion.PaperContextNoise {
		t.Errorf("context_noise %v by default, want the paper's %v", v, transfusion.PaperContextNoise)
	}
	ctx := context.Background()
	imgs, err := m.Images(ctx, canvas.MNIST.Caption(canvas.Scene{Layout: canvas.TopLeft, A: 3}), 2)
	if err != nil || len(imgs) != 2 || len(imgs[0]) != 56*56 {
		t.Fatalf("Images: %d images, %v", len(imgs), err)
	}
	if _, err := m.Caption(ctx, imgs); err != nil {
		t.Fatal(err)
	}
	o.Transfusion.On, o.Resume, o.Steps = false, true, 21
	if _, err := Multimodal(context.Background(), o); err == nil {
		t.Error("resuming a Transfusion run as LatentLM succeeded")
	} else {
		t.Logf("resuming as LatentLM: %v", err)
	}
	// Resumed with another context noise (a flag left out of the command
	// that set it), the run keeps its own.
	o.Transfusion.On, o.Transfusion.ContextNoise = true, 0
	if _, err := Multimodal(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	info, err := checkpoint.RecordedInfo(res.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if info["steps"] != 21.0 || info["context_noise"] != transfusion.PaperContextNoise {
		t.Errorf("resumed with context noise 0: steps %v, context_noise %v, want 21 and the run's own %v",
			info["steps"], info["context_noise"], transfusion.PaperContextNoise)
	}
}
