#!/usr/bin/env bash
# Issue 16: LatentLM against the VQ-MLLM and Transfusion on the captioned
# MNIST canvases, at the same backbone, the same sequences per step and
# equal training FLOPs (the paper's Table 3 and Figure 8 at small scale).
#
#   SIZE=small scripts/multimodal_compare.sh   # d128 × 4, batch 16, 1400 LatentLM steps (2-core CPU, about 70 minutes)
#   SIZE=medium scripts/multimodal_compare.sh  # d192 × 6, batch 16, 1400 LatentLM steps (2-core CPU, about 75 minutes)
#   SIZE=large scripts/multimodal_compare.sh   # d256 × 6, batch 32 (a GPU, or hours of CPU)
#
# What is equalised: the training FLOPs, counted as the checkpoints count
# them ("train_gflop": 3 × the forward's matmul FLOPs per step). LatentLM
# trains STEPS steps; its train_gflop is the budget, and the VQ-MLLM and
# Transfusion train the steps that spend the same budget (--train-gflop)
# at the same batch of sequences, so they see more sequences (and text
# tokens) than LatentLM, in proportion to how much cheaper their step is.
# Every run keeps a snapshot every STEPS/2 steps, so the snapshots at
# LatentLM's step count compare the three at equal training tokens too.
#
# Writes, for each arch A (latentlm, vq, transfusion):
#   runs/compare-SIZE/A                     the run and its step-NNNNNN snapshots
#   runs/compare-SIZE-A.log                 its training log
#   docs/results/compare-SIZE-A.json        eval --task text|t2i|i2t|vqa --json of
#                                           the last step, bench generate (images/s
#                                           at batch 1, 16, 64; GFLOP per image) and
#                                           the training record
# and docs/results/compare-SIZE-sweep.json and compare-SIZE.png (every
# metric against training tokens, scored on every snapshot with fewer
# images: SWEEP_N test canvases, 1 image per seen and 2 per held-out scene).
#
# What is also equalised (MATCH=params, the default): the parameters. The
# three share the width, heads and text vocabulary, but at one depth
# LatentLM's diffusion head and the VQ-MLLM's image codes weigh
# differently (d128 × 4: 1.90 M, 1.54 M and 1.33 M parameters), so the
# baselines take the depth whose count is nearest to LatentLM's
# (`train --match-params`; d128: VQ-MLLM 6 blocks, +1.0%, Transfusion 7,
# −0.1%). MATCH=depth gives all three DEPTH blocks instead, the runs of
# runs/compare-SIZE and docs/results/compare-SIZE-*; MATCH=params writes
# runs/compare-SIZE-params and docs/results/compare-SIZE-params-*.
#
# A training run the script finished (OUT/A.trained exists) is not
# repeated, so a run stopped midway restarts where it stopped; MATCH only
# changes the baselines, so runs/compare-SIZE/latentlm may be copied into
# runs/compare-SIZE-params with its .trained mark.
#
# LAMBDA (default 1, the paper's) weighs the diffusion loss of LatentLM and
# Transfusion (𝓛_CE + λ·𝓛_diff; the VQ-MLLM has none): another value
# writes runs/compare-SIZE-lLAMBDA and docs/results/compare-SIZE-lLAMBDA-*.
# CLEAN_CONTEXT=P gives LatentLM --context-clean P (that share of the images
# it reads as context enter as their σ-VAE mean, as in use) and adds -clean
# (P = 1) or -cleanP to the names; CONTEXT_LOSS=0 gives it --context-image-loss=false (those
# images are not drawn) and adds -untrained. The baselines are unchanged by
# either, so their finished runs may be copied in with their .trained marks
# (but not a Transfusion run from before 2026-12-07, whose context images
# were read as σ-VAE draws; its checkpoint lacks "context_mean").
# TF_NOISE=X (default 0.5) gives Transfusion --context-noise X: its context
# images noised at t < X·T and trained to denoise. 0.5 is the Transfusion
# paper's scheme and train's default, the far stronger baseline at both
# sizes (docs/RESULTS.md, "Transfusion reading its context as in use"); 0
# gives them clean and without a loss, as the runs before 2026-12-07 did.
# X other than 0 adds -tfnoiseX to the names of Transfusion's run, log and
# scores and of the sweep and plot, but not to LatentLM's and the
# VQ-MLLM's, which serve every TF_NOISE.
# ARCHS (default "latentlm vq transfusion") runs a subset, LatentLM first
# when it is in it (its FLOPs are the budget; without it, the baselines
# read the budget from LatentLM's finished run).
#
# Environment: BIN (default bin/latentlm, built if missing), SIZE, SEED
# (1; another adds -seedSEED to the names), STEPS (LatentLM's steps; a value other than the size's default
# adds -sSTEPS to the names, as LAMBDA does -lLAMBDA), GFLOP (LatentLM's
# budget instead of STEPS, which then sets only the snapshot period; adds
# -gGFLOP, rounded, to the names: LatentLM's step costs less since its
# diffusion head runs on the latent targets alone, so an earlier run's
# budget buys it more steps now), MATCH, BACKEND (the default backend if empty),
# PHASES (train,sweep,eval,bench,table: a subset reruns only those; diag,
# not in the default, adds LatentLM with --batch-mul 1 at the same budget).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOEXPERIMENT=simd

