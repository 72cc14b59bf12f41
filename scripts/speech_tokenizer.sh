#!/usr/bin/env bash
# The speech tokenizer runs of docs/BENCHMARKS.md ("Speech tokenizer"):
# σ-VAE, VAE and AE at one budget, the 12.5 Hz variant, the wave-domain
# attempt, the STFT-frame-rate stages, the loss floor, a weaker latent
# regulariser, twice the learning rate, the adversarial term at two
# weights and the shipped tokenizer's decoder trained on alone (its later
# flags override run's --steps and --seed; sigma-dec6000 started from the
# weights/speech-vae of before 2026-12-05, git show 0d0c6bd:weights/speech-vae,
# and sigma-dec14000, from it, became weights/speech-vae (sigma-dec26000
# goes on from that one; a run cut off is resumed with `speech-vae train
# --resume --steps 12000 --out runs/speech/sigma-dec26000`, which keeps
# its learning rates since 2026-12-05: the first attempt, resumed before
# that at the default 1e-3, is runs/speech/sigma-dec26000-lr1e-3 in
# docs/RESULTS.md; sigma-dec26000-speed is the same from the same tokenizer
# with half its clips played at another speed, --speed-perturb 0.5, at the
# rate 1e-3; sigma-dec22500-soup averages a 6000-step decoder run at 1e-3
# with the tokenizer it started from; sigma-dec26000-timbres is
# sigma-dec26000-lr1e-3's run with 30% of its clips from the nine voices
# of other languages, `speech data --timbres`, scored on all 350 test
# sentences alone, and sigma-dec26000-timbres0.5 the same with half its
# clips from them; sigma-dec32000-timbres trains sigma-dec26000-timbres's
# decoder further at 5e-4, still with 30% timbres: it ran as --steps 6000
# --time 28m and stopped at step 5101, whose fitted schedule --steps 5101
# gives); sigma-dec31000-timbres is sigma-dec26000-timbres run for
# 17000 steps, so that its English clips number the 12000 steps' of
# sigma-dec26000-lr1e-3; sigma-dec26000-deep8-timbres is
# sigma-dec26000-timbres with the decoder grown from four blocks to eight
# (--decoder-depth 8, the new blocks starting as identities), and
# sigma-dec26000-deep8 the same without the timbres; sigma-whole-105m is
# the whole tokenizer, encoder and decoder, on the shipped recipe for as
# many steps as 105 minutes hold (on the 2-core CPU of 2026-12-07, 29 699:
# the cosine schedule is refitted to the pace as the run goes, so --steps
# 29699 gives nearly the same schedule, not step for step); the all-350
# scores come from `speech-vae eval --model DIR --judge-n 50 --json`), each
# evaluated on the test
# split of .deps/speech with the pocketsphinx and speaker judges. Runs go
# to runs/speech/, reports to docs/results/speech-vae-*.json. A run that
# already finished (its loss.png exists) is not repeated.
# `scripts/speech_tokenizer.sh NAME` runs one.
set -euo pipefail
cd "$(dirname "$0")/.."
L=${LATENTLM:-./bin/latentlm}
R=runs/speech
D=docs/results
mkdir -p "$R" "$D"
STEPS=${STEPS:-2500}

log() { echo "$(date -u +%H:%M:%S) $*" | tee -a "$R/times.txt"; }

# train NAME FLAGS...: train runs/speech/NAME with `speech-vae train FLAGS`
# (after --steps $STEPS --seed 1, which FLAGS may override), unless it
# already finished.
train() {
  local name=$1; shift
  local dir=$R/$name
  if [[ ! -f $dir/loss.png ]]; then
    rm -rf "$dir"
    local t0=$(date +%s)
    "$L" speech-vae train --steps "$STEPS" --seed 1 "$@" --out "$dir" --quiet
    log "trained $dir in $(( $(date +%s) - t0 )) s: $*"
  fi
}

# run NAME FLAGS...: train NAME, then evaluate it into
# docs/results/speech-vae-NAME.json.
run() {
  train "$@"
  "$L" speech-vae eval --model "$R/$1" --judge-n 20 --json > "$D/speech-vae-$1.json"
  log "evaluated $R/$1"
}

