#!/usr/bin/env bash
# Stage 3c (~1.25 h): the seed study's third pair, openvla_sf seed 9 and openvla_3d seed 7 (the 3D-input
# arm runs one seed).
source "$(dirname "$0")/common.sh"
test -f $BASE/training_state.pt || { echo "no base at $BASE: run stage 1 first" >&2; exit 2; }
printf '%s\n' "openvla_sf 9 full3k $EVAL_EVERY teacher=geometry" "openvla_3d 7 full3k $EVAL_EVERY $ARM_3D" |
  xargs -P 2 -L 1 bash -c 'finetune "$@"' _
