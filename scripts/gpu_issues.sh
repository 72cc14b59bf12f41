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
#   runs/gpu-text   its text-only comparator: the same size and as many text
#                   sequences (steps × 0.5/7)
#   runs/gpu-emoji  issue 20: caption → image emoji at d256 × 6, λ = 4, on the
#                   σ-VAE trained with the SSIM term, batch 32, lr 1e-3, seed 1
#
# Each run's length is set by a calibration of the three together (CALIBRATE
# seconds, default 150: on the H200 the first steps compile for about a
# minute, 2026-12-04), so that its cosine schedule ends inside the budget:
# steps = steps per second × the seconds left; STEPS="mm=N text=N emoji=N"
# sets the lengths instead. The runs return as runs.tar.part-NN (15 MiB pieces,
# without optimiser states) and gpu_issues.log under $OUT; scripts/gpu_pack.sh
# unpack puts them into runs/, to be scored on the CPU with the commands of
# docs/RESULTS.md. Run here with BACKEND=onnx L=./bin/latentlm BUDGET=… to
# try the script without a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
budget=${BUDGET:-540}
lambda=${LAMBDA:-16}
calibrate=${CALIBRATE:-150} # above the minute the first steps spend compiling (scripts/gpu_lib.sh)
out=${OUT:-/tmp/gpu-issues}
mkdir -p "$out" runs
exec > >(tee "$out/gpu_issues.log") 2>&1
elapsed() { echo $(($(date +%s) - start)); }

# shellcheck source=scripts/gpu_lib.sh
. scripts/gpu_lib.sh
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
	[emoji]="--data emoji --vae runs/vae-emoji-ssim0.05 --diffusion-weight 4 --mix-t2i 2 --mix-i2t 1"
)

declare -A steps
if [ -n "${STEPS:-}" ]; then
	parse_steps "$STEPS" # e.g. STEPS="mm=8000 text=570 emoji=8000": no calibration
else
	calibrate "$calibrate" mm text emoji
	unset 'steps[text]' # sized from mm's below
	if [ -n "${steps[mm]:-}" ]; then
		steps[text]=$((steps[mm] / 14)) # the mixture gives text 0.5 of 7 parts
	fi
fi
pids=()
for name in mm text emoji; do
	[ -n "${steps[$name]:-}" ] && [ "${steps[$name]}" -gt 0 ] && launch "$name" "${steps[$name]}" "runs/gpu-$name"
done
await_runs
for name in mm text emoji; do
	[ -f "runs/gpu-$name/config.json" ] && echo "[$(elapsed) s] runs/gpu-$name: $(grep -o '"steps": [0-9]*' "runs/gpu-$name/config.json")"
	tail -2 "$out/$name-gpu-$name.log" 2>/dev/null
done
pack_runs runs/gpu-
