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
# into runs/tts-numbers-init2 and docs/results/tts-numbers-init-7000.json,
# which became weights/tts. PART=continue3 goes on the same way from
# weights/tts (seed 4, 8500 steps). PART=texts1600 is that run on a cache of
# four times the training texts; texts1600b and texts1600c go on from it on
# that cache (seeds 5, 6), and texts1600d from weights/tts, then texts1600c
# (seed 7, 13000 steps), which became weights/tts (2026-12-04). A part that
# starts from weights/tts read the weights shipped on its day (4000 steps for
# continue, 7000 for continue3 and texts1600, 11500 for texts1600d), so rerun
# now it starts from later weights. PART=texts1600e went on from the step-13 000
# weights (seed 8); the shipped weights/tts then came from the lent GPU:
# scripts/gpu_tts.sh, 10 000 more steps on the same cache's encoded corpus.
# PART=afterGPU is one more restart from it on the CPU, at a fifth of the
# learning rate (1e-4, seed 12), reading that corpus. PART=afterGPU2 goes on
# from it the same way (seed 13). PART=select scores the shipped model and
# both on the validation split with four sampling seeds, the choice of the
# model to ship, then the chosen one (runs/tts-numbers-after-gpu, which
# became weights/tts) on the test split with the same seeds (2026-12-05).
# PART=soup averages the weights of that model and its restart
# (`latentlm average`) and scores the average on the validation split the
# same way (2.72%, against 2.56% and 2.61% for the two: not shipped).
# PART=baseline62 trains the VALL-E-style baseline on the 62.5 Hz codec (the
# frame rate a residual-VQ codec needs to reconstruct as well as the σ-VAE)
# to the counted work of LatentLM's guided step 3000 (197.5 TFLOP), by the
# same warm restart onto a schedule twice as long, and scores it on the 70
# test texts (and its step-357 copy, at the work of LatentLM's step 1500),
# for the issue's decoding-steps comparison; then `bench speak` for it and
# weights/tts (2026-12-05). PART=cfg2 scores weights/tts at guidance 2 on
# the validation split with four sampling seeds (the default is 3).
# PART=whole scores weights/tts on the test split with whole-utterance
# voice prompts (--prompt-seconds 0, the paper's second column group), four
# sampling seeds, beside the same seeds with 3 s prompts. PART=texts3200
# renders a cache of twice the 1600 training texts (the same validation and
# test texts), encodes its numbers, and restarts weights/tts on it at lr
# 1e-4 (seed 14), scored on the validation split with four seeds: the
# shipped model has seen each of its 1600 texts about 40 times (2026-12-05).
# PART=decoder scores weights/tts through the speech tokenizer whose decoder
# was trained further (runs/speech/sigma-dec14000, `scripts/speech_tokenizer.sh
# sigma-dec14000`; now weights/speech-vae) on the validation and test
# splits, four sampling seeds each (2026-12-05); DEC=NAME scores it through
# runs/speech/NAME instead. PART=both starts the sentence set: weights/tts
# trained on spoken numbers and sentences together (runs/tts-both), scored
# along the way. PART=phonemes is the same run reading phonemes
# (runs/tts-phonemes; STEPS="500 1000" scores those snapshots only).
# PART=phonemes-knobs scores its warm restart (runs/tts-phonemes-more) at
# guidance 1.5, 4 and 5, with 10 solver steps, and teacher-forced, beside
# the defaults (guidance 3, 5 steps). PART=phonemes-sentences goes on from
# that restart on the sentences alone, 3600 steps at 5e-4 (seed 22), scoring
# snapshots along the way, then restarts it for 1000 steps at 2.5e-4 (seed
# 23): weights/tts-sentences (2026-12-05).
# PART=recipe60 is the one-hour CPU recipe from scratch (2026-12-06): first
# train --time 60m at batch 8 on the spoken numbers of the encoded corpus
# of four times the training texts (runs/tts-recipe60-b8, a snapshot every 1000 steps, each
# scored on the 70 test texts), then the recipe as shipped, `demo --task
# speech --train` (batch 8 on the default cache, the data, training and its
# scores inside the hour; runs/demo-speech-recipe), both finals scored on
# all 350 test texts too.
# PART=stack2 reads two of the 25 Hz tokenizer's frames a step (--stack 2,
# 12.5 Hz × 64) by the protocol of the guided 25 Hz run and the 62.5 Hz
# baseline: a full cosine to the work of LatentLM's step 1500 (2687 steps),
# then a warm restart onto a schedule twice as long (5374 steps, 197.9
# TFLOP), each scored on the 70 test texts, then `bench speak` for it and
# weights/tts; PART=stack2-recipe is the one-hour recipe's training with
# --stack 2 (2026-12-06). PART=sentences-baseline is the sentence set's
# Table 4 rows at equal training work: the 62.5 Hz codec of PART=baseline62,
# then LatentLM at two 25 Hz frames a step and the VALL-E-style baseline on
# it, each from scratch on the sentences alone (characters, guided) to 98.8
# TFLOP, the work of the numbers' first rows (`--train-gflop`), then on to
# 197.5 TFLOP by a warm restart (`--resume`), each scored on the 70 test
# sentences (2026-12-06). PART=sentences-phonemes is the same with both
# reading phonemes. PART=timbres trains weights/tts further with the nine
# voices of other languages as more speakers to clone from (TIMBRES=none:
# the same run without them).
set -euo pipefail
cd "$(dirname "$0")/.."
L=${LATENTLM:-./bin/latentlm}
M=runs/tts-numbers
D=docs/results
mkdir -p "$D"
# continueRun FROM SEED OUT STEP [DATA] [LR]: one warm restart of 1500 steps
# from FROM's weights at peak learning rate LR (default 5e-4), on DATA (a
# speech cache or an encoded corpus file; default .deps/speech), scored on
# the test texts into docs/results/tts-numbers-init-STEP.json (10 per voice,
# 70 in all, as every earlier row) and ...-STEP-n50.json (all 350: the
# 70 differ by a few points from one sampling seed to the next, the 350 by
# up to 1.3; SEEDS=2 pools two sampling seeds there).
continueRun() {
  if [[ ! -f $3/loss.png ]]; then
    "$L" train --task tts --set numbers --init "$1" --lr "${6:-5e-4}" --steps 1500 --seed "$2" --data "${5:-.deps/speech}" --out "$3"
  fi
  "$L" eval --task tts --model "$3" --set numbers --n 10 --json > "$D/tts-numbers-init-$4.json"
  "$L" eval --task tts --model "$3" --set numbers --n 50 --seeds "${SEEDS:-1}" --json > "$D/tts-numbers-init-$4-n50.json"
}
# cache N: the speech cache of N training texts per set, .deps/speech-N (the
# same validation and test texts as the default 400, since NumberTexts
# draws those first).
cache() {
  "$L" speech data --out ".deps/speech-$1" --texts "$1" --quiet
}
# corpus N: that cache's training split of spoken numbers, encoded once
# (train reads it in a second).
corpus() {
  cache "$1"
  [[ -f .deps/speech-$1-numbers-train.safetensors ]] ||
    "$L" speech-vae encode-data --data ".deps/speech-$1" --set numbers --model weights/speech-vae --out ".deps/speech-$1-numbers-train.safetensors" --quiet
}
# BOTH is the training split of both text sets of the cache of 1600 texts,
# encoded once by bothCorpus (a part that reads it picks a set with --set).
BOTH=.deps/speech-1600-both-train.safetensors
bothCorpus() {
  [[ -f $BOTH ]] || "$L" speech-vae encode-data --data .deps/speech-1600 --set both --out "$BOTH"
}
# sentencePair READING S SNAP V: the sentence set's Table 4 rows at equal
# training work, both systems reading READING (characters or phonemes) from
# scratch on the sentences alone: LatentLM at two 25 Hz frames a step into
# runs/S-98tf and the VALL-E-style baseline on the 62.5 Hz codec
# runs/speech-rvq-62hz-2500 into runs/V-98tf, each to 98.8 TFLOP (a copy kept
# in runs/S-98tf-SNAP and runs/V-98tf-first), then on to 197.5 TFLOP by a warm
# restart; each scored on the 70 test sentences into docs/results/S-98tf.json
# and so on, the first budget's models and the phoneme models of the second
# also under a second sampling seed (…-seed2.json).
sentencePair() {
  local c=runs/speech-rvq-62hz-2500 s=runs/$2-98tf v=runs/$4-98tf
  local r=(--reading "$1")
  if [[ ! -f $s-$3/config.json ]]; then
    "$L" train --task tts --set sentences "${r[@]}" --stack 2 --train-gflop 98800 --seed 1 --out "$s" --quiet
    mkdir -p "$s-$3" && cp "$s/config.json" "$s/model.safetensors" "$s-$3/"
  fi
  if [[ ! -f $v-first/config.json ]]; then
    "$L" train --task valle --codec "$c" --set sentences "${r[@]}" --align 1 --train-gflop 98800 --seed 1 --max-memory 20GiB --out "$v" --quiet
    mkdir -p "$v-first" && cp "$v/config.json" "$v/model.safetensors" "$v-first/"
  fi
  "$L" eval --task tts --model "$s-$3" --set sentences --n 10 --json > "$D/$2-98tf.json"
  "$L" eval --task tts --model "$v-first" --set sentences --n 10 --json > "$D/$4-98tf.json"
  "$L" eval --task tts --model "$v-first" --set sentences --n 10 --seed 2 --json > "$D/$4-98tf-seed2.json"
  # Then both onto a schedule twice the work (197.5 TFLOP), as the numbers'
  # second rows (a run already there trains no further step).
  "$L" train --task tts --set sentences "${r[@]}" --stack 2 --train-gflop 197500 --seed 1 --resume --out "$s" --quiet
  "$L" train --task valle --codec "$c" --set sentences "${r[@]}" --align 1 --train-gflop 197500 --seed 1 --max-memory 20GiB --resume --out "$v" --quiet
  "$L" eval --task tts --model "$s" --set sentences --n 10 --json > "$D/$2-198tf.json"
  "$L" eval --task tts --model "$v" --set sentences --n 10 --json > "$D/$4-198tf.json"
  if [[ $1 == phonemes ]]; then
    "$L" eval --task tts --model "$s-$3" --set sentences --n 10 --seed 2 --json > "$D/$2-98tf-seed2.json"
    "$L" eval --task tts --model "$s" --set sentences --n 10 --seed 2 --json > "$D/$2-198tf-seed2.json"
    "$L" eval --task tts --model "$v" --set sentences --n 10 --seed 2 --json > "$D/$4-198tf-seed2.json"
  fi
}
case ${PART:-} in
continue) continueRun weights/tts 2 runs/tts-numbers-init 5500; exit ;;
continue2) continueRun runs/tts-numbers-init 3 runs/tts-numbers-init2 7000; exit ;;
continue3) continueRun weights/tts 4 runs/tts-numbers-init3 8500; exit ;;
texts1600) cache 1600; continueRun weights/tts 4 runs/tts-numbers-t1600 8500-t1600 .deps/speech-1600; exit ;;
texts1600b) cache 1600; continueRun runs/tts-numbers-t1600 5 runs/tts-numbers-t1600b 10000-t1600 .deps/speech-1600; exit ;;
texts1600c) cache 1600; continueRun runs/tts-numbers-t1600b 6 runs/tts-numbers-t1600c 11500-t1600 .deps/speech-1600; exit ;;
texts1600d) cache 1600; continueRun weights/tts 7 runs/tts-numbers-t1600d 13000-t1600 .deps/speech-1600; exit ;;
texts1600e) cache 1600; continueRun weights/tts 8 runs/tts-numbers-t1600e 14500-t1600 .deps/speech-1600; exit ;;
afterGPU) corpus 1600; continueRun weights/tts 12 runs/tts-numbers-after-gpu 24500-lr1e-4 .deps/speech-1600-numbers-train.safetensors 1e-4; exit ;;
afterGPU2) corpus 1600; continueRun runs/tts-numbers-after-gpu 13 runs/tts-numbers-after-gpu2 26000-lr1e-4 .deps/speech-1600-numbers-train.safetensors 1e-4; exit ;;
soup)
  [[ -f runs/tts-soup-2/config.json ]] || "$L" average --out runs/tts-soup-2 runs/tts-numbers-after-gpu runs/tts-numbers-after-gpu2
  "$L" eval --task tts --model runs/tts-soup-2 --set numbers --n 50 --split valid --seeds 4 --json > "$D/tts-numbers-soup2-valid-n50-seeds4.json"
  exit ;;
