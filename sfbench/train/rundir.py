"""The one owner of a training run directory's layout.

```
<output_dir>/<run_id>/
  config.yaml                 resolved config of the run (policy, data, train, align, teacher)
  metrics.jsonl               one JSON line per logged step
  checkpoints/step_<N>/       the policy family's own checkpoint files + training_state.pt
```

A checkpoint is complete when ``training_state.pt`` is present: the trainer writes the family's
files atomically first and the training state last (atomically too), so a crash in between
leaves a directory that resume, curves and probes all ignore.
"""

from __future__ import annotations

from pathlib import Path

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
TRAINING_STATE = "training_state.pt"  # optimizer + projector: training-only, not part of the policy


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    """Where the checkpoint of ``step`` goes."""
    return run_dir / CHECKPOINTS / f"step_{step:06d}"


def complete_checkpoints(run_dir: Path) -> dict[int, Path]:
    """Step -> directory of every complete checkpoint, in step order."""
    found = {int(p.name.split("_")[1]): p for p in (run_dir / CHECKPOINTS).glob("step_*")
             if (p / TRAINING_STATE).is_file()}
    return dict(sorted(found.items()))


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint, or None."""
    done = complete_checkpoints(run_dir)
    return done[max(done)] if done else None
