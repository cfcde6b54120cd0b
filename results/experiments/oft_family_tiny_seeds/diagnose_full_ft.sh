#!/usr/bin/env bash
# Diagnosis 1, as run (1.23 h; after stage 2's baseline scored 1/270 with LoRA): is it LoRA, the base,
# or too little training? openvla_oft seed 7 fully fine-tuned (policy.lora_rank=0) for 3,000 steps at
# batch 16 (48,000 samples: the sample budget at which TinyVLA reached 83% on these tasks), once from
# the tiny base and once from the random network it was made from; same data, recipe otherwise and
# held-out evaluation (every 1,000 steps). Two runs at once, one torch thread each. This is the recipe
# common.sh now gives every later stage; run openvla_oft-s7-full3k is the baseline's seed 7.
source "$(dirname "$0")/common.sh"
test -f $BASE/training_state.pt || { echo "no base at $BASE: run stage 1 first" >&2; exit 2; }
finetune openvla_oft 7 full3k $EVAL_EVERY &
FROM=$RANDOM_BASE finetune openvla_oft 7 scratch3k $EVAL_EVERY &
wait %1 && wait %2
