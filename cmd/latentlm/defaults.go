package main

// defaultTrainBatch is the LatentLM training batch of the MNIST demo. Small
// batches with more steps learn faster per CPU second at this scale: on the
// same budget of sequences, batch 16 × 2400 steps gave clearly better digits
// than 32 × 1200 or 64 × 600 (docs/BENCHMARKS.md, "demo budget").
const defaultTrainBatch = 16
