#!/usr/bin/env bash
# Stage 3c (~1.25 h): the seed study's third pair, openvla_sf seed 9 and openvla_3d seed 7 (the 3D-input
# arm runs one seed).
source "$(dirname "$0")/common.sh"
finetune_each 2 "openvla_sf 9 full3k $EVAL_EVERY teacher=geometry" "openvla_3d 7 full3k $EVAL_EVERY $ARM_3D"
