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
# Each run's length is set by a short calibration of the three together, so
# that its cosine schedule ends inside the budget: steps = steps per second
# × the seconds left. The runs return as runs.tar.part-NN (15 MiB pieces,
# without optimiser states) and gpu_issues.log under $OUT; scripts/gpu_pack.sh
# unpack puts them into runs/, to be scored on the CPU with the commands of
# docs/RESULTS.md. Run here with BACKEND=onnx L=./bin/latentlm BUDGET=… to
# try the script without a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
budget=${BUDGET:-540}
lambda=${LAMBDA:-16}
calibrate=${CALIBRATE:-90}
out=${OUT:-/tmp/gpu-issues}
mkdir -p "$out" runs
exec > >(tee "$out/gpu_issues.log") 2>&1
elapsed() { echo $(($(date +%s) - start)); }

L=${L:-./bin/latentlm-xla}
if [ -z "${BACKEND:-}" ]; then
	xz -dc .device/latentlm-xla.xz >bin/latentlm-xla && chmod +x bin/latentlm-xla || exit 1
	mkdir -p /usr/share/games/fortunes && cp .device/fortunes/* /usr/share/games/fortunes/
	cp -r .device/runs/* runs/
	# The CUDA PJRT plugin of JAX's wheels (scripts/gpu_xla_check.sh).
	site=$(python3 -c 'import site; print(site.getsitepackages()[0])')
	plugin=$(ls "$site"/jax_plugins/xla_cuda*/xla_cuda_plugin.so | head -1)
	export LD_LIBRARY_PATH="$(ls -d "$site"/nvidia/*/lib | tr '\n' ':')${LD_LIBRARY_PATH:-}"
	cu=$(ls -d "$site"/nvidia/cu13 2>/dev/null | head -1)
	[ -n "$cu" ] && export XLA_FLAGS="--xla_gpu_cuda_data_dir=$cu"
	export GOPJRT_CUDA_CHECKS=0 GOMLX_NO_AUTO_INSTALL=1
	BACKEND="xla:$plugin"
	nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
fi
echo "[$(elapsed) s] backend $BACKEND, budget $budget s, λ = $lambda"

common=(train --backend "$BACKEND" --task multimodal --dim 256 --depth 6 --batch 32 --lr 1e-3 --seed 1
	--save-every 2000 --sample-every 0)
declare -A flags=(
	[mm]="--vae runs/vae-canvas-p7 --tokenizer .device/tokenizer/multimodal-mnist.json --diffusion-weight $lambda --mix-text 0.5 --mix-t2i 4 --mix-i2t 2 --mix-vqa 0.5"
	[text]="--vae runs/vae-canvas-p7 --tokenizer .device/tokenizer/multimodal-mnist.json --mix-text 1 --mix-t2i 0 --mix-i2t 0 --mix-vqa 0"
	[emoji]="--data emoji --vae runs/vae-emoji-ssim0.05 --diffusion-weight 4 --mix-t2i 2 --mix-i2t 1"
)

# launch NAME STEPS OUT: one run in the background, each line of its output
# stamped with the seconds since launch.
launch() {
	local name=$1 steps=$2 dir=$3 t0
	t0=$(date +%s)
	# shellcheck disable=SC2086
	"$L" "${common[@]}" ${flags[$name]} --steps "$steps" --out "$dir" 2>&1 |
		while IFS= read -r line; do echo "$(($(date +%s) - t0)) $line"; done >"$out/$name-$(basename "$dir").log" &
	pids+=($!)
}

# running: whether a launched run is still going. (A plain wait would also
# wait for the tee above, which never ends.)
running() {
	local pid
	for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && return 0; done
	return 1
}

# rate LOG: "OVERHEAD STEPS_PER_SECOND" from a stamped progress log: the
# seconds to the first step (compilation, encoding the data) and the steady
# rate after it.
rate() {
	python3 - "$1" <<'EOF'
import re, sys
pts = [(int(m[1]), int(m[2])) for m in
       (re.match(r'(\d+) .* (\d+)/\d+ ', l) for l in open(sys.argv[1], errors='replace')) if m]
if len(pts) < 2 or pts[-1][1] <= pts[0][1] or pts[-1][0] <= pts[0][0]:
    sys.exit(1)
print(pts[0][0], (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0]))
EOF
}

pids=()
for name in mm text emoji; do launch "$name" 1000000 "/tmp/cal-$name"; done
sleep "$calibrate"
pkill -f -- "--out /tmp/cal-" || true
wait "${pids[@]}"
declare -A steps
left=$((budget - $(elapsed) - 40)) # 40 s for the final save and the packing
for name in mm emoji; do
	if ! read -r overhead per_s < <(rate "$out/$name-cal-$name.log"); then
		echo "[$(elapsed) s] $name: no steady rate in $calibrate s; its log ends:"
		tail -5 "$out/$name-cal-$name.log"
		continue
	fi
	steps[$name]=$(python3 -c "print(int(max(0, $left - 1.2 * $overhead) * $per_s * 0.95))")
	echo "[$(elapsed) s] $name: $overhead s to the first step, $per_s steps/s → ${steps[$name]} steps"
done
if [ -n "${steps[mm]:-}" ]; then
	steps[text]=$((steps[mm] / 14)) # the mixture gives text 0.5 of 7 parts
fi
pids=()
for name in mm text emoji; do
	[ -n "${steps[$name]:-}" ] && [ "${steps[$name]}" -gt 0 ] && launch "$name" "${steps[$name]}" "runs/gpu-$name"
done
# A run still going at the deadline is stopped with SIGTERM, which saves it.
while running && [ "$(elapsed)" -lt $((budget - 25)) ]; do sleep 2; done
if running; then
	pkill -TERM -f -- "--out runs/gpu-"
	echo "[$(elapsed) s] stopped at the deadline: a run is incomplete"
	wait "${pids[@]}"
fi
for name in mm text emoji; do
	[ -f "runs/gpu-$name/config.json" ] && echo "[$(elapsed) s] runs/gpu-$name: $(grep -o '"steps": [0-9]*' "runs/gpu-$name/config.json")"
	tail -2 "$out/$name-gpu-$name.log" 2>/dev/null
done
tar c --exclude='train_state*' runs/gpu-* 2>/dev/null | split -b 15M -d - "$out/runs.tar.part-"
ls -la "$out"
echo "[$(elapsed) s] done"