baseline62)
  C=runs/speech-rvq-62hz-2500
  [[ -f $C/loss.png ]] || "$L" speech-vae train --kind rvq --codebooks 8 --codebook-size 1024 --frames-per-latent 2 --steps 2500 --seed 1 --out "$C" --quiet
  V=runs/valle-numbers-62hz-align1
  if [[ ! -f $V/loss.png ]]; then
    "$L" train --task valle --codec "$C" --set numbers --align 1 --steps 357 --seed 1 --out "$V" --quiet
    mkdir -p "$V-357" && cp "$V/config.json" "$V/model.safetensors" "$V-357/"
  fi
  grep -q '"steps": 714' "$V/config.json" || "$L" train --task valle --codec "$C" --set numbers --align 1 --steps 714 --seed 1 --out "$V" --resume --quiet
  [[ ! -f $V-357/config.json ]] || "$L" eval --task tts --model "$V-357" --set numbers --n 10 --json > "$D/valle-numbers-62hz-align1-357.json"
  "$L" eval --task tts --model "$V" --set numbers --n 10 --json > "$D/valle-numbers-62hz-align1-714.json"
  "$L" bench speak --model "$V" --batches 1,16 --reps 3 --json > "$D/bench-speak-valle-numbers-62hz.json"
  "$L" bench speak --model weights/tts --batches 1,16 --reps 3 --json > "$D/bench-speak-tts-shipped.json"
  exit ;;
