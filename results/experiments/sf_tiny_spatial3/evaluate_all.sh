#!/usr/bin/env bash
# Steps 3-6 of this experiment: curves (every checkpoint evaluated in LIBERO), depth probes,
# paired comparisons and leaderboard rows. Run from the repository root with the .venv active.
# Thresholds were fixed before any evaluation was run.
set -euo pipefail
EXP=results/experiments/sf_tiny_spatial3
DEMOS=results/demos/spatial3x50/demos
EVAL="suite=libero_spatial protocol=libero_oft_fast eval.first_episode=40 eval.episodes_per_task=10
      eval.num_workers=2 eval.progress=false output_dir=$EXP/runs curves.output_dir=$EXP curves.threshold=[0.3,0.5,0.66]"
FULL="tiny_vla-f1.0-s7,tiny_vla_sf-f1.0-s7,tiny_vla_depth-f1.0-s7"
# shellcheck disable=SC2086
sfbench curves kind=convergence runs=[$FULL] curves.name=convergence $EVAL
# shellcheck disable=SC2086
sfbench curves kind=data_efficiency curves.name=data_efficiency $EVAL \
  runs=[tiny_vla-f0.25-s7,tiny_vla-f0.5-s7,tiny_vla-f1.0-s7,tiny_vla_sf-f0.25-s7,tiny_vla_sf-f0.5-s7,tiny_vla_sf-f1.0-s7]
# Depth probes on the 30 held-out demos (init states 40-49), final checkpoints of the full-data runs
# (one torch thread: with more threads than free cores, OpenMP spinning made feature extraction crawl;
# the measured run set OMP_NUM_THREADS=1, which probe.num_threads=1 now does).
CKPTS=$(echo $FULL | tr ',' '\n' | sed 's|.*|results/train/&/checkpoints/step_001500|' | paste -sd,)
sfbench probe checkpoints=[$CKPTS] probe.num_threads=1 probe.data=$DEMOS probe.init_states_from=40 probe.output_dir=$EXP probe.name=probe
# Paired comparisons (same 30 init states) of the final full-data checkpoints, and of SF vs baseline
# at step 900 (where their curves are furthest apart), then leaderboard rows.
at() { python -c "import csv,sys; print(next(r['eval_runs'] for r in csv.DictReader(open('$EXP/convergence/points.csv'))
                  if r['label'] == sys.argv[1] and r['training step'] == sys.argv[2]))" "$1" "$2"; }
sfbench compare runs=[$(at tiny_vla_sf 1500),$(at tiny_vla 1500)] output_dir=$EXP/runs | tee $EXP/compare_sf_vs_base.txt
sfbench compare runs=[$(at tiny_vla_depth 1500),$(at tiny_vla 1500)] output_dir=$EXP/runs | tee $EXP/compare_depth_vs_base.txt
sfbench compare runs=[$(at tiny_vla_sf 900),$(at tiny_vla 900)] output_dir=$EXP/runs | tee $EXP/compare_sf_vs_base_step900.txt
sfbench leaderboard results_dir=$EXP
