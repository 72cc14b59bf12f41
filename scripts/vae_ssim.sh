#!/usr/bin/env bash
# Issue 20: does the SSIM term help the colour tokenizer? The shipped emoji
# tokenizer's recipe (32 px, patch 4, 32 channels, d128, 2 + 2 blocks, 4000
# steps, seed 1) trained without it and with 0.05 · (1 − SSIM), one after the
# other on the same build, each scored on the 493 test emoji
# (docs/RESULTS.md, "The SSIM term"). About 17 min a run alone on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p runs docs/results
for weight in 0 0.05; do
	dir=runs/vae-emoji-ssim$weight
	./bin/latentlm vae train --data emoji --dim 128 --depth 2 --channels 32 --steps 4000 --seed 1 \
		--ssim-weight "$weight" --out "$dir" --quiet
	./bin/latentlm vae eval --vae "$dir" --data emoji --json >"docs/results/vae-emoji-ssim$weight.json"
done
