package main

// defaultTrainBatch is the LatentLM training batch of the MNIST demo.
const defaultTrainBatch = 64
