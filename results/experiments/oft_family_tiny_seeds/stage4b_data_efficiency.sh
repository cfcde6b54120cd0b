#!/usr/bin/env bash
# Stage 4b (~1.25 h): as stage 4a, on 50% of the training demos (20 per task, containing 4a's 10).
source "$(dirname "$0")/common.sh"
test -f $BASE/training_state.pt || { echo "no base at $BASE: run stage 1 first" >&2; exit 2; }
printf '%s\n' "openvla_oft 7 full3k-f0.5 $STEPS data.fraction=0.5" \
  "openvla_sf 7 full3k-f0.5 $STEPS teacher=geometry data.fraction=0.5" | xargs -P 2 -L 1 bash -c 'finetune "$@"' _