SIZE=${SIZE:-small}
SEED=${SEED:-1}
BIN=${BIN:-bin/latentlm}
PHASES=${PHASES:-train,sweep,eval,bench,table}
SWEEP_N=${SWEEP_N:-200}
LIMIT=0
T2I=() ANSWERS=()
case $SIZE in
small) DIM=128 DEPTH=4 HEADS=4 BATCH=16 DEFAULT_STEPS=1400 ;;
medium) DIM=192 DEPTH=6 HEADS=4 BATCH=16 DEFAULT_STEPS=1400 ;;
large) DIM=256 DEPTH=6 HEADS=4 BATCH=32 DEFAULT_STEPS=4000 ;;
# A smoke test of the script itself: minutes, meaningless scores.
tiny) DIM=32 DEPTH=1 HEADS=2 BATCH=4 DEFAULT_STEPS=4 LIMIT=256 SWEEP_N=4 SNAP_OTHERS=40 RES=${RES:-runs/compare-tiny/results}
	T2I=(--per-seen 0 --per-held-out 1) ANSWERS=(--n 4 --max-tokens 4) ;;
*) echo "SIZE=$SIZE: want small, medium, large or tiny" >&2; exit 2 ;;
esac
STEPS=${STEPS:-$DEFAULT_STEPS}
# Snapshots: LatentLM's at half and all its steps; the others' every
# LatentLM's steps (equal tokens at the first) and at their last.
SNAP=$(( STEPS / 2 > 0 ? STEPS / 2 : 1 ))
SNAP_OTHERS=${SNAP_OTHERS:-$STEPS}
MATCH=${MATCH:-params}
case $MATCH in
params) NAME_=$SIZE-params ;;
depth) NAME_=$SIZE ;;
*) echo "MATCH=$MATCH: want params or depth" >&2; exit 2 ;;
esac
LAMBDA=${LAMBDA:-1}
LAMBDA_FLAG=()
if [ "$LAMBDA" != 1 ]; then
	NAME_=$NAME_-l$LAMBDA
	LAMBDA_FLAG=(--diffusion-weight "$LAMBDA")
fi
# A budget other than the size's default is its own comparison.
[ "$STEPS" != "$DEFAULT_STEPS" ] && NAME_=$NAME_-s$STEPS
[ "$SEED" != 1 ] && NAME_=$NAME_-seed$SEED
GFLOP=${GFLOP:-}
[ -n "$GFLOP" ] && NAME_=$NAME_-g$(printf %.0f "$GFLOP")
LATENTLM_FLAGS=()
CLEAN_CONTEXT=${CLEAN_CONTEXT:-0}
if [ "$CLEAN_CONTEXT" != 0 ]; then
	NAME_=$NAME_-clean
	[ "$CLEAN_CONTEXT" != 1 ] && NAME_=$NAME_$CLEAN_CONTEXT
	LATENTLM_FLAGS+=(--context-clean "$CLEAN_CONTEXT")
