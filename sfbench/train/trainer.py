"""``sfbench train``: L = L_action (L1) + alpha * L_align (Spatial Forcing), checkpoints, resume.

Every step draws its batch and augmentation from a generator seeded with (seed, step), and the
learning rate is a pure function of the step, so a run resumed from a checkpoint continues
exactly as the uninterrupted run would.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from sfbench.errors import InvalidConfig, SfbenchError
from sfbench.policies import make_policy_config
from sfbench.policies.tiny_vla import TinyVLA, load_checkpoint, save_checkpoint
from sfbench.train.align import SpatialForcing
from sfbench.train.batch import TeacherTargets, model_batch
from sfbench.train.data import DataConfig, load_dataset
from sfbench.train.teachers import make_teacher

log = logging.getLogger(__name__)
CHECKPOINTS = "checkpoints"
TRAINING_STATE = "training_state.pt"  # optimizer + projector: training-only, not part of the policy


@dataclass
class TrainSettings:
    """The ``train`` section of ``configs/train.yaml`` (see the comments there)."""

    steps: int = 2000
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.01
    schedule: str = "multistep"
    milestones: list[float] = field(default_factory=lambda: [2 / 3])
    seed: int = 7
    save_every: int = 500
    log_every: int = 10
    num_threads: int = 0
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        try:
            kind = torch.device(self.device).type
        except RuntimeError:
            kind = None
        if kind not in ("cpu", "cuda"):
            raise InvalidConfig(f"train.device={self.device!r}; choices: cpu, cuda, cuda:<index>")
        if kind == "cuda" and not torch.cuda.is_available():
            raise InvalidConfig(f"train.device={self.device!r}, but this machine has no CUDA device; use cpu")
        if self.schedule not in ("multistep", "cosine", "constant"):
            raise InvalidConfig(f"train.schedule={self.schedule!r}; choices: constant, cosine, multistep")
        bad = [k for k in ("steps", "batch_size", "save_every", "log_every") if getattr(self, k) < 1]
        if bad or self.lr <= 0:
            raise InvalidConfig(f"train.{(bad or ['lr'])[0]} must be positive")


def lr_at(step: int, s: TrainSettings) -> float:
    """Learning rate at ``step``: x0.1 at each milestone (fractions of ``steps``), or cosine to 1e-3 lr."""
    if s.schedule == "cosine":
        return s.lr * (1e-3 + (1 - 1e-3) * 0.5 * (1 + math.cos(math.pi * step / s.steps)))
    if s.schedule == "multistep":
        return s.lr * 0.1 ** sum(step >= m * s.steps for m in s.milestones)
    return s.lr


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint (weights and training state both present)."""
    done = [p for p in (run_dir / CHECKPOINTS).glob("step_*") if (p / TRAINING_STATE).is_file()]
    return max(done, key=lambda p: int(p.name.split("_")[1]), default=None)


@dataclass
class TrainJob:
    """A picklable training run; a requeued job (SLURM timeout/preemption) resumes from its checkpoint."""

    run_dir: Path
    policy: dict[str, Any]
    data: dict[str, Any]
    train: dict[str, Any]
    teacher: dict[str, Any]

    def __call__(self) -> Path:
        """Train to ``train.steps`` (resuming if a checkpoint exists); return the last checkpoint."""
        return Trainer(self).run()


