#!/usr/bin/env bash
# Issue 15: the drawing probe's recipe (scripts/drawing_probe.sh) applied to
# the whole four-task mixture at CPU size, and the ablation of the images
# read as context (docs/RESULTS.md "The probe's recipe on the whole
# mixture"). Neither shipped: at d128 × 4 the other tasks hold the drawing
# back.
#
#   scripts/multimodal_cpu.sh              # the mixture run, about 1 h 30 min alone
#   PART=ablation scripts/multimodal_cpu.sh   # two runs of 2400 steps, 17 min each alone
#   PART=continue scripts/multimodal_cpu.sh   # the shipped model, 7000 more steps, 2 h alone
#   PART=lambda scripts/multimodal_cpu.sh     # the mixture run with λ = 4, 1 h 30 min to 2 h 30 min alone
#   PART=lambda16 scripts/multimodal_cpu.sh   # the same with λ = 16, 1 h 10 min alone
#   PART=shipped-l16 scripts/multimodal_cpu.sh   # the shipped model, 7000 more steps with λ = 16, about 2 h alone (not yet run)
#   PART=gpu scripts/multimodal_cpu.sh        # score the runs of scripts/gpu_issues.sh (about 1 h alone)
#   PART=emoji scripts/multimodal_cpu.sh      # issue 20: emoji with λ = 4, 1 h 40 min alone
#   PART=emoji-continue scripts/multimodal_cpu.sh   # then 4000 + 2500 more steps (weights/latentlm-emoji), 1 h 40 min alone
#
# The mixture run: the 7×7-patch canvas tokenizer (64 latents on the grid
# every layout's digits sit on), a d128 × 4 model, batch 16, a peak learning
# rate of 2e-3, and the sequences weighted towards caption → image
# (4 : 2 : 0.5 : 0.5 for drawing, captions, text and questions), 12 000
# steps. It writes runs/vae-canvas-p7 (the tokenizer, 3.5 min),
# runs/multimodal-p7, runs/text-only-p7 (the text-only model of the same
# size and the same text sequences: 12 000 × 16 × 0.5/7 ≈ 857 steps of 16)
# and docs/results/multimodal-p7-{t2i,i2t,vqa,text}.json and
# text-only-p7.json. The ablation: caption → image and image → caption in
# equal parts, with the images that captions read as diffusion targets (the
# default) or not (--context-image-loss=false), into runs/ablate-context-*
# and docs/results/ablate-context-{on,off}-{t2i,i2t}.json. A run whose
# config.json records its steps is not trained again; an interrupted one
# resumes (SIGTERM saves it). The JSON files are eval --json without its
# examples.
#
# The continuation (2026-12-03): the d256 × 6 model of weights/multimodal-mnist
# as it stood at 9600 steps (commit 4a2dfe9), a fresh optimiser, and the
# probe's batch of 16 with drawing weighted up (4 : 1.5 : 0.5 : 0.5 for
# drawing, captions, text and questions; lr 1e-3), 7000 steps, seed 5, into
# runs/mm-b16 and docs/results/multimodal-b16-{t2i,i2t,vqa,text}.json.
#
# The λ run (2026-12-03): the mixture run with the diffusion loss weighted
# four times (𝓛_CE + 4·𝓛_diff; the paper's λ is 1), to ask whether the
# drawing loses the shared trunk to the other tasks' gradients. Into
# runs/multimodal-p7-l4 and docs/results/multimodal-p7-l4-*.json; its
# text-only comparator is runs/text-only-p7's, the same text sequences.
# Its midpoint files (docs/results/multimodal-p7-l4-6000-*.json) are the
# same four scores of a copy of runs/multimodal-p7-l4 taken when its
# config.json said 6000 steps (the run saves every 500 over the same files).
#
# The λ = 16 run (2026-12-04): the same again with 𝓛_CE + 16·𝓛_diff, the
# next step of a geometric sweep (1, 4, 16), into runs/multimodal-p7-l16
# and docs/results/multimodal-p7-l16-{6000,12000}-*.json; step 6000 is its
# kept snapshot (runs/multimodal-p7-l16/step-006000).
#
# The λ = 16 continuation (prepared 2026-12-04, not yet run): the
# continuation above (runs/mm-b16's recipe, from weights/multimodal-mnist)
# with --diffusion-weight 16, seed 6, into runs/mm-l16 and
# docs/results/multimodal-shipped-l16-{t2i,i2t,vqa,text}.json.
#
# The emoji run (issue 20, 2026-12-03): the first emoji run's recipe (d192 ×
# 4, batch 32, lr 1e-3, seed 1, caption → image and image → caption in equal
# parts) with λ = 4 and 4000 steps instead of 2500, into
# runs/latentlm-emoji-l4 (shipped as weights/latentlm-emoji), keeping the
# weights every 500 steps so that step 2500 can be set against the first
# run's end. Scores: eval --task t2i --limit 100 --seen 100 (100 seen
# prompts, 100 of held-out combinations and unseen emoji) with each prompt's
# verdicts, into docs/results/latentlm-emoji-l4-{2500,4000}.json.
#
# Its continuation (2026-12-03): two more stages, each started from the
# last one's weights (--init, with its caption tokenizer) at half the peak
# learning rate (5e-4, a fresh warm-up and cosine) and with caption → image
# weighted twice image → caption: 4000 steps into runs/latentlm-emoji-l4c,
# then 2500 into runs/latentlm-emoji-l4d (shipped as
# weights/latentlm-emoji). Scores as above, into
# docs/results/latentlm-emoji-l4c-{2000,4000}.json and
# latentlm-emoji-l4d-2500.json.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./bin/latentlm
vae=runs/vae-canvas-p7
common=(--task multimodal --vae "$vae" --tokenizer weights/multimodal-mnist/tokenizer.json
	--dim 128 --depth 4 --batch 16 --lr 2e-3 --seed 1)

