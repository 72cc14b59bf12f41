#!/usr/bin/env bash
# One call of a lent GPU machine (one H200) for the open issues' longer runs,
# prepared by scripts/gpu_pack.sh (docs/BENCHMARKS.md, "Training on a lent
# GPU"). In BUDGET seconds (default 540, for a call with timeout_s 570) it
# trains, side by side on the one GPU:
#
#   runs/gpu-mm     issue 15: the multimodal model at the shipped size (d256 × 6)
#                   on the 7×7-patch canvas tokenizer, with the drawing-heavy
#                   mixture and λ = LAMBDA (default 16) of docs/RESULTS.md
#                   "The diffusion weight λ" and "λ = 16", batch 32, lr 1e-3,
#                   seed 1
#   runs/gpu-emoji  issue 20: caption → image emoji at d256 × 6, λ = 4, on the
#                   shipped emoji tokenizer (weights/vae-emoji), batch 32,
#                   lr 1e-3, seed 1
#   runs/gpu-text   issue 15's text-only comparator: the same size and as
#                   many text sequences as runs/gpu-mm (its steps × 0.5/7),
#                   launched once runs/gpu-mm has fitted its length
#
# Each run has a time budget (`train --time`, counted from its start): it
# stops at the step that fits the seconds left, its cosine schedule fitted to
# end there as its pace is measured, so no GPU time goes to calibrating (on the H200 the first
# steps compile for about a minute, 2026-12-04). STEPS="mm=N emoji=N
# text=N" sets fixed lengths instead. runs/gpu-mm and runs/gpu-emoji
# return as runs.tar.part-NN (15 MiB pieces, without optimiser states),
# runs/gpu-text as its score (gpu-text.json), with the logs under $OUT; scripts/gpu_pack.sh unpack puts them into runs/, to be scored
# on the CPU with the commands of docs/RESULTS.md. Run here with
# BACKEND=onnx L=./bin/latentlm BUDGET=… to try the script without a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/gpu_lib.sh
. scripts/gpu_lib.sh
gpu_begin gpu_issues
lambda=${LAMBDA:-16}
margin=40 # seconds for the final saves and the packing
if [ -z "${BACKEND:-}" ]; then
	mkdir -p /usr/share/games/fortunes && cp .device/fortunes/* /usr/share/games/fortunes/
	cp -r .device/runs/* runs/
fi
gpu_setup || exit 1
echo "[$(elapsed) s] backend $BACKEND, budget $budget s, λ = $lambda"

common=(train --backend "$BACKEND" --task multimodal --dim 256 --depth 6 --batch 32 --lr 1e-3 --seed 1
	--save-every 2000 --sample-every 0)
declare -A flags=(
	[mm]="--vae runs/vae-canvas-p7 --tokenizer .device/tokenizer/multimodal-mnist.json --diffusion-weight $lambda --mix-text 0.5 --mix-t2i 4 --mix-i2t 2 --mix-vqa 0.5"
	[text]="--vae runs/vae-canvas-p7 --tokenizer .device/tokenizer/multimodal-mnist.json --mix-text 1 --mix-t2i 0 --mix-i2t 0 --mix-vqa 0"
	[emoji]="--data emoji --vae runs/vae-emoji --diffusion-weight 4 --mix-t2i 2 --mix-i2t 1"
)

# timed NAME [STEPS]: launches NAME for the seconds left but the margin (at
# most STEPS steps, default 100 million).
timed() {
	launch "$1" "${2:-100000000}" "runs/gpu-$1" --time "$((budget - $(elapsed) - margin))s"
}

declare -A steps
pids=()
if [ -n "${STEPS:-}" ]; then
	parse_steps "$STEPS" # e.g. STEPS="mm=8000 emoji=8000 text=570": no time budget
	for name in "${names[@]}"; do launch "$name" "${steps[$name]}" "runs/gpu-$name"; done
else
	timed mm
	timed emoji
	# The text-only comparator sees as many text sequences as runs/gpu-mm,
	# whose mixture gives text 0.5 of 7 parts: its length is read from
	# runs/gpu-mm's progress once that has fitted its own (after 15% of its
	# budget), at the latest half-way.
	mm_total=
	while [ "$(elapsed)" -lt $((budget / 2)) ]; do
		sleep 5
		mm_total=$(grep -oE ' [0-9]+/[0-9]+ loss' "$out/mm-gpu-mm.log" | tail -1 | sed -E 's|.*/([0-9]+) loss|\1|')
		[ -n "$mm_total" ] && [ "$mm_total" != 100000000 ] && break
		mm_total=
	done
	if [ -n "$mm_total" ]; then
		echo "[$(elapsed) s] runs/gpu-mm fitted to $mm_total steps: runs/gpu-text gets $((mm_total / 14))"
		timed text $((mm_total / 14))
	else
		echo "[$(elapsed) s] runs/gpu-mm shows no progress: no text-only run"
	fi
fi
await_runs
for name in mm emoji text; do
	[ -f "runs/gpu-$name/config.json" ] && echo "[$(elapsed) s] runs/gpu-$name: $(grep -o '"steps": [0-9]*' "runs/gpu-$name/config.json")"
	tail -2 "$out/$name-gpu-$name.log" 2>/dev/null
done
# The text-only comparator is scored here (its bits per byte need only the
# fortunes), so that the two models to score on the CPU fit the 64 MiB
# that come back.
if [ -f runs/gpu-text/config.json ]; then
	"$L" eval --backend "$BACKEND" --task text --model runs/gpu-text --json >"$out/gpu-text.json" &&
		echo "[$(elapsed) s] runs/gpu-text: $(grep -o '"bits_per_byte": [0-9.]*' "$out/gpu-text.json")"
fi
pack_runs runs/gpu-mm runs/gpu-emoji
