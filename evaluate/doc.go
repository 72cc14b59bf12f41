// Package evaluate scores the images of LatentLM models, and of the σ-VAE
// tokenizer, with the measures the project reports: it is the harness
// behind `latentlm eval`, `latentlm sweep`, `latentlm vae eval` and
// `latentlm classifier eval`, usable from any Go program.
//
// # What it scores, and why
//
// MNIST-sized images have no Inception network worth the name, so every
// measure is taken with a small CNN classifier trained on the data set (the
// shipped weights/classifier-<data>; see package classifier). A Context
// holds that classifier, the test split, the mean and covariance of the
// classifier's penultimate features over the whole split, and a
// class-balanced set of test images for the k-NN measures. Score then
// gives, for a set of images:
//
//   - accuracy-to-class: the fraction the classifier assigns to the class
//     they were generated for — the project's own check that a
//     class-conditional model draws the class it is asked for (real test
//     images score about 0.99 with the shipped classifiers);
//   - FD, the Fréchet distance between Gaussians fitted to the features of
//     the images and of the test split, as in FID (Heusel et al. 2017, "GANs
//     Trained by a Two Time-Scale Update Rule Converge to a Local Nash
//     Equilibrium", https://arxiv.org/abs/1706.08500), with the classifier in
//     place of Inception: lower is better;
//   - IS, exp E[KL(p(y|x) ‖ p(y))] of the classifier's predictions
//     (Salimans et al. 2016, "Improved Techniques for Training GANs",
//     https://arxiv.org/abs/1606.03498): 10 at best, for confident and
//     evenly spread classes;
//   - precision and recall (Kynkäänniemi et al. 2019, "Improved Precision
//     and Recall Metric for Assessing Generative Models",
//     https://arxiv.org/abs/1904.06991): the fraction of the images inside
//     the k-NN manifold of real images (realism), and of real images inside
//     the images' manifold (diversity), with k = K;
//   - density and coverage (Naeem et al. 2020, "Reliable Fidelity and
//     Diversity Metrics for Generative Models",
//     https://arxiv.org/abs/2002.09797), their versions that outlying real
//     or generated images do not inflate.
//
// FD and IS alone mix realism and diversity into one number; the k-NN
// measures separate them, and accuracy-to-class checks the conditioning,
// which none of the others sees. Reference rows (Context.Reference) give
// each number its scale: real test and training images (the floor), σ-VAE
// reconstructions (the tokenizer's ceiling on any model that generates
// its latents) and Gaussian noise (the ceiling).
//
// # Generating
//
// Context.Generated and Context.SweepPoint generate through the public
// package latentlm (Load, Generate, Close), one model at a time, so that a
// sweep over many models or settings runs in one process with bounded
// memory: each model's compiled graphs and buffers are freed before the
// next is loaded, while the test statistics are computed once.
//
// Tokenizer measures the σ-VAE on its own: PSNR and SSIM of its
// reconstructions, the spread of its posterior means per channel (a
// collapsed channel carries nothing), and the PSNR when noise is added to
// the latents, which tells how forgiving the decoder is of a generator's
// small errors.
package evaluate
