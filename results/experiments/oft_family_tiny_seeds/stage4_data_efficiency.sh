#!/usr/bin/env bash
# Stage 4 (planned estimate: ~1.2 h): openvla_oft and openvla_sf on 25% and 50% of each task's 40
# training demos (10 and 20, nested subsets), seed 7, only the final checkpoint evaluated. The 100%
# points are the seed runs of stages 2 and 3. Three runs at once.
source "$(dirname "$0")/common.sh"
test -f $BASE/training_state.pt || { echo "no base at $BASE: run stage 1 first" >&2; exit 2; }
for f in 0.25 0.5; do
  echo "openvla_oft 7 f$f $STEPS data.fraction=$f"
  echo "openvla_sf 7 f$f $STEPS teacher=geometry data.fraction=$f"
done | xargs -P 3 -L 1 bash -c 'finetune "$@"' _
