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
import pickle
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from sfbench.config.schema import make_config
from sfbench.core.errors import InvalidConfig, SfbenchError
from sfbench.policies import family_of, make_policy_config
from sfbench.policies.trainable import TrainablePolicy
from sfbench.train.align import AlignSettings, SpatialForcing
from sfbench.train.data.dataset import DataConfig, load_dataset
from sfbench.train.data.formats import detect_format
from sfbench.train.data.loader import step_batches, step_generator, step_indices
from sfbench.train.distributed import World, init_world
from sfbench.train.evaluation import SUCCESS, CheckpointEvals, check_train_eval, metrics_line
from sfbench.train.logs import METRICS_PNG, TrainLogs, check_sinks, plot_metrics
from sfbench.train.rundir import METRICS, TRAINING_STATE, checkpoint_dir, latest_checkpoint
from sfbench.train.targets import TeacherTargets
from sfbench.train.teachers import make_teacher

log = logging.getLogger(__name__)


# fp32: everything in float32. bf16: frozen weights stored in bfloat16 (a 7B base in half the
# memory), trainable ones (LoRA, heads, projector) and the optimiser state in float32, forward and
# loss under bfloat16 autocast (OpenVLA-OFT's own recipe).
PRECISIONS = ("fp32", "bf16")

# ``train`` settings that do not change what is trained: left out of run ids and curve labels.
RUNTIME_SETTINGS = frozenset({"progress", "num_threads", "log_every", "save_every", "device", "dry_run", "log",
                              "eval_every", "eval", "num_workers"})


@dataclass
class TrainSettings:
    """The ``train`` section of ``configs/train.yaml`` (the other keys: see the comments there).

    Attributes:
        eval_every: Evaluate the checkpoint of every N steps (and the last) while training goes on, each as an
            ordinary eval run (``sfbench curves`` finds them); 0 = never. Such checkpoints are saved too.
        num_workers: DataLoader worker processes that read (decode) each step's samples ahead of it; 0 = in
            the training process. The batches are the same for any value.
        eval: How (``sfbench.train.evaluation.TrainEvalSettings``): ``{suite, protocol, tasks,
            episodes_per_task, first_episode, launcher: local|slurm, output_dir, overrides, ...}``.
    """

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
    num_workers: int = 0
    device: str = "cpu"
    precision: str = "fp32"
    progress: bool = True
    dry_run: bool = False
    log: list[str] = field(default_factory=lambda: ["jsonl"])
    eval_every: int = 0
    eval: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_sinks(list(self.log))
        try:
            kind = torch.device(self.device).type
        except RuntimeError:
            kind = None
        if kind not in ("cpu", "cuda"):
            raise InvalidConfig(f"train.device={self.device!r}; choices: cpu, cuda, cuda:<index>")
        if kind == "cuda" and not torch.cuda.is_available():
            raise InvalidConfig(f"train.device={self.device!r}, but this machine has no CUDA device; use cpu")
        if self.precision not in PRECISIONS:
            raise InvalidConfig(f"train.precision={self.precision!r}; choices: {', '.join(PRECISIONS)}")
        if self.schedule not in ("multistep", "cosine", "constant"):
            raise InvalidConfig(f"train.schedule={self.schedule!r}; choices: constant, cosine, multistep")
        bad = [k for k in ("steps", "batch_size", "save_every", "log_every") if getattr(self, k) < 1]
        if bad or self.lr <= 0:
            raise InvalidConfig(f"train.{(bad or ['lr'])[0]} must be positive")
        if not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise InvalidConfig(f"train.num_workers={self.num_workers!r} must be an integer >= 0")
        if self.eval_every < 0:
            raise InvalidConfig(f"train.eval_every={self.eval_every} must be >= 0 (0 = no evaluation during training)")

    def saves_at(self, step: int) -> bool:
        """Whether the checkpoint of ``step`` (1-based) is saved: every save_every / eval_every, and the last."""
        return step % self.save_every == 0 or step == self.steps or self.evaluates_at(step)

    def evaluates_at(self, step: int) -> bool:
        """Whether the checkpoint of ``step`` is evaluated during training."""
        return bool(self.eval_every) and (step % self.eval_every == 0 or step == self.steps)