whole)
  "$L" eval --task tts --set numbers --n 50 --seeds 4 --prompt-seconds 0 --json > "$D/tts-numbers-init-24500-lr1e-4-whole-n50-seeds4.json"
  exit ;;
texts3200)
  corpus 3200
  [[ -f runs/tts-numbers-t3200/loss.png ]] ||
    "$L" train --task tts --set numbers --data .deps/speech-3200-numbers-train.safetensors --init weights/tts --lr 1e-4 --steps 1500 --seed 14 --out runs/tts-numbers-t3200 --quiet
  "$L" eval --task tts --model runs/tts-numbers-t3200 --set numbers --n 50 --split valid --seeds 4 --json > "$D/tts-numbers-init-26000-t3200-valid-n50-seeds4.json"
  exit ;;
decoder)
  # DEC=sigma-dec26000 PART=decoder: the same through another decoder run.
  dec=${DEC:-sigma-dec14000}
  for split in ${SPLITS:-valid test}; do
    suffix=-n50-seeds4; [[ $split == valid ]] && suffix=-valid-n50-seeds4
    "$L" eval --task tts --speech-vae "runs/speech/$dec" --set numbers --n 50 --split "$split" --seeds 4 --json > "$D/tts-numbers-init-24500-lr1e-4-${dec#sigma-}$suffix.json"
  done
  exit ;;
