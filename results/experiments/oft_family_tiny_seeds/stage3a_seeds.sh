#!/usr/bin/env bash
# Stage 3a (~1.25 h): the seed study with the full fine-tuning recipe (common.sh), first pair:
# openvla_sf seed 7, Spatial Forcing with the geometry teacher (exact 3D from the simulator's depth and
# cameras: a stand-in for VGGT, whose weights cannot be downloaded here), and openvla_oft seed 8. Seed 7
# of openvla_oft is diagnosis 1's run openvla_oft-s7-full3k (same recipe). Two runs at once.
source "$(dirname "$0")/common.sh"
finetune_each 2 "openvla_sf 7 full3k $EVAL_EVERY teacher=geometry" "openvla_oft 8 full3k $EVAL_EVERY"
