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
# Depth probes on the 30 held-out demos (init states 40-49), final checkpoints of the full-data runs.
CKPTS=$(echo $FULL | tr ',' '\n' | sed 's|.*|results/train/&/checkpoints/step_001500|' | paste -sd,)
sfbench probe checkpoints=[$CKPTS] probe.data=$DEMOS probe.init_states_from=40 probe.output_dir=$EXP probe.name=probe
# Paired comparisons of the final full-data checkpoints (same 30 init states), and leaderboard rows.
final() { python -c "import csv,sys; r=[x for x in csv.DictReader(open('$EXP/convergence/points.csv')) if x['label']==sys.argv[1]]; print(r[-1]['eval_runs'])" "$1"; }
sfbench compare runs=[$(final tiny_vla_sf),$(final tiny_vla)] output_dir=$EXP/runs | tee $EXP/compare_sf_vs_base.txt
sfbench compare runs=[$(final tiny_vla_depth),$(final tiny_vla)] output_dir=$EXP/runs | tee $EXP/compare_depth_vs_base.txt
sfbench leaderboard results_dir=$EXP