both)
  # The sentence set's first run: both text sets of the four-times-the-texts
  # cache, encoded once, from weights/tts at half its first peak rate, 3200
  # steps, a snapshot every 250 (started 2026-12-05 on the CPU; a run cut
  # off goes on with `train --task tts --resume --steps 3200 --out
  # runs/tts-both`, which keeps its data, options and rates). An earlier
  # attempt, resumed before --resume kept a run's data, trained on spoken
  # numbers after step 250: runs/tts-both-faulty-resume, docs/results/
  # tts-both-faulty-resume-*.json. Scored on the test split's sentences (10
  # per voice, 70, as the numbers' first rows) and numbers, beside
  # weights/tts itself (step 0 of the run).
  bothCorpus; corpus=$BOTH
  [[ -f runs/tts-both/loss.png ]] || "$L" train --task tts --set both --data "$corpus" --init weights/tts --lr 5e-4 --steps 3200 --seed 20 --save-every 250 --snapshot-every 250 --out runs/tts-both --quiet
  "$L" eval --task tts --set sentences --n 10 --json > "$D/tts-both-0-sentences.json"
  "$L" eval --task tts --set numbers --n 10 --json > "$D/tts-both-0-numbers.json"
  for step in 1250 2000 2500 3200; do
    m=runs/tts-both/step-$(printf %06d $step)
    "$L" eval --task tts --model "$m" --set sentences --n 10 --json > "$D/tts-both-$step-sentences.json"
    "$L" eval --task tts --model "$m" --set numbers --n 10 --json > "$D/tts-both-$step-numbers.json"
  done
  for step in 1250 3200; do
    m=runs/tts-both/step-$(printf %06d $step)
    "$L" eval --task tts --model "$m" --set sentences --n 10 --teacher-forced --json > "$D/tts-both-$step-sentences-teacher-forced.json"
  done
  # Its own training sentences (the first 10 of each voice in the cache it
  # read): does it say what it was taught?
  "$L" eval --task tts --model runs/tts-both --data .deps/speech-1600 --split train --set sentences --n 10 --json > "$D/tts-both-3200-sentences-train.json"
  "$L" eval --task tts --model runs/tts-both --data .deps/speech-1600 --split train --set sentences --n 10 --teacher-forced --json > "$D/tts-both-3200-sentences-train-teacher-forced.json"
  exit ;;
