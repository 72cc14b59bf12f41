package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/latentlm/latentlm/evaluate"
	"github.com/latentlm/latentlm/imagefolder"
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
		"  train        train a tokenizer (--kind sigma|vae|ae|vq) on mnist, fashion, a canvas set, emoji\n"+
		"               or a folder of PNG and JPEG pictures (--data DIR --size 32)\n"+
		"  eval         PSNR, SSIM (per channel for colour), latent statistics and noise robustness on\n"+
		"               the test set, and for vq the codebook usage (perplexity, dead codes)\n"+
		"  reconstruct  write a PNG grid of test images beside their reconstructions\n"+
		"  encode       PNG images → latent safetensors\n"+
		"  decode       latent safetensors → PNG images", subs, args)
}

// vaeDataHelp is the help of --data for the tokenizer commands, which also
// take colour: the emoji and a user's folder (recipe.LoadImages).
const vaeDataHelp = "data: mnist, fashion, mnist-canvas, fashion-canvas, emoji, or a folder of PNG and JPEG pictures " +
	"(any size and colour mode; one in 10 is held out for test, by the hash of its file name)"

// imageFlags are the flags that bring a folder's pictures (or the emoji)
// to square images: --size, --fit, --background.
type imageFlags struct {
	size            *int
	fit, background *string
}

// addImageFlags declares --size, --fit and --background; train gives them
// defaults, eval and reconstruct take them from the checkpoint.
func addImageFlags(fs *flags, fromCheckpoint bool) imageFlags {
	fs.bound("size", 1, imagefolder.MaxSize, false)
	sizeHelp := fmt.Sprintf("side in pixels of the square images a folder's pictures and the emoji are brought to (default %d; the named sets have their own)", recipe.DefaultImageSize)
	fitHelp, bgHelp := "how a picture that is not square becomes square: crop (its centre) or pad (whole, on --background)", "colour of transparent pixels and padding: white, black or #rrggbb"
	if fromCheckpoint {
		sizeHelp = "image size of a folder or the emoji (default: the tokenizer's)"
		fitHelp += " (default: as the tokenizer was trained)"
		bgHelp += " (default: as the tokenizer was trained)"
	}
	return imageFlags{
		size:       fs.Int("size", recipe.DefaultImageSize, sizeHelp),
		fit:        fs.String("fit", "crop", fitHelp),
		background: fs.String("background", "white", bgHelp),
	}
}

// options are the image options the flags set over o (the checkpoint's,
// or none), for data; a flag given for a named set, which has a size of
// its own, is refused.
func (f imageFlags) options(fs *flags, data string, o recipe.ImageOptions) (recipe.ImageOptions, error) {
	named := !recipe.IsImageFolder(data) && data != recipe.EmojiData
	for _, name := range []string{"size", "fit", "background"} {
		if named && fs.isSet(name) {
			return o, fmt.Errorf("--%s is for a folder of pictures or emoji; %s has images of its own size", name, data)
		}
	}
	if named {
		return recipe.ImageOptions{}, nil
	}
	if fs.isSet("size") {
		o.Size = *f.size
	}
	if fs.isSet("fit") || o.Background == "" { // a checkpoint's info records both or neither
		fit, err := imagefolder.ParseFit(*f.fit)
		if err != nil {
			return o, fmt.Errorf("--fit %s: want crop or pad", *f.fit)
		}
		o.Fit = fit
	}
	if fs.isSet("background") || o.Background == "" {
		if _, err := imagefolder.ParseBackground(*f.background); err != nil {
			return o, fmt.Errorf("--background %s: want white, black or #rrggbb", *f.background)
		}
		o.Background = *f.background
	}
	return o, nil
}

// vaeFlags are the flags shared by the tokenizer commands that read a model.
type vaeFlags struct {
	backend, data, ckpt *string
}

func addVAEFlags(fs *flags) vaeFlags {
	return vaeFlags{
		backend: fs.String("backend", "", "compute backend: onnx, go or xla"),
		data:    fs.String("data", "", vaeDataHelp+" (default: the data the --vae tokenizer was trained on, else mnist)"),
		ckpt:    fs.String("vae", "", "tokenizer checkpoint folder (default: the shipped weights weights/vae-<data>)"),
	}
}

func (f vaeFlags) load() (*vae.Model, error) {
	data := *f.data
	if data != "" {
		if err := recipe.CheckImageData(data); err != nil {
			return nil, err
		}
	}
	if *f.ckpt == "" && data != "" && recipe.IsImageFolder(data) {
		return nil, fmt.Errorf("no tokenizer is shipped for the folder %s: pass the one trained on it with --vae DIR", data)
	}
	b, _, err := openBackend(*f.backend)
	if err != nil {
		return nil, err
	}
	if *f.ckpt == "" {
		if *f.ckpt, err = weightsDir("vae-" + cmp.Or(data, "mnist")); err != nil {
			return nil, err
		}
	}
	return vae.Load(b, *f.ckpt)
}

