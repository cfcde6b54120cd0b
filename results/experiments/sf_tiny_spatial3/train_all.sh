#!/usr/bin/env bash
# Step 2 of this experiment: the 9 training runs (3 policies x 3 data fractions), two at a time,
# one torch thread each (2 cores). Run from the repository root with the .venv active.
set -euo pipefail
DEMOS=results/demos/spatial3x50/demos
for frac in 1.0 0.5 0.25; do
  for policy in tiny_vla tiny_vla_sf tiny_vla_depth; do
    echo "$policy $frac"
  done
done | xargs -P 2 -L 1 sh -c 'sfbench train policy=$0 data.fraction=$1 run_id=$0-f$1-s7 \
    data.path='"$DEMOS"' data.init_states_below=40 train.steps=1500 train.save_every=300 \
    train.seed=7 train.num_threads=1 train.progress=false > results/train/$0-f$1-s7.log 2>&1'
