package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/latentlm/latentlm/canvas"
	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/evaluate"
	"github.com/latentlm/latentlm/imageio"
	"github.com/latentlm/latentlm/multimodal"
	"github.com/latentlm/latentlm/recipe"
	"github.com/latentlm/latentlm/text"
	"github.com/latentlm/latentlm/transfusion"
)

// The Transfusion baseline (issue 16) goes through the multimodal commands:
// `train --task multimodal --arch transfusion` trains it, and generate,
// caption, ask and eval --task text|t2i|i2t|vqa dispatch on the kind of the
// --model checkpoint ("transfusion") to the functions here.

// The benchmark scores it through the same interface as LatentLM.
var _ evaluate.MultimodalModel = (*transfusion.Model)(nil)

// archFlag is --arch of train --task multimodal: an arch of
// multimodal.Arch (latentlm, vq), or transfusion.
type archFlag struct {
	arch        *multimodal.Arch
	transfusion *bool
}

func (a archFlag) String() string {
	switch {
	case a.arch == nil:
		return ""
	case *a.transfusion:
		return transfusion.Arch
	}
	return a.arch.String()
}

func (a archFlag) Set(s string) error {
	*a.transfusion = s == transfusion.Arch
	if *a.transfusion {
		*a.arch = multimodal.Latent
		return nil
	}
	if err := a.arch.Set(s); err != nil {
		return fmt.Errorf("%w (or %s for the Transfusion baseline)", err, transfusion.Arch)
	}
	return nil
}

// archUsage is the text --arch adds for transfusion.
const archUsage = "; or transfusion (the Transfusion baseline: the σ-VAE latents, bidirectional attention inside each image, one timestep per image, the whole Transformer as the denoiser)"

// addTransfusionFlags adds the flags of a Transfusion run to train --task
// multimodal.
func addTransfusionFlags(fs *flags, o *recipe.MultimodalOptions) {
	fs.Float64Var(&o.Transfusion.ContextNoise, "context-noise", o.Transfusion.ContextNoise,
		"--arch transfusion: fraction of the schedule over which images read as context (image → caption, questions) are noised and denoised in training (0.5: the paper's t < 500); 0 gives them clean and without a loss, as in use")
	fs.bound("context-noise", 0, 1, false)
}

// checkTransfusionFlags refuses flags that do not apply to the arch.
func checkTransfusionFlags(fs *flags, o recipe.MultimodalOptions) error {
	switch {
	case o.Transfusion.On && fs.isSet("batch-mul"):
		return errors.New("--batch-mul is for LatentLM's diffusion head: --arch transfusion draws one noise level per image and pass")
	case !o.Transfusion.On && fs.isSet("context-noise"):
		return errors.New("--context-noise is for --arch transfusion")
	}
	return nil
}

// openTransfusion loads the --model checkpoint when it is a Transfusion
// one, else returns nil (the shipped default is LatentLM).
func (f modelFlags) openTransfusion(greedy bool) (*transfusion.Model, error) {
	if *f.model == "" {
		return nil, nil
	}
	if kind, err := checkpoint.ReadKind(*f.model); err != nil || kind != transfusion.Kind {
		return nil, nil // multimodal.Load reports what is wrong
	}
	if *f.topK != multimodal.DefaultOptions().TopK {
		return nil, errors.New("--top-k is for a VQ-MLLM's image codes: a Transfusion model draws latents")
	}
	o := multimodal.Options{SampleOptions: f.sample.options(), TextTemperature: *f.textTemp, TopP: *f.topP, MaxTokens: *f.maxTokens, Batch: *f.sample.batch}
	if greedy {
		o.TextTemperature = 0
	}
	b, _, err := openBackend(*f.backend)
	if err != nil {
		return nil, err
	}
	return transfusion.Load(b, *f.model, *f.vae, o)
}

// refuseTransfusion is the error of a command that a Transfusion --model
// does not support.
func refuseTransfusion(mf modelFlags, command string) error {
	if *mf.model == "" {
		return nil
	}
	if kind, err := checkpoint.ReadKind(*mf.model); err == nil && kind == transfusion.Kind {
		return fmt.Errorf("%s is LatentLM's: %s is a Transfusion model, which generate, caption, ask and eval take", command, *mf.model)
	}
	return nil
}

