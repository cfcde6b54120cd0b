#!/usr/bin/env bash
# Stage 2, as run (1.47 h): the baseline openvla_oft fine-tuned from the base with OFT's LoRA recipe
# (rank 32, 900 steps of batch 16), seeds 7, 8, 9, and openvla_3d (PointNet depth tokens, 3D-CAVLA)
# seed 7; three runs at once, one torch thread each. Each run evaluated its checkpoints at 300 / 600 /
# 900 steps on the 30 held-out episodes while it trained (a subprocess per checkpoint). It scored
# 1/270 (README), which led to diagnosis 1 and the full fine-tuning recipe of the later stages.
LORA_RANK=32 STEPS=900 EVAL_EVERY=300
source "$(dirname "$0")/common.sh"
finetune_each 3 "openvla_oft 7 - $EVAL_EVERY" "openvla_oft 8 - $EVAL_EVERY" "openvla_oft 9 - $EVAL_EVERY" \
  "openvla_3d 7 - $EVAL_EVERY $ARM_3D"