fi
TF_NOISE=${TF_NOISE:-0.5}
TF_FLAGS=(--context-noise "$TF_NOISE") TF_SUFFIX=
[ "$TF_NOISE" != 0 ] && TF_SUFFIX=-tfnoise$TF_NOISE
if [ "${CONTEXT_LOSS:-1}" = 0 ]; then
	NAME_=$NAME_-untrained
	LATENTLM_FLAGS+=(--context-image-loss=false)
fi
OUT=runs/compare-$NAME_
RES=${RES:-docs/results}
# name_of A: the name of arch A's run, log and scores. Transfusion's
# carries its context noise, so that one LatentLM and VQ-MLLM run serves
# Transfusion under every TF_NOISE.
name_of() { if [ "$1" = transfusion ]; then echo "$NAME_$TF_SUFFIX"; else echo "$NAME_"; fi; }
dir_of() { echo "runs/compare-$(name_of "$1")/$1"; }
VAE=weights/vae-mnist-canvas
VQVAE=${VQVAE:-runs/vae-vq-canvas}
read -r -a ARCHS <<<"${ARCHS:-latentlm vq transfusion}"
declare -A NAME=([latentlm]=LatentLM [vq]=VQ-MLLM [transfusion]=Transfusion)
BACKEND_FLAG=()
[ -n "${BACKEND:-}" ] && BACKEND_FLAG=(--backend "$BACKEND")
has() { [[ ",$PHASES," == *",$1,"* ]]; }
# SET_NAME names the sweep and plot of the set: with Transfusion in it,
# its context noise too.
SET_NAME=$NAME_
[[ " ${ARCHS[*]} " == *" transfusion "* ]] && SET_NAME=$NAME_$TF_SUFFIX
# LatentLM's counted work, from its finished run: the baselines' budget.
latentlm_budget() {
	[ -f "$OUT/latentlm.trained" ] || { echo "$OUT/latentlm is not trained: its FLOPs are the baselines' budget, so run ARCHS with latentlm first" >&2; return 1; }
	jq -r '.info.train_gflop' "$OUT/latentlm/config.json"
}
stamp() { date -u +%H:%M:%S; }

[ -x "$BIN" ] || go build -o "$BIN" ./cmd/latentlm
mkdir -p "$OUT" "$RES"

if has train; then
	if [[ " ${ARCHS[*]} " == *" vq "* ]] && [ ! -f "$VQVAE/config.json" ]; then
		echo "$(stamp) the VQ tokenizer: $VQVAE"
		"$BIN" vae train --data mnist-canvas --kind vq --seed 1 --out "$VQVAE" "${BACKEND_FLAG[@]}" > "$VQVAE.log" 2>&1
	fi
	for a in "${ARCHS[@]}"; do
		vae=$VAE
		[ "$a" = vq ] && vae=$VQVAE
		# own: the flags of this arch alone (λ for the diffusion archs, LatentLM's context flags).
		len=(--steps "$STEPS") snap=$SNAP size=(--depth "$DEPTH") own=("${LAMBDA_FLAG[@]}")
		[ "$a" = vq ] && own=()
		[ "$a" = transfusion ] && own+=("${TF_FLAGS[@]}")
		[ "$a" = latentlm ] && own+=("${LATENTLM_FLAGS[@]}")
		[ "$a" = latentlm ] && [ -n "$GFLOP" ] && len=(--train-gflop "$GFLOP")
		# LatentLM's counted work is the budget of the others, and its
		# parameter count their size.
		if [ "$a" != latentlm ]; then
			budget=$(latentlm_budget)
			len=(--train-gflop "$budget") snap=$SNAP_OTHERS
		fi
		[ "$a" != latentlm ] && [ "$MATCH" = params ] && size=(--match-params "$OUT/latentlm")
		dir=$(dir_of "$a")
		if [ -f "$dir.trained" ]; then
			# A run this script finished before is not repeated.
			echo "$(stamp) $dir is trained already ($dir.trained)"
			continue
		fi
		echo "$(stamp) train $a (${len[*]}, snapshots every $snap steps) → $dir"
		mkdir -p "$(dirname "$dir")"
		s=$(date +%s)
		"$BIN" train --task multimodal --arch "$a" --data mnist-canvas --vae "$vae" --dim "$DIM" "${size[@]}" \
			--heads "$HEADS" --kv-heads "$HEADS" --batch "$BATCH" "${len[@]}" --snapshot-every "$snap" --limit "$LIMIT" \
			--sample-every 0 --seed "$SEED" --out "$dir" "${own[@]}" "${BACKEND_FLAG[@]}" > "runs/compare-$(name_of "$a")-$a.log" 2>&1
		echo "$(stamp) trained $a in $(( $(date +%s) - s )) s: $(jq -c '.info | {steps, train_gflop, train_tokens, train_seconds}' "$dir/config.json")"
		touch "$dir.trained"
	done
