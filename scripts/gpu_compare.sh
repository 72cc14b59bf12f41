#!/usr/bin/env bash
# One call of a lent GPU machine (one H200) for issue 16: LatentLM against
# the VQ-MLLM and Transfusion at the large size (d256 × 6, batch 32), at
# equal training FLOPs and parameters, far longer than the 2-core CPU
# allows (docs/RESULTS.md, "LatentLM against VQ-MLLM and Transfusion").
# Prepared by `scripts/gpu_pack.sh pack-compare`, which also writes the
# plan (.device/compare/plan.env: each arch's counted work a step, measured
# by one step on the CPU, and the budget: LatentLM's LM_STEPS steps), and
# called as
#
#   run(command: "bash scripts/gpu_compare.sh", timeout_s: 570, carry: [".device", ".deps/mnist"])
#
# In BUDGET seconds (default 540) it
#   1. trains the three side by side on the one GPU, each for the budget
#      (--train-gflop BUDGET_GFLOP, LM_STEPS times LatentLM's first step's
#      counted work: its head runs on each batch's latent targets, so its
#      steps' work varies a little and it trains about LM_STEPS), keeping a
#      snapshot at each quarter of it, with `--time` as a safety: a run
#      whose pace would overrun the training window ends early, annealed,
#      and its shortfall is in its training record;
#   2. scores each final model as scripts/multimodal_compare.sh does (eval
#      --task text, t2i, i2t, vqa; the three side by side), into
#      compare-large-params[-lLAMBDA][-cleanP]-ARCH.json (by default -l16-clean0.75),
#      the form that script's table reads;
#   3. with the seconds left, scores every snapshot with fewer images (the
#      paper's Figure 8: sweep --over train), into compare-large-params…-sweep.json.
# Nothing but scores comes back (three d256 × 6 models are over the 64 MiB
# a call returns): the JSON, the logs (logs.tar.xz) and this script's log.
# Then, on the CPU: `scripts/gpu_pack.sh restore`, copy the JSON into
# docs/results/, and `SIZE=large PHASES=table scripts/multimodal_compare.sh`
# prints the table; `latentlm sweep --task multimodal --from … --out …`
# draws the figure.
#
# The recipe is the one the CPU comparison reached (docs/RESULTS.md, "The
# second size at the current recipe"): LAMBDA (default 16; 1 is the
# paper's) weighs LatentLM's and Transfusion's diffusion loss, and
# CLEAN_CONTEXT (default 0.75; 0 for none) is the share of the images
# LatentLM reads as context that enter as their σ-VAE mean
# (--context-clean). TRAIN_S (default: BUDGET − EVAL_S − 20, EVAL_S default
# 170) is the training window. Run here with BACKEND=onnx L=./bin/latentlm
# BUDGET=… after `DIM=32 DEPTH=1 HEADS=2 BATCH=4 LM_STEPS=8 VQVAE=… scripts/gpu_pack.sh
# plan-compare` to try the script without a GPU (T2I_FLAGS, ANSWER_FLAGS and
# SWEEP_N give eval and sweep fewer images and answers there: "--per-seen 0
# --per-held-out 1", "--n 4 --max-tokens 4", 4).
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/gpu_lib.sh
. scripts/gpu_lib.sh
gpu_begin gpu_compare
eval_s=${EVAL_S:-170}
train_s=${TRAIN_S:-$((budget - eval_s - 20))}
lambda=${LAMBDA:-16}
clean=${CLEAN_CONTEXT:-0.75}
plan=.device/compare/plan.env
[ -f "$plan" ] || { echo "no $plan: run scripts/gpu_pack.sh pack-compare (or plan-compare) first"; exit 1; }
# shellcheck disable=SC1090
. "$plan"
if [ -z "${BACKEND:-}" ]; then
	mkdir -p /usr/share/games/fortunes && cp .device/fortunes/* /usr/share/games/fortunes/
fi
dev=.device/compare # the tokenizers and the judge
gpu_setup || exit 1
# The names scripts/multimodal_compare.sh gives the same settings: the
# baselines match LatentLM's parameters (MATCH=params), then λ and the
# context share.
name=large-params lambda_flag=() clean_flag=()
if [ "$lambda" != 1 ]; then
	name=$name-l$lambda
	lambda_flag=(--diffusion-weight "$lambda")
fi
if [ "$clean" != 0 ]; then
	name=$name-clean
	[ "$clean" != 1 ] && name=$name$clean
	clean_flag=(--context-clean "$clean")
fi
# Transfusion with its paper's context noise (t < 500), train's default and
# the stronger baseline (docs/RESULTS.md, "The paper's scheme over seeds").
# As in scripts/multimodal_compare.sh, it names Transfusion's scores and the
# sweep, not LatentLM's and the VQ-MLLM's.
tf_noise=${TF_NOISE:-0.5} tf_suffix=
[ "$tf_noise" != 0 ] && tf_suffix=-tfnoise$tf_noise
name_of() { if [ "$1" = transfusion ]; then echo "$name$tf_suffix"; else echo "$name"; fi; }
res=$out/results
mkdir -p "$res"
echo "[$(elapsed) s] backend $BACKEND, budget $budget s (training $train_s s), λ = $lambda, context read as μ $clean; plan:"
cat "$plan"

common=(train --backend "$BACKEND" --task multimodal --data mnist-canvas --dim "$DIM" --heads "$HEADS" --kv-heads "$HEADS"
	--batch "$BATCH" --seed 1 --save-every 1000 --sample-every 0)
declare -A flags=(
	[latentlm]="--arch latentlm --vae $dev/vae-mnist-canvas --depth $LM_DEPTH --train-gflop $BUDGET_GFLOP ${lambda_flag[*]} ${clean_flag[*]}"
	[vq]="--arch vq --vae $dev/vae-vq-canvas --match-params $LM_PARAMS_DIR --train-gflop $BUDGET_GFLOP"
	[transfusion]="--arch transfusion --vae $dev/vae-mnist-canvas --match-params $LM_PARAMS_DIR --train-gflop $BUDGET_GFLOP ${lambda_flag[*]} --context-noise $tf_noise"
)
pids=()
rm -rf runs/gpu-cmp # a warm machine keeps runs/ from an earlier call
for a in latentlm vq transfusion; do
	# A snapshot at each quarter of the budget: the steps whose work is a
	# quarter of it, for each arch's work a step.
	step_gflop=STEP_GFLOP_$a
	snap=$(python3 -c "print(max(1, round($BUDGET_GFLOP / 4 / ${!step_gflop})))")
	# --time ends each run 30 s before the window closes, saved;
	# await_runs stops any still going 25 s before it.
	launch "$a" - "runs/gpu-cmp/$a" --snapshot-every "$snap" --time "$((train_s - 30 - $(elapsed)))s"
done
budget_=$budget budget=$train_s
await_runs
budget=$budget_
for a in latentlm vq transfusion; do
	echo "[$(elapsed) s] runs/gpu-cmp/$a: $(python3 -c "import json; i = json.load(open('runs/gpu-cmp/$a/config.json'))['info']; print({k: i.get(k) for k in ('steps', 'train_gflop', 'train_tokens', 'train_seconds')})" 2>&1)"
	tail -1 "$out/$a-$a.log"
done

# score ARCH: the four tasks of the final model, then the compare JSON.
score() {
	local a=$1 dir=runs/gpu-cmp/$1 t
	local tmp=$dir.scores
	mkdir -p "$tmp"
	# Drawing last: Transfusion's is the slowest score (a full pass over
	# the image for every solver step), and the others should not wait.
	for t in text i2t vqa t2i; do
		local extra=()
		case $t in t2i) read -r -a extra <<<"${T2I_FLAGS:-}" ;; i2t | vqa) read -r -a extra <<<"${ANSWER_FLAGS:-}" ;; esac
		# Every score stops 30 s before the budget, so that the packing
		# below always runs (at most 8 files come back, and the logs are
		# more until packed).
		local left=$((budget - 30 - $(elapsed)))
		[ "$left" -gt 5 ] || { echo "[$(elapsed) s] $a $t: no time left"; continue; }
		timeout "$left" "$L" eval --backend "$BACKEND" --task "$t" --model "$dir" --judge "$dev/judge-mnist-canvas" "${extra[@]}" --json >"$tmp/$t.json.part" 2>"$tmp/$t.log" &&
			mv "$tmp/$t.json.part" "$tmp/$t.json"
		echo "[$(elapsed) s] $a $t: $(head -c 300 "$tmp/$t.json" 2>/dev/null | tr -d '\n ' | cut -c1-160)"
	done
	python3 - "$a" "$name" "$tmp" "$dir/config.json" >"$res/compare-$(name_of "$a")-$a.json" <<'PY'
import json, os, sys
arch, size, tmp, cfg = sys.argv[1:]
names = {"latentlm": "LatentLM", "vq": "VQ-MLLM", "transfusion": "Transfusion"}
c = json.load(open(cfg))
row = {"arch": arch, "name": names[arch], "size": size, "model": c["config"], "train": c["info"], "bench": None}
for t in ("text", "t2i", "i2t", "vqa"):
    p = os.path.join(tmp, t + ".json")
    row[t] = json.load(open(p)) if os.path.exists(p) else None
json.dump(row, sys.stdout, indent=2)
PY
}
scoring=()
for a in latentlm vq transfusion; do
	[ -f "runs/gpu-cmp/$a/config.json" ] && { score "$a" & scoring+=($!); }
done
# Not a plain wait, which would also wait for the tee of this script's log.
wait "${scoring[@]}"
echo "[$(elapsed) s] scored"

# Figure 8 with what is left: every snapshot, fewer images (as the CPU
# script's sweep), the JSON rewritten after every row.
left=$((budget - $(elapsed) - 30))
if [ "$left" -gt 30 ]; then
	timeout "$left" "$L" sweep --backend "$BACKEND" --over train --task multimodal --n "${SWEEP_N:-200}" --per-seen 1 --per-held-out 2 \
		--judge "$dev/judge-mnist-canvas" \
		--json "$res/compare-$name$tf_suffix-sweep.json" --out "$res/compare-$name$tf_suffix.png" \
		--title "LatentLM, VQ-MLLM and Transfusion at equal training FLOPs (H200: d$DIM, batch $BATCH, seed 1)" \
		"LatentLM=runs/gpu-cmp/latentlm" "VQ-MLLM=runs/gpu-cmp/vq" "Transfusion=runs/gpu-cmp/transfusion" ||
		echo "[$(elapsed) s] the sweep stopped at the budget: its JSON holds the rows it finished"
fi
tar c -C "$out" --exclude=results --exclude='*.tar*' --exclude=gpu_compare.log . | xz -T0 >"$out/logs.tar.xz"
find "$out" -maxdepth 1 -name '*.log' ! -name gpu_compare.log -delete
mv "$res"/* "$out"/ && rmdir "$res"
ls -la "$out"
echo "[$(elapsed) s] done"
