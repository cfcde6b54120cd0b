#!/usr/bin/env bash
# Diagnosis 1 (after stage 2's baseline scored 1/270 with LoRA): is it LoRA, the base, or too little
# training? openvla_oft seed 7 fully fine-tuned (policy.lora_rank=0) for 3,000 steps at batch 16 (48,000
# samples: the sample budget at which TinyVLA reached 83% on these tasks), once from the tiny base and
# once from the random network it was made from; same data, recipe otherwise and held-out evaluation
# (every 1,000 steps). Two runs at once, one torch thread each.
source "$(dirname "$0")/common.sh"
test -f $BASE/training_state.pt || { echo "no base at $BASE: run stage 1 first" >&2; exit 2; }
STEPS=3000
FINETUNE="data.path=$SPATIAL data.init_states_below=40 train.steps=$STEPS train.batch_size=16
 train.save_every=1000 train.num_threads=1 train.progress=false output_dir=$TRAIN policy.lora_rank=0"
export FINETUNE
printf '%s\n' "openvla_oft 7 full3k 1000 policy.base=$BASE" "openvla_oft 7 scratch3k 1000 policy.base=$RANDOM_BASE" |
  xargs -P 2 -L 1 bash -c 'finetune "$@"' _
