#!/usr/bin/env bash
# Issue 15: the recipe of the shipped multimodal model, on the 2-core CPU in
# about 1 h 40 min alone, and its scores (docs/RESULTS.md "Multimodal").
#
# What the drawing probe (scripts/drawing_probe.sh) taught, applied to the
# whole four-task mixture: the 7×7-patch canvas tokenizer (64 latents on the
# grid every layout's digits sit on), a small model (d128 × 4) so that the
# CPU affords many steps, batch 16, a peak learning rate of 2e-3, and the
# sequences weighted towards caption → image (4 : 2 : 0.5 : 0.5 for drawing,
# captions, text and questions).
#
#   scripts/multimodal_cpu.sh             # train what is missing, then score
#
# Writes runs/vae-canvas-p7 (the tokenizer, 3.5 min), runs/multimodal-p7
# (12 000 steps, 85 min alone), runs/text-only-p7 (the text-only model of
# the same size and the same text sequences: 12 000 × 16 × 0.5/7 ≈ 857
# steps of 16) and docs/results/multimodal-p7-{t2i,i2t,vqa,text}.json and
# text-only-p7.json. A run whose config.json records its steps is not
# trained again; an interrupted one resumes (SIGTERM saves it).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./bin/latentlm
vae=runs/vae-canvas-p7
model=runs/multimodal-p7
textonly=runs/text-only-p7
common=(--task multimodal --vae "$vae" --tokenizer weights/multimodal-mnist/tokenizer.json
	--dim 128 --depth 4 --batch 16 --lr 2e-3 --seed 1)

[ -f "$vae/model.safetensors" ] ||
	"$bin" vae train --data mnist-canvas --channels 12 --patch 7 --seed 1 --out "$vae"

# train DIR STEPS FLAGS…: trains into DIR unless it holds STEPS steps already,
# resuming a run that was stopped part way.
train() {
	local dir=$1 steps=$2
	shift 2
	grep -q "\"steps\": $steps" "$dir/config.json" 2>/dev/null && return
	local resume=()
	[ -f "$dir/train_state.safetensors" ] && resume=(--resume)
	"$bin" train "${common[@]}" --steps "$steps" --out "$dir" "${resume[@]}" "$@"
}

train "$model" 12000 --mix-text 0.5 --mix-t2i 4 --mix-i2t 2 --mix-vqa 0.5 --save-every 1000 --sample-every 3000
train "$textonly" 857 --mix-text 1 --mix-t2i 0 --mix-i2t 0 --mix-vqa 0 --sample-every 0

mkdir -p docs/results
for task in t2i i2t vqa text; do
	"$bin" eval --task "$task" --model "$model" --json >"docs/results/multimodal-p7-$task.json"
done
"$bin" eval --task text --model "$textonly" --json >docs/results/text-only-p7.json