// transfusionGenerate is generate for a Transfusion --model; done reports
// whether it was one.
func transfusionGenerate(fs *flags, mf modelFlags, prompt string, n int, out string, cols int) (done bool, err error) {
	m, err := mf.openTransfusion(false)
	if m == nil || err != nil {
		return err != nil, err
	}
	defer m.Close()
	if prompt == "" && m.Captioned() {
		return true, errors.New("no --prompt: give the caption to draw (only a model trained without captions draws without one)")
	}
	ic := m.Image.Config
	batch := min(n, m.Options().Batch)
	if err := fs.checkMemory(fmt.Sprintf("generating %d images", n), float64(n)*float64(ic.Pixels())*4*4+m.Config.Activations(2*batch, 0, ic.Items(), false)); err != nil {
		return true, err
	}
	ctx, cancel := signalContext()
	defer cancel()
	imgs, err := m.Images(ctx, prompt, n)
	if err != nil {
		return true, err
	}
	if n == 1 {
		err = writeImage(out, imgs[0], ic)
	} else {
		err = imageio.WriteGridOpts(out, imgs, ic.ImageSize, ic.ImageSize, min(cols, n), imageio.GridOptions{Channels: ic.ImageChannels()})
	}
	if err != nil {
		return true, err
	}
	what := fmt.Sprintf("%d images", n)
	if n == 1 {
		what = "an image"
	}
	if prompt == "" {
		fmt.Fprintf(os.Stderr, "wrote %s (%s, drawn without a caption by Transfusion)\n", out, what)
		return true, nil
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%s of %q, by Transfusion)\n", out, what, prompt)
	return true, nil
}

// transfusionAnswer is caption (question "") and ask for a Transfusion
// --model; done reports whether it was one.
func transfusionAnswer(mf modelFlags, paths []string, question string) (done bool, err error) {
	m, err := mf.openTransfusion(true)
	if m == nil || err != nil {
		return err != nil, err
	}
	defer m.Close()
	imgs, err := readImages(m.Image.Config, paths)
	if err != nil {
		return true, err
	}
	ctx, cancel := signalContext()
	defer cancel()
	var got []string
	if question == "" {
		got, err = m.Caption(ctx, imgs)
	} else {
		got, err = m.Ask(ctx, imgs, question)
	}
	if err != nil {
		return true, err
	}
	for i, a := range got {
		fmt.Printf("%s: %s\n", paths[i], strings.TrimSpace(a))
	}
	return true, nil
}

// transfusionEvalOptions are the flags of eval --task that a Transfusion
// model uses: the canvas tasks only.
type transfusionEvalOptions struct {
	task, data, judge string
	dataSet           bool
	n, perSeen, perHe int
	texts             []string
	asJSON            bool
}

// transfusionEval is eval --task text|t2i|i2t|vqa for a Transfusion
// --model, scored by the same functions as LatentLM; done reports whether
// it was one.
func transfusionEval(mf modelFlags, o transfusionEvalOptions) (done bool, err error) {
	m, err := mf.openTransfusion(true)
	if m == nil || err != nil {
		return err != nil, err
	}
	defer m.Close()
	if d, _ := m.Info["data"].(string); d != "" {
		if !canvas.IsCanvas(d) {
			return true, fmt.Errorf("%s: a Transfusion model of %s; eval scores Transfusion models on the canvas sets only", *mf.model, d)
		}
		if !o.dataSet {
			o.data = d
		}
	}
	names, err := canvas.NamesOf(o.data)
	if err != nil {
		return true, err
	}
	ctx, cancel := signalContext()
	defer cancel()
	var r evaluate.MultimodalReport
	if o.task == "text" {
		var docs []string
		if len(o.texts) > 0 {
			docs, err = text.ReadFiles(o.texts)
		} else {
			_, docs, err = text.Fortunes(text.FortunesDir)
		}
		if err != nil {
			return true, err
		}
		r, err = evaluate.TextBitsPerByteOf(m, m.Text, docs)
	} else {
		test, lerr := recipe.LoadSplit(o.data, "test", 0)
		if lerr != nil {
			return true, lerr
		}
		switch o.task {
		case "t2i":
			judge, jerr := canvasJudge(ctx, *mf.backend, o.judge, o.data, test)
			if jerr != nil {
				return true, jerr
			}
			r, err = evaluate.TextToImage(ctx, m, judge, names, test, o.perSeen, o.perHe)
		case "i2t":
			r, err = evaluate.ImageToText(ctx, m, names, test, o.n)
		case "vqa":
			r, err = evaluate.VisualQuestions(ctx, m, names, test, o.n)
		}
	}
	if err != nil {
		return true, err
	}
	if o.asJSON {
		b, _ := json.MarshalIndent(r, "", "  ")
		fmt.Println(string(b))
		return true, nil
	}
	printMultimodalReport(r)
	return true, nil
}