# The runs and their flags; sigma-25hz is the shipped tokenizer's recipe.
declare -A FLAGS=(
  [sigma-25hz]=""
  [vae-25hz]="--kind vae"
  [ae-25hz]="--kind ae"
  [sigma-12hz]="--frames-per-latent 10 --channels 64"
  [sigma-wave]="--domain wave"
  [sigma-framed]="--frame-dim 128 --frame-depth 2"
  [sigma-floor]="--loss-floor 0.01"
  [sigma-kl0.001]="--kl-weight 0.001"
  [sigma-lr2e-3]="--lr 2e-3"
  [sigma-adv0.1]="--adv-weight 0.1"
  [sigma-adv0.3]="--adv-weight 0.3"
  [sigma-dec6000]="--init weights/speech-vae --decoder-only --lr 5e-4 --steps 6000 --seed 2"
  [sigma-dec14000]="--init runs/speech/sigma-dec6000 --decoder-only --lr 5e-4 --steps 8000 --seed 3"
  [sigma-dec26000]="--init weights/speech-vae --decoder-only --lr 5e-4 --steps 12000 --seed 4"
  [sigma-dec26000-speed]="--init weights/speech-vae --decoder-only --lr 1e-3 --steps 12000 --seed 4 --speed-perturb 0.5 --snapshot-every 3000"
  [sigma-dec22500-lr1e-3]="--init weights/speech-vae --decoder-only --lr 1e-3 --steps 6000 --seed 5"
  [sigma-dec26000-timbres]="--init weights/speech-vae --decoder-only --lr 1e-3 --steps 12000 --seed 4 --timbres .deps/speech-timbres --timbre-share 0.3 --snapshot-every 3000"
  [sigma-dec26000-timbres0.5]="--init weights/speech-vae --decoder-only --lr 1e-3 --steps 12000 --seed 4 --timbres .deps/speech-timbres --timbre-share 0.5 --snapshot-every 3000"
  [sigma-dec32000-timbres]="--init runs/speech/sigma-dec26000-timbres --decoder-only --lr 5e-4 --steps 5101 --seed 6 --timbres .deps/speech-timbres --timbre-share 0.3"
  [sigma-dec31000-timbres]="--init weights/speech-vae --decoder-only --lr 1e-3 --steps 17000 --seed 4 --timbres .deps/speech-timbres --timbre-share 0.3 --snapshot-every 3000"
  [sigma-dec26000-deep8-timbres]="--init weights/speech-vae --decoder-only --decoder-depth 8 --lr 1e-3 --steps 12000 --seed 4 --timbres .deps/speech-timbres --timbre-share 0.3 --snapshot-every 3000"
  [sigma-dec26000-deep8]="--init weights/speech-vae --decoder-only --decoder-depth 8 --lr 1e-3 --steps 12000 --seed 4 --snapshot-every 3000"
  [sigma-whole-105m]="--steps 100000 --time 105m --snapshot-every 5000"
)
ORDER=(sigma-25hz vae-25hz ae-25hz sigma-12hz sigma-wave sigma-framed sigma-floor sigma-kl0.001 sigma-lr2e-3 sigma-adv0.1 sigma-adv0.3 sigma-dec6000 sigma-dec14000 sigma-dec26000 sigma-dec26000-speed sigma-dec22500-lr1e-3 sigma-dec22500-soup sigma-dec26000-timbres sigma-dec26000-timbres0.5 sigma-dec32000-timbres sigma-dec31000-timbres sigma-dec26000-deep8-timbres sigma-dec26000-deep8 sigma-whole-105m)

# soup: sigma-dec22500-lr1e-3 averaged with the tokenizer it started from
# (WiSE-FT's interpolation at 1/2), scored on all 350 test sentences.
soup() {
  run sigma-dec22500-lr1e-3 ${FLAGS[sigma-dec22500-lr1e-3]}
  [[ -f $R/sigma-dec22500-soup/config.json ]] || "$L" average --out "$R/sigma-dec22500-soup" "$R/sigma-dec22500-lr1e-3" weights/speech-vae
  "$L" speech-vae eval --model "$R/sigma-dec22500-soup" --judge-n 50 --json > "$D/speech-vae-sigma-dec22500-soup-judge50.json"
  log "evaluated $R/sigma-dec22500-soup"
}

# all350 NAME: the run NAME, scored on all 350 test sentences.
all350() {
  train "$1" ${FLAGS[$1]}
  "$L" speech-vae eval --model "$R/$1" --judge-n 50 --json > "$D/speech-vae-$1-judge50.json"
  log "evaluated $R/$1"
}

# timbres NAME: the cache of other languages' voices (built once, in about
# two minutes), then all350 NAME.
timbres() {
  "$L" speech data --timbres --quiet
  all350 "$1"
}

# one NAME: runs and scores NAME as its kind wants.
one() {
  [[ $1 == sigma-dec22500-soup ]] && { soup; return; }
  [[ -v FLAGS[$1] ]] || { echo "unknown run $1: want one of ${ORDER[*]}" >&2; exit 2; }
  case $1 in
    *-timbres*) timbres "$1" ;;
    *-deep* | sigma-whole-*) all350 "$1" ;;
    *) run "$1" ${FLAGS[$1]} ;;
  esac
}

case "${1:-all}" in
  all) for n in "${ORDER[@]}"; do one "$n"; done ;;
  *) one "$1" ;;
esac