phonemes)
  # The sentence set read as phonemes (2026-12-05, the CPU): PART=both's run
  # but for --reading phonemes (package phoneme), the same data, init,
  # schedule and seed, so that its snapshots compare step for step with
  # PART=both's. Its backbone and diffusion head start from weights/tts;
  # its text embedding and softmax head start fresh (another vocabulary).
  # Scored like PART=both's on the test split of the same cache.
  bothCorpus; corpus=$BOTH
  [[ -f runs/tts-phonemes/loss.png ]] || "$L" train --task tts --reading phonemes --set both --data "$corpus" --init weights/tts --lr 5e-4 --steps 3200 --seed 20 --save-every 250 --snapshot-every 250 --out runs/tts-phonemes --quiet
  for step in ${STEPS:-500 1000 2000 3200}; do
    m=runs/tts-phonemes/step-$(printf %06d $step)
    "$L" eval --task tts --model "$m" --data .deps/speech-1600 --set sentences --n 10 --json > "$D/tts-phonemes-$step-sentences.json"
  done
  # Then a warm restart of 800 steps at half the peak rate.
  [[ -f runs/tts-phonemes-more/loss.png ]] || "$L" train --task tts --reading phonemes --set both --data "$corpus" --init runs/tts-phonemes --lr 2.5e-4 --steps 800 --seed 21 --save-every 200 --out runs/tts-phonemes-more --quiet
  "$L" eval --task tts --model runs/tts-phonemes-more --data .deps/speech-1600 --set sentences --n 10 --json > "$D/tts-phonemes-more-800-sentences.json"
  exit ;;