fi

if has sweep; then
	# Figure 8: every snapshot, with fewer images than the final scores.
	echo "$(stamp) sweep over the snapshots"
	runs=() names=()
	for a in "${ARCHS[@]}"; do
		runs+=("${NAME[$a]}=$(dir_of "$a")") names+=("${NAME[$a]}")
	done
	title=${names[0]} # "A, B and C"
	for ((i = 1; i < ${#names[@]}; i++)); do
		sep=", "
		((i == ${#names[@]} - 1)) && sep=" and "
		title+=$sep${names[i]}
	done
	"$BIN" sweep --over train --task multimodal --n "$SWEEP_N" --per-seen 1 --per-held-out 2 "${ANSWERS[@]:2}" "${BACKEND_FLAG[@]}" \
		--json "$RES/compare-$SET_NAME-sweep.json" --out "$RES/compare-$SET_NAME.png" \
		--title "$title at equal training FLOPs ($SIZE, equal $MATCH: d$DIM x $DEPTH, batch $BATCH, seed $SEED)" \
		"${runs[@]}"
fi

for a in "${ARCHS[@]}"; do
	dir=$(dir_of "$a")
	tmp=$dir.scores
	mkdir -p "$tmp"
	if has eval; then
		# The table's scores: eval's defaults (1000 test canvases; 2 images of
		# every seen scene and 8 of every held-out one; 20 steps, CFG 4).
		for t in text t2i i2t vqa; do
			echo "$(stamp) eval --task $t $a"
			extra=()
			case $t in t2i) extra=("${T2I[@]}") ;; i2t | vqa) extra=("${ANSWERS[@]}") ;; esac
			"$BIN" eval --task "$t" --model "$dir" --json "${extra[@]}" "${BACKEND_FLAG[@]}" > "$tmp/$t.json" 2> "$tmp/$t.log"
		done
	fi
	if has bench; then
		echo "$(stamp) bench generate $a"
		"$BIN" bench generate --model "$dir" --batches 1,16,64 --reps 3 --json "${BACKEND_FLAG[@]}" > "$tmp/bench.json" 2> "$tmp/bench.log"
	fi
	if has eval || has bench; then
		[ -f "$tmp/bench.json" ] || echo null >"$tmp/bench.json" # PHASES without bench
		jq -n --arg arch "$a" --arg name "${NAME[$a]}" --arg size "$SIZE" \
			--slurpfile text "$tmp/text.json" --slurpfile t2i "$tmp/t2i.json" --slurpfile i2t "$tmp/i2t.json" \
			--slurpfile vqa "$tmp/vqa.json" --slurpfile bench "$tmp/bench.json" --slurpfile cfg "$dir/config.json" \
			'{arch: $arch, name: $name, size: $size, model: $cfg[0].config, train: $cfg[0].info,
			  text: $text[0], t2i: $t2i[0], i2t: $i2t[0], vqa: $vqa[0], bench: $bench[0]}' > "$RES/compare-$(name_of "$a")-$a.json"
	fi
done

if has diag; then
	# Not in the default phases: LatentLM with one noise draw per latent
	# (--batch-mul 1) at the same budget, which tells how much of LatentLM's
	# result is the cost of its head's four draws (docs/RESULTS.md).
	a=latentlm-bm1
	budget=$(latentlm_budget)
	echo "$(stamp) train $a (--train-gflop $budget)"
	"$BIN" train --task multimodal --arch latentlm --data mnist-canvas --vae "$VAE" --dim "$DIM" --depth "$DEPTH" \
		--heads "$HEADS" --kv-heads "$HEADS" --batch "$BATCH" --batch-mul 1 --train-gflop "$budget" --snapshot-every "$SNAP_OTHERS" \
		--limit "$LIMIT" --sample-every 0 --seed "$SEED" --out "$OUT/$a" "${BACKEND_FLAG[@]}" > "runs/compare-$NAME_-$a.log" 2>&1
	tmp=$OUT/$a.scores
	mkdir -p "$tmp"
	for t in text t2i i2t vqa; do
		echo "$(stamp) eval --task $t $a"
		extra=()
		case $t in t2i) extra=("${T2I[@]}") ;; i2t | vqa) extra=("${ANSWERS[@]}") ;; esac
		"$BIN" eval --task "$t" --model "$OUT/$a" --json "${extra[@]}" "${BACKEND_FLAG[@]}" > "$tmp/$t.json" 2> "$tmp/$t.log"
	done
	jq -n --arg arch "$a" --arg size "$SIZE" \
		--slurpfile text "$tmp/text.json" --slurpfile t2i "$tmp/t2i.json" --slurpfile i2t "$tmp/i2t.json" \
		--slurpfile vqa "$tmp/vqa.json" --slurpfile cfg "$OUT/$a/config.json" \
		'{arch: $arch, name: "LatentLM, batch_mul 1", size: $size, model: $cfg[0].config, train: $cfg[0].info,
		  text: $text[0], t2i: $t2i[0], i2t: $i2t[0], vqa: $vqa[0]}' > "$RES/compare-$NAME_-$a.json"
	"$BIN" sweep --over train --task multimodal --n "$SWEEP_N" --per-seen 1 --per-held-out 2 "${ANSWERS[@]:2}" "${BACKEND_FLAG[@]}" \
		--json "$RES/compare-$NAME_-sweep-bm1.json" --out "$OUT/$a.png" "LatentLM batch_mul 1=$OUT/$a"
