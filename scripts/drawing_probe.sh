#!/usr/bin/env bash
# Issue 15: why the shipped multimodal model draws the caption's layout but
# not its digits. A small LatentLM (d128 × 4, batch 16) is trained on
# caption → image sequences only, in three cosine cycles of 2400 steps
# (lr 2e-3, then 1e-3 twice, each cycle starting from the last), on the
# canvas tokenizer given, and scored by eval --task t2i after each cycle.
#
#   scripts/drawing_probe.sh                # the shipped canvas tokenizer: 8×8 patches, 16 channels
#   TOKENIZER=p7 scripts/drawing_probe.sh   # 7×7 patches, 12 channels: 64 latents whose grid
#                                           # every layout's images sit on (0, 14 and 28 are
#                                           # multiples of 7, not of 8)
#   TOKENIZER=c8 scripts/drawing_probe.sh   # 8×8 patches, 8 channels
#
# Each cycle takes about 20 minutes on the 2-core CPU alone (30 beside
# another run). Writes runs/probe-TOKENIZER/cycleN (checkpoints and
# caption → image sample grids, samples-002400.png the last; RESULTS shows
# cycle 3's) and docs/results/probe-TOKENIZER-cycleN.json (eval --task t2i
# --json without the examples). Cycles already trained
# (their config.json records 2400 steps) are not trained again.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./bin/latentlm
tokenizer=${TOKENIZER:-c16}
cycles=${CYCLES:-3}

case "$tokenizer" in
c16) vae=weights/vae-mnist-canvas ;;
p7)
	vae=runs/vae-canvas-p7
	[ -f "$vae/model.safetensors" ] || "$bin" vae train --data mnist-canvas --channels 12 --patch 7 --seed 1 --out "$vae"
	;;
c8)
	vae=runs/vae-canvas-c8
	[ -f "$vae/model.safetensors" ] || "$bin" vae train --data mnist-canvas --channels 8 --patch 8 --seed 1 --out "$vae"
	;;
*)
	echo "drawing_probe.sh: TOKENIZER=$tokenizer: want c16, p7 or c8" >&2
	exit 2
	;;
esac

out=runs/probe-$tokenizer
mkdir -p "$out" docs/results
prev=
for cycle in $(seq 1 "$cycles"); do
	dir=$out/cycle$cycle
	if [ "$cycle" = 1 ]; then
		start=(--lr 2e-3)
	else
		start=(--init "$prev" --lr 1e-3)
	fi
	if ! grep -q '"steps": 2400' "$dir/config.json" 2>/dev/null; then
		"$bin" train --task multimodal --vae "$vae" --tokenizer weights/multimodal-mnist/tokenizer.json \
			--dim 128 --depth 4 --batch 16 --steps 2400 --seed "$cycle" "${start[@]}" \
			--mix-text 0 --mix-t2i 1 --mix-i2t 0 --mix-vqa 0 --out "$dir" --quiet
	fi
	"$bin" eval --task t2i --model "$dir" --json |
		python3 -c 'import json,sys; r=json.load(sys.stdin); r.pop("examples",None); json.dump(r,sys.stdout,indent=1)' \
			>"docs/results/probe-$tokenizer-cycle$cycle.json"
	prev=$dir
done