def lr_at(step: int, s: TrainSettings) -> float:
    """Learning rate at ``step``: x0.1 at each milestone (fractions of ``steps``), or cosine to 1e-3 lr."""
    if s.schedule == "cosine":
        return s.lr * (1e-3 + (1 - 1e-3) * 0.5 * (1 + math.cos(math.pi * step / s.steps)))
    if s.schedule == "multistep":
        return s.lr * 0.1 ** sum(step >= m * s.steps for m in s.milestones)
    return s.lr


@dataclass
class TrainJob:
    """A picklable training run; a requeued job (SLURM timeout/preemption) resumes from its checkpoint."""

    run_dir: Path
    policy: dict[str, Any]
    data: dict[str, Any]
    train: dict[str, Any]
    teacher: dict[str, Any]
    align: dict[str, Any] | None = None  # the ``align`` section; None = no Spatial Forcing

    def __call__(self) -> Path:
        """Train to ``train.steps`` (resuming if a checkpoint exists); return the last checkpoint."""
        return Trainer(self).run()


class Trainer:
    """Builds policy, data, teacher and optimiser from a :class:`TrainJob` and runs the loop.

    It knows the policy only through :class:`~sfbench.policies.trainable.TrainablePolicy`; Spatial
    Forcing is the job's ``align`` section, available to every trainable family.
    """

    def __init__(self, job: TrainJob):
        self.job, self.run_dir = job, Path(job.run_dir)
        self.settings = make_config(TrainSettings, job.train, what="train")
        self.data_cfg = make_config(DataConfig, job.data, what="data")
        self.align = make_config(AlignSettings, job.align, what="align") if job.align else None
        family = family_of(job.policy)
        if not issubclass(family, TrainablePolicy):
            raise InvalidConfig(f"Policy {job.policy['name']} ({family.name}) is not trainable")
        config = make_policy_config(job.policy)
        torch.manual_seed(self.settings.seed)
        self.policy = family.for_training(config)
        self.dataset, self.policy.stats = load_dataset(self.data_cfg, self.policy.views, self.policy.chunk_size)
        self.device = torch.device(self.settings.device)
        self.world = init_world(self.device)
        if self.device.type == "cuda" and self.world.size > 1:
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        self.world.check_batch(self.settings.batch_size)
        self.policy.model.to(self.device)
        if self.settings.precision == "bf16":
            for p in self.policy.model.parameters():
                if not p.requires_grad:
                    p.data = p.data.to(torch.bfloat16)
        self.sf, self.targets = self._alignment()
        self._loader: Iterator[tuple[int, list[dict[str, Any]]]] | None = None  # set by run(): steps' samples
        self._pending: list[dict[str, Any]] = []  # eval results found on resume, logged with the first line
        params = list(self.policy.model.parameters()) + (list(self.sf.parameters()) if self.sf else [])
        self.optimizer = torch.optim.AdamW(params, lr=self.settings.lr, weight_decay=self.settings.weight_decay)

    def _alignment(self) -> tuple[SpatialForcing | None, TeacherTargets | None]:
        if self.align is None:
            return None, None
        try:
            layer = self.align.layer_of(self.policy.num_layers)
        except ValueError as e:
            raise InvalidConfig(str(e)) from None
        teacher_cfg = dict(self.job.teacher)
        name, cache_dir = teacher_cfg.pop("name"), teacher_cfg.pop("cache_dir", None)
        memory_gb = teacher_cfg.pop("memory_gb", 4.0)
        teacher = make_teacher(name, **teacher_cfg).to(self.device)
        if teacher.requires_geometry and not self.dataset.has_camera:
            raise InvalidConfig(f"{self.data_cfg.path}: Spatial Forcing with the {name} teacher needs depth and "
                                "camera matrices in the demos (collect them with sfbench collect)")
        sf = SpatialForcing(self.policy.hidden_dim, teacher.feature_dim, layer=layer, alpha=self.align.alpha,
                            use_pe=self.align.use_pe, pe_scale=self.align.pe_scale)
        return sf.to(self.device), TeacherTargets(teacher, cache_dir, memory_gb)

    def _resume(self) -> int:
        ckpt = latest_checkpoint(self.run_dir)
        if ckpt is None:
            return 0
        try:
            state = self.policy.load_weights(ckpt)
            training = torch.load(ckpt / TRAINING_STATE, weights_only=True, map_location=self.device)
            self.optimizer.load_state_dict(training["optimizer"])
            if self.sf:
                self.sf.load_state_dict(training["projector"])
        except (OSError, RuntimeError, EOFError, KeyError, ValueError, pickle.UnpicklingError) as e:
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise InvalidConfig(f"Cannot resume from damaged checkpoint {ckpt} ({reason}); delete that directory "
                                "to resume from the one before it") from None
        log.info("Resuming %s from %s", self.run_dir.name, ckpt)
        return int(state["step"])

    def _save(self, step: int) -> Path:
        """Rank 0 writes the checkpoint (the others wait for it)."""
        path = checkpoint_dir(self.run_dir, step)
        if self.world.main:
            self.policy.save(path, step=step, extra={"run": self.run_dir.name})
            tmp = path / f".{TRAINING_STATE}.tmp"
            torch.save({"optimizer": self.optimizer.state_dict(),
                        "projector": self.sf.state_dict() if self.sf else {}}, tmp)
            os.replace(tmp, path / TRAINING_STATE)
        self.world.barrier()
        return path

    def _evaluations(self, start: int) -> CheckpointEvals:
        """The run's checkpoint evals; after a restart, the unfinished ones are relaunched."""
        evals = CheckpointEvals(self.run_dir, check_train_eval(self.settings.eval, self.job.policy), self.job.policy)
        self._pending = evals.resume(_logged_evals(self.run_dir / METRICS)) if start else []
        return evals

    def _log_evals(self, results: list[dict[str, Any]], metrics_file: Any, logs: TrainLogs, wall_s: float) -> None:
        """Append each eval result to ``metrics.jsonl`` and the sinks, at its checkpoint's step."""
        for result in [*self._pending, *results]:
            line = metrics_line(result, wall_s)
            if line:
                metrics_file.write(json.dumps(line) + "\n")
                metrics_file.flush()
                logs.write(line)
                log.info("Step %d: eval success %.3f (%d/%d), run %s", line["step"], line[SUCCESS],
                         result["successes"], result["n"], result["run_id"])
        self._pending = []

    def step(self, step: int) -> dict[str, float]:
        """One optimisation step; returns its metrics."""
        s = self.settings
        gen = step_generator(s.seed, step)
        idx = step_indices(gen, len(self.dataset), s.batch_size)
        items = self._loaded_items(step) or [self.dataset[i] for i in self.world.local_slice(idx)]
        batch = self.policy.training_batch(items, gen, self.data_cfg if self.data_cfg.augment else None)
        batch.tensors = {k: v.to(self.device, non_blocking=True) for k, v in batch.tensors.items()}
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(step, s)
        targets = self.targets(items, batch.boxes).to(self.device, non_blocking=True) if self.sf else None
        with torch.autocast(self.device.type, torch.bfloat16, enabled=s.precision == "bf16"):
            out = self.policy.training_step(batch, hidden_layer=self.sf.layer if self.sf else None)
            loss, metrics = out.loss, out.metrics
            if self.sf:
                align, align_metrics = self.sf.loss(out.visual_hidden, out.grid, targets)
                loss, metrics = loss + align, metrics | align_metrics
        if not torch.isfinite(loss):
            last = latest_checkpoint(self.run_dir)
            raise SfbenchError(f"Non-finite loss ({loss.item()}) at step {step}; stopped. "
                               f"Last good checkpoint: {last or 'none'}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.world.average_gradients([p for group in self.optimizer.param_groups for p in group["params"]])
        self.optimizer.step()
        return self.world.average(metrics | {"loss": loss.item()}) | {"lr": lr_at(step, s)}

    def _loaded_items(self, step: int) -> list[dict[str, Any]] | None:
        """``step``'s samples from the loader of :meth:`run` (read ahead by its workers); None outside a run."""
        if self._loader is None:
            return None
        loaded, items = next(self._loader)
        if loaded != step:
            raise RuntimeError(f"the loader read the samples of step {loaded} for step {step}")
        return items

    def _local_indices(self, step: int) -> list[int]:
        """This process's sample indices of ``step`` (those :meth:`step` draws)."""
        gen = step_generator(self.settings.seed, step)
        return self.world.local_slice(step_indices(gen, len(self.dataset), self.settings.batch_size))

    def run(self) -> Path:
        """Train from the latest checkpoint (or scratch) to ``steps``; return the final checkpoint."""
        s = self.settings
        if s.num_threads:
            torch.set_num_threads(s.num_threads)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        start = self._resume()
        self.policy.model.train()
        metrics_file = _metrics_until(self.run_dir / METRICS, start).open("a") if self.world.main else None
        logs = TrainLogs(self.run_dir, list(s.log), {"policy": self.job.policy, "data": self.job.data,
                                                      "train": self.job.train}) if self.world.main else None
        bar = tqdm(range(start, s.steps), initial=start, total=s.steps, desc=self.run_dir.name,
                   disable=not s.progress or not self.world.main, dynamic_ncols=True)
        t0 = last_t = time.perf_counter()
        last_step = start
        evals = self._evaluations(start) if self.world.main and s.eval_every else None
        steps = range(start, s.steps)
        self._loader = zip(steps, step_batches(self.dataset, steps, self._local_indices, s.num_workers), strict=True)
        for step in bar:
            m = self.step(step)
            if metrics_file and logs and ((step + 1) % s.log_every == 0 or step + 1 == s.steps):
                now = time.perf_counter()  # throughput over the steps since the last line, on this process
                m["samples_per_s"] = round(s.batch_size * (step + 1 - last_step) / max(now - last_t, 1e-9), 2)
                last_t, last_step = now, step + 1
                line = {"step": step + 1, "wall_s": round(now - t0, 3), **m}
                metrics_file.write(json.dumps(line) + "\n")
                metrics_file.flush()
                logs.write(line)
                bar.set_postfix({k: f"{v:.4f}" for k, v in m.items() if k in ("action_loss", "align_loss")})
                self._log_evals(evals.poll() if evals else [], metrics_file, logs, now - t0)
            if s.saves_at(step + 1):
                path = self._save(step + 1)
                if evals and s.evaluates_at(step + 1):
                    evals.launch(step + 1, path)
        self._loader = None
        if metrics_file and logs:
            if evals:
                self._log_evals(evals.wait(), metrics_file, logs, time.perf_counter() - t0)
            metrics_file.close()
            logs.close()
            plot_metrics(self.run_dir / METRICS, self.run_dir / METRICS_PNG)
        return latest_checkpoint(self.run_dir) or self._save(s.steps)


def _logged_evals(path: Path) -> set[int]:
    """Steps whose eval success ``metrics.jsonl`` already holds."""
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    return {int(line["step"]) for line in lines if SUCCESS in line}


def _metrics_until(path: Path, step: int) -> Path:
    """Drop the lines of ``path`` logged after ``step`` (the resumed checkpoint), atomically."""
    if path.exists():
        kept = [line for line in path.read_text().splitlines(keepends=True) if json.loads(line)["step"] <= step]
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(kept))
        os.replace(tmp, path)
    return path


def check_job(job: TrainJob) -> None:
    """Everything about ``job`` that can be checked without loading data or building the model."""
    settings = make_config(TrainSettings, job.train, what="train")
    make_config(DataConfig, job.data, what="data")
    if job.align:
        make_config(AlignSettings, job.align, what="align")
    family = family_of(job.policy)
    if not issubclass(family, TrainablePolicy):
        raise InvalidConfig(f"Policy {job.policy['name']} ({family.name}) is not trainable")
    family.check_training(make_policy_config(job.policy))
    if settings.eval_every:
        check_train_eval(settings.eval, job.policy)
    World(0, int(os.environ.get("WORLD_SIZE", "1"))).check_batch(settings.batch_size)
    detect_format(job.data["path"])


def job_from_config(cfg: dict[str, Any], run_dir: Path) -> TrainJob:
    """A :class:`TrainJob` from the resolved ``train`` config."""
    align = cfg.get("align")
    return TrainJob(run_dir, dict(cfg["policy"]), dict(cfg["data"]), dict(cfg["train"]), dict(cfg["teacher"]),
                    dict(align) if align else None)

