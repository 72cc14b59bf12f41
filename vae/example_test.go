package vae_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"

	"github.com/latentlm/latentlm"
	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/data"
	"github.com/latentlm/latentlm/vae"
)

// loadMNIST loads the shipped MNIST tokenizer and the first n test digits.
func loadMNIST(n int) (*vae.Model, [][]float32) {
	b, err := backend.Open(backend.Resolve(""))
	if err != nil {
		log.Fatal(err)
	}
	dir, err := latentlm.ShippedWeights("vae-mnist")
	if err != nil {
		log.Fatal(err)
	}
	m, err := vae.Load(b, dir)
	if err != nil {
		log.Fatal(err)
	}
	d, err := data.Load("mnist", "test")
	if err != nil {
		log.Fatal(err)
	}
	images := make([][]float32, n)
	for i := range images {
		images[i] = make([]float32, m.Config.Pixels())
		d.Float32(i, images[i])
	}
	return m, images
}

// Load the shipped MNIST tokenizer: a σ-VAE that turns a 28×28 digit into a
// 7×7 grid of 8-channel latents, one per 4×4 patch, which is what the
// language model reads and writes.
func ExampleLoad() {
	b, err := backend.Open(backend.Resolve(""))
	if err != nil {
		log.Fatal(err)
	}
	dir, err := latentlm.ShippedWeights("vae-mnist")
	if err != nil {
		log.Fatal(err)
	}
	m, err := vae.Load(b, dir)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	c := m.Config
	fmt.Println("kind:", c.Kind)
	fmt.Printf("images %d×%d×%d, patches %d×%d\n", c.ImageSize, c.ImageSize, c.ImageChannels(), c.Patch, c.Patch)
	fmt.Printf("latents: %d×%d grid of %d channels\n", c.Grid(), c.Grid(), c.Channels)
	fmt.Println("trained on:", m.Info["data"])
	// Output:
	// kind: sigma
	// images 28×28×1, patches 4×4
	// latents: 7×7 grid of 8 channels
	// trained on: mnist
}

// Round-trip four test digits through the tokenizer. Encode without sampling
// gives the posterior mean μ, the best reconstruction; the decoded digits
// should be close to the originals, which PSNR (in dB, higher is closer)
// measures.
func ExampleModel_Encode() {
	m, images := loadMNIST(4)
	defer m.Close()
	latents, err := m.Encode(images, false)
	if err != nil {
		log.Fatal(err)
	}
	recon, err := m.Decode(latents)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(latents), "latents of", len(latents[0]), "values")
	fmt.Println(len(recon), "images of", len(recon[0]), "pixels")
	for i := range images {
		var mse float64
		for j, v := range images[i] {
			e := float64(v - recon[i][j])
			mse += e * e
		}
		mse /= float64(len(images[i]))
		fmt.Printf("digit %d: PSNR above 20 dB: %v\n", i, vae.PSNR(mse) > 20)
	}
	// Output:
	// 4 latents of 392 values
	// 4 images of 784 pixels
	// digit 0: PSNR above 20 dB: true
	// digit 1: PSNR above 20 dB: true
	// digit 2: PSNR above 20 dB: true
	// digit 3: PSNR above 20 dB: true
}

// Save encoded latents to a safetensors file, for a language model to train
// on or for decoding later, and read them back. ReadLatents checks the file
// against the tokenizer, and the values come back bit for bit.
func ExampleModel_WriteLatents() {
	m, images := loadMNIST(3)
	defer m.Close()
	latents, err := m.Encode(images, false)
	if err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "vae-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "latents.safetensors")
	if err := m.WriteLatents(path, latents); err != nil {
		log.Fatal(err)
	}
	back, err := m.ReadLatents(path)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(back), "latents read back")
	fmt.Println("identical:", slices.EqualFunc(latents, back, slices.Equal))
	// Output:
	// 3 latents read back
	// identical: true
}

// The sizes that follow from a configuration: the MNIST default and an RGB
// tokenizer for 32×32 colour images. A latent vector encodes one patch, and
// a grayscale batch keeps the [n, H, W] layout of the first tokenizers.
func ExampleConfig() {
	gray := vae.DefaultConfig()
	rgb := vae.DefaultConfig()
	rgb.ImageSize, rgb.InChannels = 32, 3
	for _, c := range []vae.Config{gray, rgb} {
		fmt.Printf("grid %d, items %d, values per patch %d, pixels %d, batch of 2 %v, valid %v\n",
			c.Grid(), c.Items(), c.PatchValues(), c.Pixels(), c.ImageDims(2), c.Validate() == nil)
	}
	// Output:
	// grid 7, items 49, values per patch 16, pixels 784, batch of 2 [2 28 28], valid true
	// grid 8, items 64, values per patch 48, pixels 3072, batch of 2 [2 32 32 3], valid true
}

// A config is saved as config.json beside the weights; the variant is
// spelled by name so the file stays readable.
func ExampleConfig_JSON() {
	fmt.Println(string(vae.DefaultConfig().JSON()))
	// Output:
	// {
	//   "kind": "sigma",
	//   "image_size": 28,
	//   "patch": 4,
	//   "latent_channels": 8,
	//   "dim": 64,
	//   "depth": 2,
	//   "heads": 4,
	//   "mlp_ratio": 3,
	//   "c_sigma": 0.9375,
	//   "kl_weight": 0.01
	// }
}

// PSNR turns a mean squared error on [0, 1] images into decibels: each
// tenfold drop of the error adds 10 dB.
func ExamplePSNR() {
	for _, mse := range []float64{0.01, 0.001} {
		fmt.Printf("MSE %g: %.1f dB\n", mse, vae.PSNR(mse))
	}
	// Output:
	// MSE 0.01: 20.0 dB
	// MSE 0.001: 30.0 dB
}

// Variant is a command-line flag and a config.json field; an unknown name is
// an error rather than a silent default.
func ExampleVariant_Set() {
	var v vae.Variant
	fmt.Println(v)
	if err := v.Set("vq"); err != nil {
		log.Fatal(err)
	}
	fmt.Println(v, v == vae.VQ)
	fmt.Println(v.Set("gan") != nil)
	// Output:
	// sigma
	// vq true
	// true
}
