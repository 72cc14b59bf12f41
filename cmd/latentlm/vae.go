package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/latentlm/latentlm/data"
	"github.com/latentlm/latentlm/evaluate"
	"github.com/latentlm/latentlm/internal/guard"
	"github.com/latentlm/latentlm/recipe"
	"github.com/latentlm/latentlm/vae"
)

func init() {
	register("vae", "train, evaluate and use the σ-VAE image tokenizer", runVAE)
}

func runVAE(args []string) error {
	subs := map[string]func([]string) error{
		"train": vaeTrain, "eval": vaeEval, "reconstruct": vaeReconstruct, "encode": vaeEncode, "decode": vaeDecode,
	}
	return dispatch("vae", "usage: latentlm vae train|eval|reconstruct|encode|decode [flags]\n\n"+
		"  train        train a tokenizer (--kind sigma|vae|ae) on mnist, fashion or a canvas set\n"+
		"  eval         PSNR, SSIM, latent statistics and noise robustness on the test set\n"+
		"  reconstruct  write a PNG grid of test images beside their reconstructions\n"+
		"  encode       PNG images → latent safetensors\n"+
		"  decode       latent safetensors → PNG images", subs, args)
}

// vaeFlags are the flags shared by the tokenizer commands that read a model.
type vaeFlags struct {
	backend, data, ckpt *string
}

func addVAEFlags(fs interface {
	String(string, string, string) *string
}) vaeFlags {
	return vaeFlags{
		backend: fs.String("backend", "", "compute backend: onnx, go or xla"),
		data:    fs.String("data", "mnist", "data set: mnist, fashion, mnist-canvas or fashion-canvas"),
		ckpt:    fs.String("vae", "", "tokenizer checkpoint folder (default: the shipped weights for --data)"),
	}
}

func (f vaeFlags) load() (*vae.Model, error) {
	if err := checkDataName(*f.data); err != nil {
		return nil, err
	}
	b, _, err := openBackend(*f.backend)
	if err != nil {
		return nil, err
	}
	if *f.ckpt == "" {
		if *f.ckpt, err = weightsDir("vae-" + *f.data); err != nil {
			return nil, err
		}
	}
	return vae.Load(b, *f.ckpt)
}

// loadWithTest loads the tokenizer and the test split it is judged on.
func (f vaeFlags) loadWithTest() (*vae.Model, *data.Dataset, error) {
	m, err := f.load()
	if err != nil {
		return nil, nil, err
	}
	test, err := recipe.LoadSplit(*f.data, "test", 0)
	if err != nil {
		return nil, nil, err
	}
	if c := m.Config; c.ImageSize != test.Height || c.ImageSize != test.Width {
		return nil, nil, fmt.Errorf("tokenizer %s takes %d×%d images, %s has %d×%d", *f.ckpt, c.ImageSize, c.ImageSize, *f.data, test.Height, test.Width)
	}
	return m, test, nil
}

func vaeEval(args []string) error {
	fs := newFlags("vae eval", "vae eval [--data mnist|fashion|mnist-canvas|fashion-canvas] [--vae DIR] [--json]")
	f := addVAEFlags(fs)
	n := fs.Int("n", 10000, "test images to use")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	m, test, err := f.loadWithTest()
	if err != nil {
		return err
	}
	rep, err := evaluate.Tokenizer(m, test, *n)
	if err != nil {
		return err
	}
	rep.Checkpoint, rep.Data = *f.ckpt, *f.data
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Printf("tokenizer %s on %s test (%d images)\n", rep.Kind, rep.Data, rep.Images)
	fmt.Printf("  PSNR %.2f dB  SSIM %.4f\n", rep.PSNR, rep.SSIM)
	fmt.Printf("  std of μ per channel: %.3f (collapsed, std < 0.01: %d)\n", rep.MuStd, rep.Collapsed)
	for _, k := range []string{"0.1", "0.2", "0.5"} {
		fmt.Printf("  PSNR with latent noise %s·std: %.2f dB\n", k, rep.NoisyPSNR[k])
	}
	return nil
}

func vaeReconstruct(args []string) error {
	fs := newFlags("vae reconstruct", "vae reconstruct --out grid.png [--data mnist|fashion|mnist-canvas|fashion-canvas] [--vae DIR] [--n 16]")
	f := addVAEFlags(fs)
	out := fs.String("out", "reconstruct.png", "output PNG")
	n := fs.Int("n", 16, "test images")
	if err := fs.Parse(args); err != nil {
		return err
	}
	m, test, err := f.loadWithTest()
	if err != nil {
		return err
	}
	if err := guard.CheckOutput(*out, *f.ckpt); err != nil {
		return err
	}
	if *n > test.N {
		return fmt.Errorf("--n %d: the %s test split has %d images", *n, *f.data, test.N)
	}
	var imgs [][]float32
	if err := batches(test, *n, *n)(func(b [][]float32) error { imgs = b; return nil }); err != nil {
		return err
	}
	if err := m.WriteReconstructionGrid(imgs, *out, 8); err != nil {
		return err
	}
	fmt.Printf("wrote %s: %d originals, each followed by its reconstruction\n", *out, len(imgs))
	return nil
}

func vaeEncode(args []string) error {
	fs := newFlags("vae encode", "vae encode --out latents.safetensors [--vae DIR] image.png...").takesArgs()
	f := addVAEFlags(fs)
	out := fs.String("out", "latents.safetensors", "output safetensors file")
	sample := fs.Bool("sample", false, "draw z from the posterior instead of returning μ")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("no input images: give one or more PNG files")
	}
	m, err := f.load()
	if err != nil {
		return err
	}
	if err := guard.CheckOutput(*out, append([]string{*f.ckpt}, fs.Args()...)...); err != nil {
		return err
	}
	c := m.Config
	if err := fs.checkMemory("encoding", imageBytes(fs.NArg(), c.ImageSize*c.ImageSize)); err != nil {
		return err
	}
	zs, err := m.EncodePNGs(fs.Args(), *sample)
	if err != nil {
		return err
	}
	if err := m.WriteLatents(*out, zs); err != nil {
		return err
	}
	fmt.Printf("wrote %s: latents [%d, %d, %d]\n", *out, len(zs), c.Items(), c.Channels)
	return nil
}

func vaeDecode(args []string) error {
	fs := newFlags("vae decode", "vae decode --out-dir DIR [--vae DIR] latents.safetensors").takesArgs()
	f := addVAEFlags(fs)
	outDir := fs.String("out-dir", "decoded", "folder for the PNG images")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("give exactly one latents.safetensors file")
	}
	m, err := f.load()
	if err != nil {
		return err
	}
	c := m.Config
	path := fs.Arg(0)
	if err := guard.CheckOutputDir(*outDir, *f.ckpt, path); err != nil {
		return err
	}
	zs, err := m.ReadLatents(path)
	if err != nil {
		return err
	}
	if err := fs.checkMemory("decoding", imageBytes(len(zs), c.ImageSize*c.ImageSize)); err != nil {
		return err
	}
	// All the images appear at once, or none (a full disk leaves nothing).
	if err := m.DecodeToFolder(zs, *outDir); err != nil {
		return err
	}
	fmt.Printf("wrote %d images to %s\n", len(zs), *outDir)
	return nil
}
