#!/usr/bin/env bash
# Settings shared by every stage of oft_family_tiny_seeds (sourced, not run). Run the stages from the
# repository root with the .venv active. Every command below resumes where it stopped when rerun:
# collect and eval from their per-episode records, train from its latest checkpoint (and the
# evaluations it launched from their request files), curves from the eval runs already recorded.
set -euo pipefail
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MUJOCO_GL=egl   # one torch thread per process
DRY=${DRY_RUN:-false}   # DRY_RUN=true bash <stage>.sh: validate every command and print its plan; create nothing

EXP=results/experiments/oft_family_tiny_seeds
TRAIN=${TRAIN:-results/train}             # sfbench train's output_dir = sfbench curves' train_dir
SPATIAL=${SPATIAL:-results/demos/spatial3x50/demos}  # 50 expert demos x libero_spatial tasks 0-2 (earlier studies' set)
BASE_DEMOS=${BASE_DEMOS:-results/demos/oft_tiny_base}  # expert demos of the base's libero_90 tasks (stage 1)
RANDOM_BASE=$TRAIN/tiny_oft_random        # the random tiny OFT network the base is trained from
BASE_RUN=oft_tiny_base                    # the base's training run: full fine-tuning on BASE_DEMOS
BASE_STEPS=3000
BASE=$TRAIN/$BASE_RUN/checkpoints/step_$(printf %06d $BASE_STEPS)   # what policy.base= loads

# The base's tasks: 10 libero_90 pick-and-place tasks the scripted expert solved 2/2 (README: measured),
# the four black-bowl ones and six grocery ones. None is a libero_spatial task: the evaluation scenes,
# layouts and instructions are never seen by the base.
BASE_TASKS="[25,30,31,60,46,50,52,55,57,61]"

# Fine-tuning, identical for every arm: the recipe diagnosis 1 showed to learn, full fine-tuning
# (policy.lora_rank=0) for 3,000 steps of batch 16 (AdamW 5e-4, x0.1 at 2/3), a checkpoint and an
# evaluation every 1,000 steps. Stage 2 ran OFT's LoRA recipe instead by setting, before sourcing this
# file, LORA_RANK=32 STEPS=900 EVAL_EVERY=300 (it learned too little: README, stage 2).
LORA_RANK=${LORA_RANK:-0}
STEPS=${STEPS:-3000}
EVAL_EVERY=${EVAL_EVERY:-1000}
FINETUNE="data.path=$SPATIAL data.init_states_below=40 train.steps=$STEPS train.batch_size=16
 train.save_every=$EVAL_EVERY train.num_threads=1 train.progress=false output_dir=$TRAIN policy.lora_rank=$LORA_RANK"
# Evaluation during training: held-out init states 40-49 of tasks 0-2 (30 episodes), the same for
# every checkpoint, as ordinary eval runs in $EXP/runs (one subprocess per checkpoint), every $1 steps.
eval_during() {
  echo "train.eval_every=$1 train.eval.suite=libero_spatial train.eval.tasks=[0,1,2] train.eval.first_episode=40
 train.eval.episodes_per_task=10 train.eval.protocol=libero_oft_fast train.eval.output_dir=$EXP/runs"
}
# The same evaluation, as sfbench curves names it (it finds the runs above by their run ids).
CURVE_EVAL="suite=libero_spatial protocol=libero_oft_fast eval.first_episode=40 eval.episodes_per_task=10
 eval.progress=false output_dir=$EXP/runs curves.train_dir=$TRAIN curves.output_dir=$EXP"
# eval_runs_at <curve> <label> <x column> <x>: the eval run ids of one point of $EXP/<curve>/points.csv
# (one per seed, in the order of the curve's train runs).
eval_runs_at() {
  python -c "import csv,sys; print(next(r['eval_runs'] for r in csv.DictReader(open(sys.argv[1]))
    if r['label'] == sys.argv[2] and r[sys.argv[3]] == sys.argv[4]))" "$EXP/$1/points.csv" "$2" "$3" "$4"
}
ARM_3D="policy.depth_stride=4 policy.pointnet_widths=[32,64,256] policy.pointnet_stn_fc=[128,64]"

# finetune <policy> <seed> <tag|-> <eval every> [overrides...]: one fine-tuning run from $FROM (default:
# the base), run id <policy>-s<seed>[-<tag>], its log in $TRAIN/<run id>.log.
finetune() {
  local policy=$1 seed=$2 tag=$3 every=$4 run=$1-s$2
  shift 4
  [ "$tag" = - ] || run=$run-$tag
  mkdir -p $TRAIN
  local log=$TRAIN/$run.log
  [ "$DRY" = true ] && log=/dev/stdout   # a dry run prints its plan and leaves the run's log alone
  # shellcheck disable=SC2086,SC2046
  sfbench train policy=$policy run_id=$run train.seed=$seed policy.base=${FROM:-$BASE} $FINETUNE \
    $(eval_during $every) "$@" train.dry_run=$DRY >> $log 2>&1 || { tail -20 $log >&2; return 1; }
}
# finetune_each <jobs> <run line>...: the runs (finetune's arguments, one line each), <jobs> at once.
finetune_each() {
  local jobs=$1
  shift
  test -f $BASE/training_state.pt || { echo "no base at $BASE: run stage 1 first" >&2; exit 2; }
  printf '%s\n' "$@" | xargs -P $jobs -L 1 bash -c 'finetune "$@"' _
}
export -f finetune eval_during
export EXP TRAIN SPATIAL BASE FINETUNE DRY
