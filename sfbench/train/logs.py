"""Training metric sinks (``train.log``): ``metrics.jsonl`` always, TensorBoard and W&B on request; ``metrics.png``.

``metrics.jsonl`` is the source of truth (resume truncates it to the checkpoint, curves and plots
read it); TensorBoard event files (``<run>/tensorboard/``, via ``torch.utils.tensorboard``) and an
offline W&B run (``<run>/wandb/``, ``wandb sync`` uploads it later) are views of the same lines.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Protocol

from sfbench.core.errors import InvalidConfig, MissingAsset

log = logging.getLogger(__name__)

SINKS = ("jsonl", "tensorboard", "wandb")
TENSORBOARD_DIR = "tensorboard"
WANDB_DIR = "wandb"
METRICS_PNG = "metrics.png"
# TensorBoard tag groups: losses under loss/, the rest under their own names.
_GROUPS = {"loss": "loss", "action_loss": "loss", "align_loss": "loss", "align_cos": "align", "lr": "optim",
           "samples_per_s": "throughput"}


def check_sinks(sinks: list[str]) -> None:
    """Raise when ``sinks`` names an unknown sink, or ``wandb`` without the package installed."""
    bad = [s for s in sinks if s not in SINKS]
    if bad:
        raise InvalidConfig(f"train.log={sinks}: unknown sink {bad[0]!r}; choices: {', '.join(SINKS)}")
    if "jsonl" not in sinks:
        raise InvalidConfig(f"train.log={sinks}: jsonl is the source of truth (resume, curves) and must stay; "
                            "add sinks beside it, e.g. train.log=[jsonl,tensorboard]")
    if "tensorboard" in sinks:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise MissingAsset("train.log has tensorboard, which is not installed: pip install tensorboard") from None
    if "wandb" in sinks:
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise MissingAsset("train.log has wandb but it is not installed: pip install 'sfbench[wandb]'") from None


class Sink(Protocol):
    """Where the trainer's logged lines also go."""

    def write(self, step: int, metrics: dict[str, float]) -> None:
        """Record the metrics of ``step``."""

    def close(self) -> None:
        """Flush and close."""


class TensorBoardSink:
    """Scalars in ``<run>/tensorboard/`` (one event file per process start; resumed steps overwrite in the UI)."""

    def __init__(self, run_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / TENSORBOARD_DIR))

    def write(self, step: int, metrics: dict[str, float]) -> None:
        """One scalar per metric, tagged ``<group>/<name>`` (a name with a group, ``eval/success``, as it is)."""
        for name, value in metrics.items():
            tag = name if "/" in name else f"{_GROUPS.get(name, 'metrics')}/{name}"
            self.writer.add_scalar(tag, value, global_step=step)

    def close(self) -> None:
        """Flush the event file."""
        self.writer.close()


class WandbSink:
    """An offline W&B run in ``<run>/wandb/`` (never contacts a server; ``wandb sync`` uploads it)."""

    def __init__(self, run_dir: Path, config: dict[str, Any]):
        import wandb

        self.run = wandb.init(project="sfbench", name=run_dir.name, dir=str(run_dir), mode="offline",
                              config=config, resume="allow", id=run_dir.name.replace("/", "_"))

    def write(self, step: int, metrics: dict[str, float]) -> None:
        """Log ``metrics`` at ``step``."""
        self.run.log(metrics, step=step)

    def close(self) -> None:
        """Finish the offline run."""
        self.run.finish()


class TrainLogs:
    """The extra sinks of ``train.log`` beside ``metrics.jsonl`` (which the trainer writes itself)."""

    def __init__(self, run_dir: Path, sinks: list[str], config: dict[str, Any]):
        check_sinks(sinks)
        self.sinks: list[Sink] = []
        if "tensorboard" in sinks:
            self.sinks.append(TensorBoardSink(run_dir))
        if "wandb" in sinks:
            self.sinks.append(WandbSink(run_dir, config))

    def write(self, line: dict[str, Any]) -> None:
        """Send one ``metrics.jsonl`` line (``step``, ``wall_s`` and the metrics) to every sink."""
        scalars = {k: float(v) for k, v in line.items() if k not in ("step", "wall_s")}
        for sink in self.sinks:
            sink.write(int(line["step"]), scalars)

    def close(self) -> None:
        """Close every sink."""
        for sink in self.sinks:
            sink.close()


def plot_metrics(metrics_jsonl: Path, path: Path) -> Path | None:
    """``metrics.png``: losses (log scale), alignment cosine, learning rate and throughput vs step."""
    lines = [json.loads(ln) for ln in metrics_jsonl.read_text().splitlines() if ln.strip()] \
        if metrics_jsonl.is_file() else []
    evals = [ln for ln in lines if "eval/success" in ln]  # eval results, at their checkpoints' steps
    lines = [ln for ln in lines if "loss" in ln]
    if not lines:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [ln["step"] for ln in lines]
    panels = [("loss", [k for k in ("loss", "action_loss", "align_loss") if k in lines[0]], True),
              ("SF alignment cosine", [k for k in ("align_cos",) if k in lines[0]], False),
              ("learning rate", ["lr"], True), ("samples / s", [k for k in ("samples_per_s",) if k in lines[0]], False)]
    panels = [p for p in panels if p[1]] + ([("eval success", ["eval/success"], False)] if evals else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.0), dpi=100, squeeze=False)
    for ax, (title, keys, log_y) in zip(axes[0], panels, strict=True):
        for k in keys:
            if k == "eval/success":
                done = sorted(evals, key=lambda ln: ln["step"])
                ax.plot([ln["step"] for ln in done], [ln[k] for ln in done], "o-", label=k)
                continue
            ax.plot(steps, [ln.get(k, float("nan")) for ln in lines], label=k)
        if log_y and all(ln.get(k, 1) > 0 for ln in lines for k in keys):
            ax.set_yscale("log")
        ax.set(title=title, xlabel="step")
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend(fontsize=7)
    fig.suptitle(metrics_jsonl.parent.name, fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
