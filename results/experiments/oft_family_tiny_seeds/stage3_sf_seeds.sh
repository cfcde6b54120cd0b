#!/usr/bin/env bash
# Stage 3 (planned estimate: ~1.7 h): openvla_sf, the same recipe plus Spatial Forcing with the
# geometry teacher (exact 3D from the simulator's depth and cameras: a stand-in for VGGT, whose
# weights cannot be downloaded here), seeds 7, 8, 9, and openvla_3d seed 8; three runs at once.
source "$(dirname "$0")/common.sh"
test -f $BASE/training_state.pt || { echo "no base at $BASE: run stage 1 first" >&2; exit 2; }
printf '%s\n' "openvla_sf 7 - $EVAL_EVERY teacher=geometry" "openvla_sf 8 - $EVAL_EVERY teacher=geometry" \
  "openvla_sf 9 - $EVAL_EVERY teacher=geometry" "openvla_3d 8 - $EVAL_EVERY $ARM_3D" |
  xargs -P 3 -L 1 bash -c 'finetune "$@"' _