class Trainer:
    """Builds model, data, teacher and optimiser from a :class:`TrainJob` and runs the loop."""

    def __init__(self, job: TrainJob):
        from sfbench.policies import make_config

        self.job, self.run_dir = job, Path(job.run_dir)
        self.settings = make_config(TrainSettings, job.train, what="train")
        self.data_cfg = make_config(DataConfig, job.data, what="data")
        self.model_cfg = make_policy_config(job.policy)
        if self.model_cfg.checkpoint is not None:
            raise InvalidConfig("policy.checkpoint is for evaluation; training resumes from its own run directory")
        self.dataset, self.stats = load_dataset(self.data_cfg, self.model_cfg.views, self.model_cfg.chunk_size)
        torch.manual_seed(self.settings.seed)
        self.device = torch.device(self.settings.device)
        self.model = TinyVLA(self.model_cfg).to(self.device)
        self.sf, self.targets = self._alignment()
        if self.sf:
            self.sf.to(self.device)
        params = list(self.model.parameters()) + (list(self.sf.parameters()) if self.sf else [])
        self.optimizer = torch.optim.AdamW(params, lr=self.settings.lr, weight_decay=self.settings.weight_decay)

    def _alignment(self) -> tuple[SpatialForcing | None, TeacherTargets | None]:
        cfg = self.model_cfg
        if getattr(cfg, "align_layer", None) is None:
            return None, None
        if not self.dataset.has_camera:
            raise InvalidConfig(f"{self.data_cfg.path}: Spatial Forcing with a geometry teacher needs depth and "
                                "camera matrices in the demos (collect them with sfbench collect)")
        teacher_cfg = dict(self.job.teacher)
        name, cache_dir = teacher_cfg.pop("name"), teacher_cfg.pop("cache_dir", None)
        teacher = make_teacher(name, **teacher_cfg)
        sf = SpatialForcing(self.model.hidden_dim, teacher.feature_dim, layer=cfg.align_layer,
                            alpha=cfg.align_alpha, use_pe=cfg.align_use_pe, pe_scale=cfg.align_pe_scale)
        return sf, TeacherTargets(teacher, cache_dir)

    def _resume(self) -> int:
        ckpt = latest_checkpoint(self.run_dir)
        if ckpt is None:
            return 0
        model, _, _, state = load_checkpoint(ckpt, type(self.model_cfg))
        self.model.load_state_dict(model.state_dict())
        training = torch.load(ckpt / TRAINING_STATE, weights_only=True, map_location=self.device)
        self.optimizer.load_state_dict(training["optimizer"])
        if self.sf:
            self.sf.load_state_dict(training["projector"])
        log.info("Resuming %s from %s", self.run_dir.name, ckpt)
        return int(state["step"])

    def _save(self, step: int) -> Path:
        path = save_checkpoint(self.run_dir / CHECKPOINTS / f"step_{step:06d}", self.model, self.model_cfg,
                               self.stats, step, {"run": self.run_dir.name})
        tmp = path / f".{TRAINING_STATE}.tmp"
        torch.save({"optimizer": self.optimizer.state_dict(),
                    "projector": self.sf.state_dict() if self.sf else {}}, tmp)
        os.replace(tmp, path / TRAINING_STATE)
        return path

    def step(self, step: int) -> dict[str, float]:
        """One optimisation step; returns its metrics."""
        s = self.settings
        gen = torch.Generator().manual_seed(s.seed * 1_000_003 + step)
        idx = torch.randint(0, len(self.dataset), (s.batch_size,), generator=gen).tolist()
        items = [self.dataset[i] for i in idx]
        batch, boxes = model_batch(items, self.model_cfg, self.data_cfg, gen, self.data_cfg.augment)
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(step, s)
        out = self.model(batch, hidden_layer=self.sf.layer if self.sf else None)
        action_loss = F.l1_loss(out["actions"], batch["actions"])
        loss, metrics = action_loss, {"action_loss": action_loss.item()}
        if self.sf:
            targets = self.targets(items, boxes).to(self.device, non_blocking=True)
            align, align_metrics = self.sf.loss(out["visual_hidden"], out["grid"], targets)
            loss, metrics = loss + align, metrics | align_metrics
        if not torch.isfinite(loss):
            last = latest_checkpoint(self.run_dir)
            raise SfbenchError(f"Non-finite loss ({loss.item()}) at step {step}; stopped. "
                               f"Last good checkpoint: {last or 'none'}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return metrics | {"loss": loss.item(), "lr": lr_at(step, s)}

    def run(self) -> Path:
        """Train from the latest checkpoint (or scratch) to ``steps``; return the final checkpoint."""
        s = self.settings
        if s.num_threads:
            torch.set_num_threads(s.num_threads)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        start = self._resume()
        self.model.train()
        metrics_file = _metrics_until(self.run_dir / "metrics.jsonl", start).open("a")
        bar = tqdm(range(start, s.steps), initial=start, total=s.steps, desc=self.run_dir.name,
                   disable=not s.progress, dynamic_ncols=True)
        t0 = time.perf_counter()
        for step in bar:
            m = self.step(step)
            if (step + 1) % s.log_every == 0 or step + 1 == s.steps:
                metrics_file.write(json.dumps({"step": step + 1, "wall_s": round(time.perf_counter() - t0, 3), **m})
                                   + "\n")
                metrics_file.flush()
                bar.set_postfix({k: f"{v:.4f}" for k, v in m.items() if k in ("action_loss", "align_loss")})
            if (step + 1) % s.save_every == 0 or step + 1 == s.steps:
                self._save(step + 1)
        metrics_file.close()
        return latest_checkpoint(self.run_dir) or self._save(s.steps)


def _metrics_until(path: Path, step: int) -> Path:
    """Drop the lines of ``path`` logged after ``step`` (the resumed checkpoint), atomically."""
    if path.exists():
        kept = [line for line in path.read_text().splitlines(keepends=True) if json.loads(line)["step"] <= step]
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(kept))
        os.replace(tmp, path)
    return path


def job_from_config(cfg: dict[str, Any], run_dir: Path) -> TrainJob:
    """A :class:`TrainJob` from the resolved ``train`` config."""
    return TrainJob(run_dir, dict(cfg["policy"]), dict(cfg["data"]), dict(cfg["train"]), dict(cfg["teacher"]))

