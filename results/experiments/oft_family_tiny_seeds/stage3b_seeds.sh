#!/usr/bin/env bash
# Stage 3b (~1.25 h): the seed study's second pair, openvla_sf seed 8 and openvla_oft seed 9.
source "$(dirname "$0")/common.sh"
test -f $BASE/training_state.pt || { echo "no base at $BASE: run stage 1 first" >&2; exit 2; }
printf '%s\n' "openvla_sf 8 full3k $EVAL_EVERY teacher=geometry" "openvla_oft 9 full3k $EVAL_EVERY" |
  xargs -P 2 -L 1 bash -c 'finetune "$@"' _