fi

if has table; then
	echo
	head="|" rule="|---|"
	for a in "${ARCHS[@]}"; do head+=" | ${NAME[$a]}" rule+="---|"; done
	echo "$head |"
	echo "$rule"
	row() { # label, jq expression over one arch's JSON
		local line="| $1 |"
		for a in "${ARCHS[@]}"; do line+=" $(jq -r "$2" "$RES/compare-$(name_of "$a")-$a.json") |"; done
		echo "$line"
	}
	row "text bits per byte" '.text.bits_per_byte*1000|round/1000'
	row "t2i faithfulness, seen" '"\(.t2i.seen.accuracy*1000|round/10)% (\(.t2i.seen.correct)/\(.t2i.seen.n))"'
	row "t2i faithfulness, held-out" '"\(.t2i.held_out.accuracy*1000|round/10)% (\(.t2i.held_out.correct)/\(.t2i.held_out.n))"'
	row "t2i layout right" '"\(.t2i.layout.accuracy*1000|round/10)%"'
	row "t2i FD" 'if .t2i.fd then .t2i.fd|round else "—" end'
	row "caption exact match, seen / held-out" '"\(.i2t.seen.accuracy*1000|round/10)% / \(.i2t.held_out.accuracy*1000|round/10)%"'
	row "caption layout right" '"\(.i2t.layout.accuracy*1000|round/10)%"'
	row "VQA, seen / held-out" '"\(.vqa.seen.accuracy*1000|round/10)% / \(.vqa.held_out.accuracy*1000|round/10)%"'
	# Runs scored without bench (scripts/gpu_compare.sh) have no speeds.
	row "images/s at batch 1 / 16 / 64" 'if .bench then [.bench[].items_per_s*100|round/100]|map(tostring)|join(" / ") else "—" end'
	row "parameters" 'if .bench then .bench[0].params else "—" end'
	row "backbone blocks" '.model.depth'
	row "GFLOP per image" 'if .bench then .bench[0].gflop_per_image*1000|round/1000 else "—" end'
	row "training steps × batch" '"\(.train.steps) × \(.train.batch)"'
	row "training tokens" '.train.train_tokens'
	row "training GFLOP" '.train.train_gflop|round'
	row "training time (s)" '.train.train_seconds|round'
fi
echo "$(stamp) done"