// loadWithTest loads the tokenizer and the test split it is judged on: that
// of --data, else of the data the tokenizer was trained on, read as it was
// (the size, fit and background its checkpoint records, unless the flags
// say otherwise). The messages of reading a folder go to log.
func (f vaeFlags) loadWithTest(fs *flags, img imageFlags, log io.Writer) (*vae.Model, *recipe.ImageSet, error) {
	m, err := f.load()
	if err != nil {
		return nil, nil, err
	}
	name, o := recipe.ImageDataOf(m.Info)
	if *f.data != "" || name == "" {
		name = cmp.Or(*f.data, "mnist")
	} else if err := recipe.CheckImageData(name); err != nil {
		return nil, nil, fmt.Errorf("tokenizer %s was trained on %s, which is gone (%v): pass --data", *f.ckpt, name, err)
	}
	*f.data = name
	if o.Size == 0 {
		o.Size = m.Config.ImageSize
	}
	if o, err = img.options(fs, name, o); err != nil {
		return nil, nil, err
	}
	test, err := recipe.LoadImages(name, "test", o, 0, log)
	if err != nil {
		return nil, nil, err
	}
	if c := m.Config; c.ImageSize != test.Size {
		return nil, nil, fmt.Errorf("tokenizer %s takes %d×%d images, %s has %d×%d", *f.ckpt, c.ImageSize, c.ImageSize, name, test.Size, test.Size)
	}
	if c := m.Config; c.ImageChannels() != test.Channels {
		return nil, nil, fmt.Errorf("tokenizer %s takes %d-channel images (in_channels %d), %s has %d-channel images", *f.ckpt, c.ImageChannels(), c.ImageChannels(), name, test.Channels)
	}
	return m, test, nil
}

func vaeEval(args []string) error {
	fs := newFlags("vae eval", "vae eval [--vae DIR] [--data mnist|fashion|mnist-canvas|fashion-canvas|emoji|DIR] [--json]")
	f := addVAEFlags(fs)
	img := addImageFlags(fs, true)
	n := fs.Int("n", 10000, "test images to use")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var log io.Writer = os.Stdout
	if *asJSON {
		log = nil
	}
	m, test, err := f.loadWithTest(fs, img, log)
	if err != nil {
		return err
	}
	rep, err := evaluate.TokenizerImages(m, *f.data, test.Batches(500, *n))
	if err != nil {
		return err
	}
	rep.Checkpoint = *f.ckpt
	if *asJSON {
		return printJSON(rep)
	}
	fmt.Printf("tokenizer %s on %s test (%d images)\n", rep.Kind, rep.Data, rep.Images)
	fmt.Printf("  PSNR %.2f dB  SSIM %.4f\n", rep.PSNR, rep.SSIM)
	for k, name := range evaluate.ChannelNames(rep.Channels) {
		if rep.Channels > 1 {
			fmt.Printf("    %s: PSNR %.2f dB  SSIM %.4f\n", name, rep.PSNRPerChannel[k], rep.SSIMPerChannel[k])
		}
	}
	fmt.Printf("  std of μ per channel: %.3f (collapsed, std < 0.01: %d)\n", rep.MuStd, rep.Collapsed)
	for _, k := range []string{"0.1", "0.2", "0.5"} {
		fmt.Printf("  PSNR with latent noise %s·std: %.2f dB\n", k, rep.NoisyPSNR[k])
	}
	if u := rep.Codebook; u != nil {
		fmt.Printf("  codebook: %d entries, %d used, %d dead; perplexity %.1f over %d codes\n", u.Size, u.Used, u.Dead, u.Perplexity, u.Codes)
	}
	return nil
}

func vaeReconstruct(args []string) error {
	fs := newFlags("vae reconstruct", "vae reconstruct --out grid.png [--vae DIR] [--data mnist|fashion|mnist-canvas|fashion-canvas|emoji|DIR] [--n 16]")
	f := addVAEFlags(fs)
	img := addImageFlags(fs, true)
	out := fs.String("out", "reconstruct.png", "output PNG (RGB for a colour tokenizer)")
	n := fs.Int("n", 16, "test images")
	if err := fs.Parse(args); err != nil {
		return err
	}
	m, test, err := f.loadWithTest(fs, img, os.Stdout)
	if err != nil {
		return err
	}
	if err := guard.CheckOutputFormat(*out, ".png", *f.ckpt); err != nil {
		return err
	}
	if *n > test.N {
		return fmt.Errorf("--n %d: the %s test split has %d images", *n, *f.data, test.N)
	}
	var imgs [][]float32
	if err := test.Batches(*n, *n)(func(b [][]float32) error { imgs = b; return nil }); err != nil {
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
	f := addVAEFlags(fs) // PNGs of the tokenizer's size: gray, or opaque RGB for a colour one
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
	if err := guard.CheckOutputFormat(*out, ".safetensors", append([]string{*f.ckpt}, fs.Args()...)...); err != nil {
		return err
	}
	c := m.Config
	if err := fs.checkMemory("encoding", imageBytes(fs.NArg(), c.Pixels())); err != nil {
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
	if err := fs.checkMemory("decoding", imageBytes(len(zs), c.Pixels())); err != nil {
		return err
	}
	// All the images appear at once, or none (a full disk leaves nothing).
	if err := m.DecodeToFolder(zs, *outDir); err != nil {
		return err
	}
	fmt.Printf("wrote %d images to %s\n", len(zs), *outDir)
	return nil
}
