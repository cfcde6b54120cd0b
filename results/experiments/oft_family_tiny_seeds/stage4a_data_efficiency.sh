#!/usr/bin/env bash
# Stage 4a (~1.25 h): data efficiency, openvla_oft and openvla_sf seed 7 on 25% of each task's 40
# training demos (10, a nested subset), same steps; only the final checkpoint is evaluated. The 100%
# points are the seed runs of stage 3 (and diagnosis 1). Two runs at once.
source "$(dirname "$0")/common.sh"
finetune_each 2 "openvla_oft 7 full3k-f0.25 $STEPS data.fraction=0.25" \
  "openvla_sf 7 full3k-f0.25 $STEPS teacher=geometry data.fraction=0.25"
