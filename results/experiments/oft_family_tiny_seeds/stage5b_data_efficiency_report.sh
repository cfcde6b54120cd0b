#!/usr/bin/env bash
# Stage 5b (~1 min), after stages 4a-4b: success of the final checkpoint against the share of demos
# (25%, 50%, 100%; the 100% point pools the three seeds of stage 3), and the demos each arm needs to
# reach the thresholds, and the paired comparisons at 25% and 50%.
source "$(dirname "$0")/common.sh"
DATA="openvla_oft-s7-full3k-f0.25,openvla_oft-s7-full3k-f0.5,openvla_oft-s7-full3k,openvla_oft-s8-full3k,openvla_oft-s9-full3k"
DATA="$DATA,openvla_sf-s7-full3k-f0.25,openvla_sf-s7-full3k-f0.5,openvla_sf-s7-full3k,openvla_sf-s8-full3k"
DATA="$DATA,openvla_sf-s9-full3k"
# shellcheck disable=SC2086
sfbench curves kind=data_efficiency runs=[$DATA] curves.name=data_efficiency curves.threshold=[0.3,0.5,0.66] \
  curves.baseline=openvla_oft $CURVE_EVAL | tee $EXP/data_efficiency.txt
# Paired comparisons at 25% and 50% (one seed each, the same 30 init states); 100% is stage 5a's, per seed.
for n in 10 20; do
  sfbench compare runs=[$(eval_runs_at data_efficiency openvla_sf "demos per task" $n),$(eval_runs_at data_efficiency \
    openvla_oft "demos per task" $n)] output_dir=$EXP/runs | tee $EXP/compare_sf_vs_oft_demos$n.txt
done
sfbench leaderboard results_dir=$EXP
