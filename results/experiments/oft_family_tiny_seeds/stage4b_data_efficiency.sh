#!/usr/bin/env bash
# Stage 4b (~1.25 h): as stage 4a, on 50% of the training demos (20 per task, containing 4a's 10).
source "$(dirname "$0")/common.sh"
finetune_each 2 "openvla_oft 7 full3k-f0.5 $STEPS data.fraction=0.5" \
  "openvla_sf 7 full3k-f0.5 $STEPS teacher=geometry data.fraction=0.5"
