#!/usr/bin/env bash
# One call of a lent GPU machine (one H200) for issue 18, text-to-speech,
# prepared by `scripts/gpu_pack.sh pack-tts` (docs/BENCHMARKS.md, "Training
# on a lent GPU"). The machine has no speech synthesisers and the audio
# (1.6 GB) cannot travel, so the runs read the encoded training split of
# the four-times-the-texts cache, .deps/speech-1600, as one corpus file
# (`latentlm speech-vae encode-data`, 34 MB, xz-compressed for the trip).
# In BUDGET seconds (default 540, for a call with timeout_s 570) it trains,
# side by side on the one GPU, on the spoken numbers, warm restarts from
# weights/tts at the learning rate of its last CPU restart (1e-4), which is
# what docs/RESULTS.md names as the next step for its word error:
#
#   runs/gpu-tts-b16  batch 16, 20 000 steps (about 80 a second beside the
#                     other once compiled, 2026-12-04)
#   runs/gpu-tts-b64  batch 64, 6000 steps (about 14 a second)
#
# (The call of 2026-12-04 ran these from the step-13 000 weights at lr 5e-4,
# seeds 9 and 10, for 10 000 and 8000 steps: the b16 run became weights/tts,
# and the b64 one was stopped and saved at the deadline after 6294.)
# STEPS="b16=20000 b64=6000" sets the runs and their lengths. The first
# steps of each compile one graph per head-row bucket, about a minute
# in all; a run still going 25 s before the budget is stopped with SIGTERM,
# which saves it. The runs come back as runs.tar.part-NN (15 MiB pieces,
# without optimiser states) and the logs under $OUT (at most 8 files come
# back); `scripts/gpu_pack.sh unpack DIR` puts them into runs/, to be
# scored on the CPU by `latentlm eval --task tts`. Run here with
# BACKEND=onnx L=./bin/latentlm BUDGET=… STEPS="b16=20" to try it without
# a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/gpu_lib.sh
. scripts/gpu_lib.sh
gpu_begin gpu_tts
corpus=.device/speech-1600-numbers-train.safetensors
[ -f "$corpus" ] || xz -T0 -dc "$corpus.xz" >"$corpus" || exit 1
gpu_setup || exit 1
echo "[$(elapsed) s] backend $BACKEND, budget $budget s"

common=(train --backend "$BACKEND" --task tts --set numbers --data "$corpus" --save-every 100000)
declare -A flags=(
	[b16]="--init .device/tts --batch 16 --lr 1e-4 --seed 15"
	[b64]="--init .device/tts --batch 64 --lr 1e-4 --seed 16"
)
declare -A steps
parse_steps "${STEPS:-b16=20000 b64=6000}"
pids=()
for name in "${names[@]}"; do launch "$name" "${steps[$name]}" "runs/gpu-tts-$name"; done
await_runs
for name in "${names[@]}"; do
	[ -f "runs/gpu-tts-$name/config.json" ] && echo "[$(elapsed) s] runs/gpu-tts-$name: $(grep -o '"steps": [0-9]*' "runs/gpu-tts-$name/config.json" | tail -1)"
	tail -2 "$out/$name-gpu-tts-$name.log" 2>/dev/null
done
pack_runs runs/gpu-tts-*
