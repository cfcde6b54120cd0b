#!/usr/bin/env bash
# Step 1 of this experiment: 50 scripted-expert demonstrations for each of libero_spatial tasks 0-2
# (init states 0-49), rendered with the libero_oft_fast protocol, 2 env workers. Run from the
# repository root with the .venv active. Init states 0-39 train; 40-49 are held out for evaluation.
set -euo pipefail
sfbench collect suite=libero_spatial protocol=libero_oft_fast collect.tasks=[0,1,2] \
  collect.episodes_per_task=50 collect.episodes_per_shard=50 collect.num_workers=2 \
  collect.progress=false run_id=spatial3x50
