#!/usr/bin/env bash
# Stage 1 (planned estimate: ~1.6 h: 12 + 23 + 55 + 5 min): expert demos, then the tiny pretrained base.
#  1a. 150 libero_spatial demos for fine-tuning (tasks 0-2, init states 0-49), the earlier studies' command.
#  1b. 25 demos per base task (libero_90, init states 0-24), the base's pretraining data.
#  1c. a random tiny OFT network in the released layout, then 1d. the base: full fine-tuning of every
#      weight (policy.lora_rank=0) on the 1b demos, as OpenVLA is trained before OFT fine-tunes it.
#      Its last checkpoint is evaluated on held-out init states (40-44) of its own tasks, during training.
source "$(dirname "$0")/common.sh"
sfbench collect suite=libero_spatial protocol=libero_oft_fast collect.tasks=[0,1,2] \
  collect.episodes_per_task=50 collect.episodes_per_shard=50 collect.num_workers=2 \
  collect.progress=false collect.dry_run=$DRY run_id=spatial3x50
sfbench collect suite=libero_90 protocol=libero_oft_fast collect.tasks=$BASE_TASKS \
  collect.episodes_per_task=25 collect.episodes_per_shard=25 collect.num_workers=2 \
  collect.progress=false collect.dry_run=$DRY output_dir=$BASE_DEMOS run_id=libero90
if [ "$DRY" = true ] && { [ ! -d $BASE_DEMOS/libero90/demos ] || [ ! -f $RANDOM_BASE/config.json ]; }; then
  echo "dry run: the base's training command is checked once its demos and the random network exist"; exit 0
fi
mkdir -p $TRAIN
[ -f $RANDOM_BASE/config.json ] || python -m sfbench.policies.openvla_oft.tiny $RANDOM_BASE --seed 0
sfbench train policy=openvla_oft run_id=$BASE_RUN policy.base=$RANDOM_BASE policy.lora_rank=0 \
  data.path=$BASE_DEMOS/libero90/demos train.steps=$BASE_STEPS train.batch_size=16 train.save_every=1000 \
  train.seed=0 train.num_threads=1 train.progress=false output_dir=$TRAIN \
  train.eval_every=$BASE_STEPS train.eval.suite=libero_90 train.eval.tasks=$BASE_TASKS \
  train.eval.first_episode=40 train.eval.episodes_per_task=5 train.eval.protocol=libero_oft_fast \
  train.eval.output_dir=$EXP/runs train.dry_run=$DRY > $TRAIN/$BASE_RUN.log 2>&1 || { cat $TRAIN/$BASE_RUN.log >&2; exit 1; }
[ "$DRY" = true ] && cat $TRAIN/$BASE_RUN.log || { test -f $BASE/training_state.pt && echo "base: $BASE"; }
