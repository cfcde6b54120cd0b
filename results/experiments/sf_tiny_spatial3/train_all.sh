#!/usr/bin/env bash
# Step 2 of this experiment: 7 training runs, two at a time, one torch thread each (2 cores).
# All three policies on all training demos (convergence); baseline and SF also on half and a
# quarter of them (data efficiency). Run from the repository root with the .venv active.
set -euo pipefail
DEMOS=results/demos/spatial3x50/demos
printf '%s\n' "tiny_vla 1.0" "tiny_vla_sf 1.0" "tiny_vla_depth 1.0" \
  "tiny_vla 0.5" "tiny_vla_sf 0.5" "tiny_vla 0.25" "tiny_vla_sf 0.25" | xargs -P 2 -L 1 sh -c 'sfbench train policy=$0 data.fraction=$1 run_id=$0-f$1-s7 \
    data.path='"$DEMOS"' data.init_states_below=40 train.steps=1500 train.save_every=300 \
    train.seed=7 train.num_threads=1 train.progress=false > results/train/$0-f$1-s7.log 2>&1'
