package main

// imageBytes is the memory of n images of px pixels held on the host, with
// their latents, a PNG grid scaled 2× and the encoding buffers.
func imageBytes(n, px int) float64 { return float64(n) * float64(px) * 4 * 8 }
