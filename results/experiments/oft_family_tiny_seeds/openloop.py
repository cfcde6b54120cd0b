"""Diagnosis: open-loop action error of OFT-family checkpoints on the expert demos, through the eval path.

Every ``--stride``-th step of every demo is fed to ``policy.act`` exactly as an episode would be (the
demo's stored frames and proprio, the OFT image chain, the checkpoint's statistics) and the returned
chunk is compared with the demo's next 8 actions. Arm error is the L1 in the normalised [-1, 1] space
of the checkpoint's q01/q99 (the training loss's units); the gripper is scored as agreement of the
binarised command. Demos are split into the init states trained on (``< --held-out-from``) and the
held-out ones, so under- and over-fitting can be told apart without a simulator.

    python results/experiments/oft_family_tiny_seeds/openloop.py --demos results/demos/spatial3x50/demos \
        --checkpoint results/train/openvla_oft-s7/checkpoints/step_000900 ... --out <json>
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from sfbench.core.constants import OBS_AGENTVIEW, OBS_PROPRIO, OBS_WRIST
from sfbench.core.normalize import normalize
from sfbench.core.task import TaskSpec
from sfbench.policies import make_policy
from sfbench.train.data.dataset import chunk_actions
from sfbench.train.data.formats import load_demos

CHUNK = 8


def samples(demos: list, stride: int) -> list[tuple[object, int]]:
    """(demo, step) pairs, every ``stride``-th step of every demo."""
    return [(d, t) for d in demos for t in range(0, len(d.actions), stride)]


def errors(policy, pairs: list, batch: int = 16) -> dict[str, float]:
    """Mean normalised arm L1, per-dim arm L1 and gripper agreement over ``pairs``."""
    arm, grip = [], []
    stats = {k: np.asarray(policy.stats["action"][k][:6]) for k in ("q01", "q99")}
    for i in range(0, len(pairs), batch):
        group = pairs[i:i + batch]
        obs = [{OBS_AGENTVIEW: d.images[OBS_AGENTVIEW][t], OBS_WRIST: d.images[OBS_WRIST][t],
                OBS_PROPRIO: d.proprio[t], "instruction": d.instruction} for d, t in group]
        for (d, t), chunk in zip(group, policy.act_batch(obs), strict=True):
            target = chunk_actions(d.actions, t, CHUNK)
            arm.append(np.abs(normalize(chunk[:, :6].astype(np.float64), stats)
                              - normalize(target[:, :6].astype(np.float64), stats)).mean(0))
            grip.append((np.sign(chunk[:, 6]) == np.sign(target[:, 6])).mean())
    per_dim = np.mean(arm, 0)
    return {"n": len(pairs), "arm_l1": float(per_dim.mean()), "arm_l1_per_dim": [round(float(x), 4) for x in per_dim],
            "gripper_agreement": float(np.mean(grip))}


def mean_reference(trained: list, pairs: list, stats: dict) -> float:
    """Arm L1 of always predicting the trained demos' mean normalised action: the error of a blind policy."""
    arm = {k: np.asarray(stats[k][:6]) for k in ("q01", "q99")}
    mean = np.mean([normalize(d.actions[t, :6].astype(np.float64), arm) for d, t in trained], 0)
    return float(np.mean([np.abs(normalize(chunk_actions(d.actions, t, CHUNK)[:, :6].astype(np.float64), arm) - mean)
                          for d, t in pairs]))


def main() -> None:
    """``python openloop.py --demos DIR --checkpoint CKPT [...] --out JSON``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demos", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, nargs="+", required=True)
    parser.add_argument("--policy", default="openvla_oft")
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--held-out-from", type=int, default=40)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    demos = load_demos(args.demos)
    split = {"trained": [d for d in demos if 0 <= d.init_state < args.held_out_from],
             "held_out": [d for d in demos if d.init_state >= args.held_out_from]}
    task = TaskSpec("libero_spatial", 0, "", "", 7)
    result = {"demos": str(args.demos), "stride": args.stride, "held_out_from": args.held_out_from,
              "demos_per_split": {k: len(v) for k, v in split.items()}, "checkpoints": {}}
    for ckpt in args.checkpoint:
        policy = make_policy({"name": args.policy, "checkpoint": str(ckpt), "device": "cpu"})
        policy.reset(task)
        pairs = {k: samples(v, args.stride) for k, v in split.items()}
        result["checkpoints"][str(ckpt)] = {k: errors(policy, v) for k, v in pairs.items()}
        result["checkpoints"][str(ckpt)]["mean_action_arm_l1"] = {
            k: mean_reference(pairs["trained"], v, policy.stats["action"]) for k, v in pairs.items()}
        sys.stdout.write(json.dumps({str(ckpt): result["checkpoints"][str(ckpt)]}) + "\n")
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
