// Package latentlm generates images with LatentLM, the multimodal latent
// language model of Sun et al., "Multimodal Latent Language Modeling with
// Next-Token Diffusion" (https://arxiv.org/abs/2412.08635), implemented in Go
// on GoMLX.
//
// # What LatentLM is
//
// LatentLM treats an image as a sequence of continuous tokens. A σ-VAE — a
// variational autoencoder whose posterior variance is fixed rather than
// learned, so that its latent space does not collapse — turns a 28×28 image
// into a 7×7 grid of 8-dimensional latent vectors. A causal Transformer then
// models the sequence
//
//	[class] <BOL> z₀ z₁ … z₄₈ <EOL>
//
// one latent at a time: its hidden state conditions a small diffusion head
// that denoises the next latent ("next-token diffusion"), so discrete tokens
// (the class) and continuous ones (image latents) share one autoregressive
// model. Generation runs the backbone once per latent with a KV cache and a
// few DPM-Solver++ steps of the head per latent, with classifier-free
// guidance, and the σ-VAE decoder turns the finished grid into pixels.
//
// The repository also trains a Diffusion Transformer (DiT) baseline, which
// denoises the whole grid at once; Load reads either kind.
//
// # Usage
//
// Load a checkpoint folder (config.json plus model.safetensors), generate,
// and close the generator when done:
//
//	g, err := latentlm.Load("weights/latentlm-mnist", latentlm.WithBackend("onnx"))
//	if err != nil {
//		return err
//	}
//	defer g.Close()
//	imgs, err := g.Generate(ctx, latentlm.Request{Class: 3, N: 16}, latentlm.DefaultSampleOptions())
//	if err != nil {
//		return err
//	}
//	err = latentlm.WriteGrid("threes.png", imgs, 8, 2)
//
// Each Image holds Size×Size grayscale values in [0, 1] and implements
// image.Image. A Request asks for N images of one class, or one image per
// entry of Classes for a mix.
//
// The shipped weights (weights/latentlm-mnist for MNIST digits,
// weights/latentlm-fashion for Fashion-MNIST, with their tokenizers) are in
// the repository; ShippedWeights finds them from anywhere inside it once
// `make setup` has installed ONNX Runtime into .deps.
//
// # Options
//
// Load takes WithBackend (onnx, go or xla; default $LATENTLM_BACKEND, else
// onnx), WithTokenizer (default: the tokenizer the model records, which must
// match it by SHA-256) and WithBatch (images per sampler call, default 64).
//
// Generate takes SampleOptions: solver steps, guidance scale, temperature
// and seed. Start from DefaultSampleOptions (20 steps, CFG 4, temperature 1,
// seed 1): the zero value is rejected, because a temperature of 0 would
// draw all-zero noise. Every option is checked — Steps 0…1000, CFG finite
// and ≥ 0, Temperature finite and > 0 — and a bad one is an error, as are a
// class out of range and a request of no images or more than MaxImages.
//
// # Resources
//
// A Generator holds a compute backend, compiled graphs and the weights,
// partly in memory that Go's garbage collector does not see (ONNX Runtime,
// accelerators): call Close. The compiled sampler of the latest options is
// kept between Generate calls; changing Steps, CFG or Temperature compiles a
// new one and frees the old. The seed is applied afresh at every call, so
// the same request, options and batch size always give the same images on
// a backend, whatever was generated before.
package latentlm