# resumable DIR STEPS COMMAND…: runs the training COMMAND into DIR unless
# DIR holds STEPS steps already, resuming a run that was stopped part way (a
# checkpoint saved part way has a model file too, so its config.json is
# what says it is done).
resumable() {
	local dir=$1 steps=$2
	shift 2
	grep -q "\"steps\": $steps" "$dir/config.json" 2>/dev/null && return
	local resume=()
	[ -f "$dir/train_state.safetensors" ] && resume=(--resume)
	"$@" --steps "$steps" --out "$dir" "${resume[@]}"
}

# train DIR STEPS FLAGS…: a LatentLM run, resumable.
train() {
	local dir=$1 steps=$2
	shift 2
	resumable "$dir" "$steps" "$bin" train "$@"
}

# canvasTokenizer: the 7×7-patch canvas tokenizer the d128 × 4 runs read.
canvasTokenizer() {
	resumable "$vae" 1500 "$bin" vae train --data mnist-canvas --channels 12 --patch 7 --seed 1
}

# score TASK DIR NAME [FLAGS…]: eval --task TASK of DIR into
# docs/results/NAME.json, without the canvas scores' examples.
score() {
	local task=$1 dir=$2 name=$3
	shift 3
	"$bin" eval --task "$task" --model "$dir" --json "$@" |
		python3 -c 'import json,sys; r=json.load(sys.stdin); r.pop("examples",None); json.dump(r,sys.stdout,indent=1)' \
			>"docs/results/$name.json.part"
	mv "docs/results/$name.json.part" "docs/results/$name.json" # a file there is a whole score
}

# emojiFirstRun: the λ = 4 emoji run the continuation starts from.
emojiFirstRun() {
	train runs/latentlm-emoji-l4 4000 --task multimodal --data emoji --vae weights/vae-emoji --dim 192 --depth 4 \
		--diffusion-weight 4 --seed 1 --snapshot-every 500 --sample-every 1000
}

# continueShipped DIR NAME FLAGS…: the shipped d256 × 6 model continued for
# 7000 steps at batch 16 with drawing weighted up, then scored into
# docs/results/NAME-{t2i,i2t,vqa,text}.json.
continueShipped() {
	local dir=$1 name=$2
	shift 2
	train "$dir" 7000 --task multimodal --vae weights/vae-mnist-canvas --init weights/multimodal-mnist \
		--tokenizer weights/multimodal-mnist/tokenizer.json --batch 16 --lr 1e-3 \
		--mix-text 0.5 --mix-t2i 4 --mix-i2t 1.5 --mix-vqa 0.5 --sample-every 2000 "$@"
	for task in t2i i2t vqa text; do
		score "$task" "$dir" "$name-$task"
	done
}

mkdir -p docs/results
case "${PART:-mixture}" in
mixture)
	canvasTokenizer
	train runs/multimodal-p7 12000 "${common[@]}" --mix-text 0.5 --mix-t2i 4 --mix-i2t 2 --mix-vqa 0.5 --save-every 1000 --sample-every 3000
	train runs/text-only-p7 857 "${common[@]}" --mix-text 1 --mix-t2i 0 --mix-i2t 0 --mix-vqa 0 --sample-every 0
	for task in t2i i2t vqa text; do
		score "$task" runs/multimodal-p7 "multimodal-p7-$task"
	done
	score text runs/text-only-p7 text-only-p7
	;;
