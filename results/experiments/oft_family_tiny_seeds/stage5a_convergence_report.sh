#!/usr/bin/env bash
# Stage 5a (~1 min), after stages 3a-3c: the convergence curve, its thresholds, the bootstrap speedups and
# the paired comparisons, from the eval runs the trainers made (sfbench curves finds them by their run
# ids and evaluates only what is missing). Thresholds 0.3 / 0.5 / 0.66 were fixed before any evaluation.
source "$(dirname "$0")/common.sh"
SEEDS="openvla_oft-s7-full3k,openvla_oft-s8-full3k,openvla_oft-s9-full3k,openvla_sf-s7-full3k,openvla_sf-s8-full3k"
SEEDS="$SEEDS,openvla_sf-s9-full3k,openvla_3d-s7-full3k"
# shellcheck disable=SC2086
sfbench curves kind=convergence runs=[$SEEDS] curves.name=convergence curves.threshold=[0.3,0.5,0.66] \
  curves.baseline=openvla_oft $CURVE_EVAL | tee $EXP/convergence.txt
# Paired comparisons of the final checkpoints, seed by seed (same 30 init states) ...
final() { local runs; read -ra runs <<< "$(eval_runs_at convergence "$1" "training step" "$STEPS")"; echo "${runs[$2]}"; }
for i in 0 1 2; do
  sfbench compare runs=[$(final openvla_sf $i),$(final openvla_oft $i)] output_dir=$EXP/runs | tee $EXP/compare_sf_vs_oft_seed$i.txt
done
sfbench compare runs=[$(final openvla_3d 0),$(final openvla_oft 0)] output_dir=$EXP/runs | tee $EXP/compare_3d_vs_oft_seed0.txt
# ... and pooled over seeds, with the speedup ratios' bootstrap intervals (seeds and episodes resampled).
python $EXP/analyze.py --curve $EXP/convergence --runs $EXP/runs --baseline openvla_oft --thresholds 0.3 0.5 0.66 \
  --out $EXP/analysis.json | tee $EXP/analysis.txt
# The training losses of the seven runs, beside their in-training eval successes.
python $EXP/losses.py --train $TRAIN --out $EXP/losses_full3k ${SEEDS//,/ }
sfbench leaderboard results_dir=$EXP