phonemes-knobs)
  m=runs/tts-phonemes-more
  for c in 1.5 4 5; do
    "$L" eval --task tts --model $m --data .deps/speech-1600 --set sentences --n 10 --cfg $c --json > "$D/tts-phonemes-more-800-sentences-cfg$c.json"
  done
  "$L" eval --task tts --model $m --data .deps/speech-1600 --set sentences --n 10 --steps 10 --json > "$D/tts-phonemes-more-800-sentences-steps10.json"
  "$L" eval --task tts --model $m --data .deps/speech-1600 --set sentences --n 10 --teacher-forced --json > "$D/tts-phonemes-more-800-sentences-tf.json"
  exit ;;
phonemes-sentences)
  # The numbers take half of every batch of PART=phonemes; here the
  # sentences have all of it. The same corpus file: --set picks from it.
  r=runs/tts-phonemes-sentences
  [[ -f $r/loss.png ]] || "$L" train --task tts --reading phonemes --set sentences --data "$BOTH" --init runs/tts-phonemes-more --lr 5e-4 --steps 3600 --seed 22 --save-every 200 --snapshot-every 400 --out $r --quiet
  for step in ${STEPS:-400 1200 2000 2800 3600}; do
    "$L" eval --task tts --model $r/step-$(printf %06d $step) --data .deps/speech-1600 --set sentences --n 10 --json > "$D/tts-phonemes-sentences-$step-sentences.json"
  done
  # Then a warm restart of 1000 steps at half the peak rate, decided before
  # it ran to be the model shipped (weights/tts-sentences), scored on the 70
  # and on all 350 test sentences.
  m=runs/tts-phonemes-sentences-more
  [[ -f $m/loss.png ]] || "$L" train --task tts --reading phonemes --set sentences --data "$BOTH" --init $r --lr 2.5e-4 --steps 1000 --seed 23 --save-every 200 --out $m --quiet
  "$L" eval --task tts --model $m --data .deps/speech-1600 --set sentences --n 10 --json > "$D/tts-phonemes-sentences-more-1000-sentences.json"
  "$L" eval --task tts --model $m --data .deps/speech-1600 --set sentences --n 50 --json > "$D/tts-phonemes-sentences-more-1000-sentences-n50.json"
  exit ;;
recipe60)
  cache 1600
  bothCorpus; corpus=$BOTH # its spoken numbers are read
  r=runs/tts-recipe60-b8
  [[ -f $r/loss.png ]] || "$L" train --task tts --set numbers --data "$corpus" --batch 8 --time 60m --steps 100000 --seed 1 --snapshot-every 1000 --save-every 500 --out $r
  for s in "$r"/step-*; do
    "$L" eval --task tts --model "$s" --set numbers --n 10 --json > "$D/tts-recipe60-b8-${s##*/step-}.json"
  done
  d=runs/demo-speech-recipe
  [[ -f $d/tts-numbers/loss.png ]] || "$L" demo --task speech --train --dir $d --out runs/demo-speech-recipe.wav
  "$L" eval --task tts --model $r --set numbers --n 50 --json > "$D/tts-recipe60-b8-n50.json"
  "$L" eval --task tts --model $d/tts-numbers --set numbers --n 50 --json > "$D/tts-recipe60-demo-n50.json"
  exit ;;
