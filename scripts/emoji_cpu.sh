#!/usr/bin/env bash
# Issue 20: caption → image on emoji with the diffusion loss weighted four
# times (𝓛_CE + 4·𝓛_diff), the change that made the canvas mixture draw the
# digits its captions ask for (docs/RESULTS.md "The diffusion weight λ").
# The first emoji run (λ = 1, 2 500 steps) drew emoji-like pictures that
# ignored their captions.
#
#   scripts/emoji_cpu.sh     # 4 000 steps of d192 × 4, about 1 h 40 min alone
#
# The run is the first one's recipe (d192 × 4, batch 32, lr 1e-3, seed 1,
# caption → image and image → caption in equal parts) with
# --diffusion-weight 4 and 4 000 steps, into runs/latentlm-emoji-l4, keeping
# the weights at every 500 steps (step-NNNNNN) so that step 2 500 can be set
# against the first run's end. Scores: eval --task t2i --limit 100 --seen 100
# (100 held-out prompts, 100 seen ones), into
# docs/results/latentlm-emoji-l4-{2500,4000}.json, without the examples.
# An interrupted run resumes (SIGTERM saves it).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./bin/latentlm
out=runs/latentlm-emoji-l4
steps=4000

if ! grep -q "\"steps\": $steps" "$out/config.json" 2>/dev/null; then
	resume=()
	[ -f "$out/train_state.safetensors" ] && resume=(--resume)
	"$bin" train --task multimodal --data emoji --vae weights/vae-emoji --dim 192 --depth 4 \
		--diffusion-weight 4 --seed 1 --steps "$steps" --snapshot-every 500 --sample-every 1000 \
		--out "$out" "${resume[@]}"
fi

mkdir -p docs/results
for step in 2500 $steps; do
	model=$out/step-$(printf %06d "$step")
	"$bin" eval --task t2i --model "$model" --limit 100 --seen 100 --json |
		python3 -c 'import json,sys; r=json.load(sys.stdin); r.pop("examples",None); json.dump(r,sys.stdout,indent=1)' \
			>"docs/results/latentlm-emoji-l4-$step.json"
done