ablation)
	canvasTokenizer
	for loss in on off; do
		flag=true
		[ "$loss" = off ] && flag=false
		train "runs/ablate-context-$loss" 2400 "${common[@]}" --mix-text 0 --mix-t2i 1 --mix-i2t 1 --mix-vqa 0 \
			--context-image-loss="$flag" --save-every 1200 --sample-every 0 --quiet
		for task in t2i i2t; do
			score "$task" "runs/ablate-context-$loss" "ablate-context-$loss-$task"
		done
	done
	;;
continue)
	continueShipped runs/mm-b16 multimodal-b16 --seed 5 --save-every 1000
	;;
lambda)
	canvasTokenizer
	train runs/multimodal-p7-l4 12000 "${common[@]}" --mix-text 0.5 --mix-t2i 4 --mix-i2t 2 --mix-vqa 0.5 \
		--diffusion-weight 4 --save-every 500 --sample-every 3000
	for task in t2i i2t vqa text; do
		score "$task" runs/multimodal-p7-l4 "multimodal-p7-l4-$task"
	done
	;;
shipped-l16)
	continueShipped runs/mm-l16 multimodal-shipped-l16 --seed 6 --save-every 500 --diffusion-weight 16
	;;
lambda16)
	canvasTokenizer
	train runs/multimodal-p7-l16 12000 "${common[@]}" --mix-text 0.5 --mix-t2i 4 --mix-i2t 2 --mix-vqa 0.5 \
		--diffusion-weight 16 --save-every 500 --snapshot-every 6000 --sample-every 3000
	for step in 6000 12000; do
		dir=runs/multimodal-p7-l16/$(printf step-%06d "$step")
		[ "$step" = 12000 ] && dir=runs/multimodal-p7-l16
		for task in t2i i2t vqa text; do
			score "$task" "$dir" "multimodal-p7-l16-$step-$task"
		done
	done
	;;
emoji)
	emojiFirstRun
	for step in 2500 4000; do
		score t2i "runs/latentlm-emoji-l4/step-00$step" "latentlm-emoji-l4-$step" --limit 100 --seen 100
	done
	;;
emoji-continue)
	emojiFirstRun
	from=runs/latentlm-emoji-l4
	for stage in c:4000:2:1000 d:2500:3:500; do
		IFS=: read -r name steps seed every <<<"$stage"
		out="runs/latentlm-emoji-l4$name"
		train "$out" "$steps" --task multimodal --data emoji --vae weights/vae-emoji \
			--init "$from" --tokenizer "$from/tokenizer.json" --dim 192 --depth 4 --diffusion-weight 4 \
			--mix-t2i 2 --mix-i2t 1 --lr 5e-4 --seed "$seed" --snapshot-every "$every" --sample-every "$every"
		from=$out
	done
	score t2i runs/latentlm-emoji-l4c/step-002000 latentlm-emoji-l4c-2000 --limit 100 --seen 100
	score t2i runs/latentlm-emoji-l4c latentlm-emoji-l4c-4000 --limit 100 --seen 100
	score t2i runs/latentlm-emoji-l4d latentlm-emoji-l4d-2500 --limit 100 --seen 100
	;;
gpu)
	# The runs of scripts/gpu_issues.sh and its follow-up on the H200
	# (2026-12-04), unpacked into runs/: the shipped size with λ = 16
	# (runs/gpu-mm), its warm restart (runs/gpu-mm2: --init runs/gpu-mm
	# --lr 3e-4 --seed 2 --time 210s), gpu-mm's text-only comparator
	# (runs/gpu-text) and the emoji run (runs/gpu-emoji). Then, on the CPU,
	# gpu-mm2's comparator: runs/gpu-text restarted the same way for
	# gpu-mm2's text sequences (20 214 × 0.5/7 ≈ 1444 steps; about 30 min).
	for dir in gpu-mm2 gpu-mm; do
		for task in t2i i2t vqa text; do
			[ -f "docs/results/$dir-$task.json" ] || score "$task" "runs/$dir" "$dir-$task"
		done
	done
	[ -f docs/results/gpu-text.json ] || score text runs/gpu-text gpu-text
	[ -f docs/results/gpu-emoji-t2i.json ] || score t2i runs/gpu-emoji gpu-emoji-t2i --limit 100 --seen 100
	train runs/gpu-text2 1444 --task multimodal --vae runs/vae-canvas-p7 --tokenizer runs/gpu-text/tokenizer.json \
		--init runs/gpu-text --dim 256 --depth 6 --batch 32 --lr 3e-4 --seed 2 \
		--mix-text 1 --mix-t2i 0 --mix-i2t 0 --mix-vqa 0 --sample-every 0
	[ -f docs/results/gpu-text2.json ] || score text runs/gpu-text2 gpu-text2
	;;
*)
	echo "multimodal_cpu.sh: PART=$PART: want mixture, ablation, continue, lambda, lambda16, shipped-l16, gpu, emoji or emoji-continue" >&2
	exit 2
	;;
esac