stack2)
  S=runs/tts-numbers-stack2
  if [[ ! -f $S-2687/config.json ]]; then
    "$L" train --task tts --set numbers --stack 2 --steps 2687 --seed 1 --out "$S" --quiet
    mkdir -p "$S-2687" && cp "$S/config.json" "$S/model.safetensors" "$S-2687/"
  fi
  grep -q '"steps": 5374' "$S/config.json" || "$L" train --task tts --set numbers --stack 2 --steps 5374 --seed 1 --resume --out "$S" --quiet
  "$L" eval --task tts --model "$S-2687" --set numbers --n 10 --json > "$D/tts-numbers-stack2-2687.json"
  "$L" eval --task tts --model "$S" --set numbers --n 10 --json > "$D/tts-numbers-stack2-5374.json"
  "$L" bench speak --model "$S" --batches 1,16 --reps 3 --json > "$D/bench-speak-tts-stack2.json"
  "$L" bench speak --batches 1,16 --reps 3 --json > "$D/bench-speak-tts-shipped-20261206.json"
  exit ;;
stack2-recipe)
  r=runs/tts-recipe60-stack2
  [[ -f $r/loss.png ]] || "$L" train --task tts --set numbers --batch 8 --stack 2 --time 57m31s --steps 1000000 --seed 1 --snapshot-every 2000 --out $r
  "$L" eval --task tts --model $r --set numbers --n 10 --json > "$D/tts-recipe60-stack2.json"
  "$L" eval --task tts --model $r --set numbers --n 50 --json > "$D/tts-recipe60-stack2-all.json"
  exit ;;
sentences-baseline)
  C=runs/speech-rvq-62hz-2500
  [[ -f $C/loss.png ]] || "$L" speech-vae train --kind rvq --codebooks 8 --codebook-size 1024 --frames-per-latent 2 --steps 2500 --seed 1 --out "$C" --quiet
  sentencePair characters tts-sentences-stack2 1970 valle-sentences-62hz
  exit ;;
sentences-phonemes)
  # The same comparison with both systems reading phonemes (`--reading
  # phonemes`, as the shipped weights/tts-sentences), on the codec of
  # PART=sentences-baseline (2026-12-06).
  sentencePair phonemes tts-sentences-phonemes-stack2 first valle-sentences-phonemes-62hz
  exit ;;
timbres)
  # Zero-shot cloning with more speakers (2026-12-06): a warm restart of
  # weights/tts at 5e-4 (seed 30) on the spoken numbers of the encoded
  # corpus of four times the texts, with the nine voices of other
  # languages (`speech data --timbres`) as voices of their own, and the same
  # restart without them (TIMBRES=none); each scored on all 350 test texts.
  bothCorpus; corpus=$BOTH
  "$L" speech data --timbres --quiet
  r=runs/tts-numbers-timbres more=(--timbres .deps/speech-timbres)
  [[ ${TIMBRES:-} == none ]] && r=runs/tts-numbers-timbres-control more=()
  [[ -f $r/loss.png ]] || "$L" train --task tts --set numbers --data "$corpus" "${more[@]}" --init weights/tts --lr 5e-4 --steps 1500 --seed 30 --snapshot-every 750 --out "$r" --quiet
  "$L" eval --task tts --model "$r" --set numbers --n 50 --json > "$D/${r#runs/}-n50.json"
  exit ;;
cfg2)
  "$L" eval --task tts --set numbers --n 50 --split valid --seeds 4 --cfg 2 --json > "$D/tts-numbers-init-24500-lr1e-4-cfg2-valid-n50-seeds4.json"
  exit ;;
select)
  "$L" eval --task tts --set numbers --n 50 --split valid --seed 3 --seeds 2 --json > "$D/tts-numbers-gpu-b16-valid-n50-seeds3-4.json"
  for r in after-gpu:24500 after-gpu2:26000; do
    "$L" eval --task tts --model "runs/tts-numbers-${r%%:*}" --set numbers --n 50 --split valid --seeds 4 --json > "$D/tts-numbers-init-${r#*:}-lr1e-4-valid-n50-seeds4.json"
  done
  "$L" eval --task tts --model runs/tts-numbers-after-gpu --set numbers --n 50 --seeds 4 --json > "$D/tts-numbers-init-24500-lr1e-4-n50-seeds4.json"
  exit ;;
esac
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
