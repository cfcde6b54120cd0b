#!/usr/bin/env bash
# Stage 3b (~1.25 h): the seed study's second pair, openvla_sf seed 8 and openvla_oft seed 9.
source "$(dirname "$0")/common.sh"
finetune_each 2 "openvla_sf 8 full3k $EVAL_EVERY teacher=geometry" "openvla_oft 9 full3k $EVAL_EVERY"
