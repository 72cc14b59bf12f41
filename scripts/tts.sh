#!/usr/bin/env bash
# The text-to-speech runs of docs/RESULTS.md ("Speech"): the CPU recipe on
# spoken numbers, then its evaluation on the test texts (pocketsphinx WER,
# the speaker judge, the <EOL> stop, real-time factor) and the paper's
# Figure 10 ablations (solver steps 3/5/10, guidance 1–5). The model goes to
# runs/tts-numbers, the reports to docs/results/tts-*.json. A finished
# training run (loss.png exists) is not repeated.
#
# PART=continue: the shipped weights/tts (4000 steps) continued for 1500
# steps with --init, a warm restart with a fresh optimiser at half the
# peak learning rate (5e-4), seed 2, into runs/tts-numbers-init, scored
# into docs/results/tts-numbers-init-5500.json (2026-12-04).
# PART=continue2: the same once more from runs/tts-numbers-init (seed 3),
# into runs/tts-numbers-init2 and docs/results/tts-numbers-init-7000.json.
set -euo pipefail
cd "$(dirname "$0")/.."
L=${LATENTLM:-./bin/latentlm}
M=runs/tts-numbers
D=docs/results
mkdir -p "$D"
if [[ ${PART:-} == continue ]]; then
  C=runs/tts-numbers-init
  if [[ ! -f $C/loss.png ]]; then
    "$L" train --task tts --set numbers --init weights/tts --lr 5e-4 --steps 1500 --seed 2 --out "$C"
  fi
  "$L" eval --task tts --model "$C" --set numbers --n 10 --json > "$D/tts-numbers-init-5500.json"
  exit
fi
if [[ ${PART:-} == continue2 ]]; then
  C=runs/tts-numbers-init2
  if [[ ! -f $C/loss.png ]]; then
    "$L" train --task tts --set numbers --init runs/tts-numbers-init --lr 5e-4 --steps 1500 --seed 3 --out "$C"
  fi
  "$L" eval --task tts --model "$C" --set numbers --n 10 --json > "$D/tts-numbers-init-7000.json"
  exit
fi
if [[ ! -f $M/loss.png ]]; then
  "$L" train --task tts --set numbers --speech-vae weights/speech-vae --steps "${STEPS:-2500}" --seed 1 --out "$M" --quiet
fi
"$L" eval --task tts --model "$M" --set numbers --n 10 --json > "$D/tts-numbers.json"
for s in 3 10; do
  "$L" eval --task tts --model "$M" --set numbers --n 10 --steps "$s" --json > "$D/tts-numbers-steps$s.json"
done
for c in 1 2 5; do
  "$L" eval --task tts --model "$M" --set numbers --n 10 --cfg "$c" --json > "$D/tts-numbers-cfg$c.json"
done
"$L" eval --task tts --model "$M" --set numbers --n 10 --batch 1 --no-judge --json > "$D/tts-numbers-batch1.json"
