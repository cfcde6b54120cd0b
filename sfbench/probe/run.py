"""``sfbench probe``: how much metric depth can a probe read from a frozen policy's visual tokens?

Frames come from LIBERO-layout demos with rendered depth (``sfbench collect``); keep them out of the
policies' training data (``probe.init_states_from`` = the training run's ``data.init_states_below``).
Demos, not frames, are split into the probe's train and test sets, so test frames come from
episodes the probe never saw. Every policy is probed on the same frames, at the same layer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from sfbench.config.schema import make_config
from sfbench.core.constants import OBS_DEPTH, OBS_INTRINSICS, OBS_PROPRIO
from sfbench.core.errors import InvalidConfig, MissingAsset
from sfbench.core.images import center_box, crop_resize
from sfbench.core.io import write_json_atomic
from sfbench.policies import family_of, make_policy
from sfbench.policies.trainable import TrainablePolicy, checkpoint_policy_config
from sfbench.probe.heads import HEADS, DepthMetrics, FitSettings, depth_metrics, fit_probe
from sfbench.train.data.dataset import find_files
from sfbench.train.data.demos import Demo, load_demos

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)
RANDOM_INIT = "random_init"
# How the grids colour depth; probe.json records it, so a report can tell grids drawn before the colour bar.
GRID_SCALE = "one colour scale per row (its scored ground-truth depths), with a colour bar in metres"


@dataclass
class ProbeSettings:
    """The ``probe`` section of ``configs/probe.yaml`` (see the comments there)."""

    data: str = "results/demos"
    init_states_from: int | None = None
    frame_stride: int = 4
    views: list[str] = field(default_factory=lambda: ["agentview", "wrist"])
    layer: int | None = None
    heads: list[str] = field(default_factory=lambda: list(HEADS))
    test_fraction: float = 0.3
    output_size: int = 32
    max_depth_m: float = 5.0
    random_init_control: bool = True
    examples: int = 4
    steps: int = 1500
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0
    num_threads: int | None = None
    output_dir: str = "results/probes"
    name: str | None = None

    def __post_init__(self) -> None:
        bad = [h for h in self.heads if h not in HEADS]
        if bad:
            raise InvalidConfig(f"probe.heads contains {bad[0]!r}; choices: {', '.join(HEADS)}")
        if not 0.0 < self.test_fraction < 1.0:
            raise InvalidConfig(f"probe.test_fraction={self.test_fraction} must be in (0, 1)")
        if self.frame_stride < 1 or self.output_size < 1:
            raise InvalidConfig("probe.frame_stride and probe.output_size must be >= 1")
        if self.num_threads is not None and self.num_threads < 1:
            raise InvalidConfig(f"probe.num_threads={self.num_threads} must be >= 1 (or null for torch's default)")


@dataclass(frozen=True)
class Frames:
    """Probe frames: raw observations (as the env gives them) and which demo each came from."""

    obs: list[dict[str, Any]]
    demo_index: np.ndarray


def load_frames(s: ProbeSettings) -> Frames:
    """Every ``frame_stride``-th step of the selected demos, as policy observations with depth."""
    demos = [d for f in find_files(s.data) for d in load_demos(f)
             if s.init_states_from is None or d.init_state >= s.init_states_from]
    if len(demos) < 2:
        raise MissingAsset(f"probe.data={s.data} has {len(demos)} usable demos (init state >= "
                           f"{s.init_states_from}); the probe needs at least 2 (one train, one test)")
    missing = [v for v in s.views if v not in demos[0].camera]
    if missing:
        raise InvalidConfig(f"probe.data={s.data} has no depth for view {missing[0]!r} (collect with sfbench collect)")
    obs, owner = [], []
    for i, d in enumerate(demos):
        for t in range(0, len(d.actions), s.frame_stride):
            obs.append(_observation(d, t))
            owner.append(i)
    return Frames(obs, np.asarray(owner))


def _observation(d: Demo, t: int) -> dict[str, Any]:
    return {**{v: d.images[v][t] for v in d.images}, OBS_PROPRIO: d.proprio[t], "instruction": d.instruction,
            OBS_DEPTH: {v: c["depth"][t] for v, c in d.camera.items()},
            OBS_INTRINSICS: {v: c["intrinsics"][t] for v, c in d.camera.items()}}


def split(frames: Frames, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices of the train and test sets; whole demos go to one side."""
    demos = np.unique(frames.demo_index)
    order = np.random.default_rng(seed).permutation(demos)
    n_test = min(len(demos) - 1, max(1, round(test_fraction * len(demos))))
    test = np.isin(frames.demo_index, order[:n_test])
    return np.flatnonzero(~test), np.flatnonzero(test)


@torch.no_grad()
def token_features(policy: TrainablePolicy, frames: Frames, views: list[str], layer: int) -> torch.Tensor:
    """Hidden states at ``layer`` of each view's visual tokens: (N * len(views), D, Hp, Wp), frame-major."""
    missing = [v for v in views if v not in policy.views]
    if missing:
        raise InvalidConfig(f"Policy {policy.name} has no view {missing[0]!r} (its views: {list(policy.views)})")
    picks = [list(policy.views).index(v) for v in views]
    out = [policy.visual_hidden(frames.obs[start:start + 64], layer)[:, picks].flatten(0, 1)
           for start in range(0, len(frames.obs), 64)]
    return torch.cat(out)


def depth_targets(frames: Frames, views: list[str], crop_area: float, size: int) -> torch.Tensor:
    """Ground-truth depth (N * len(views), size, size) with the policy's centre crop, frame-major."""
    maps = []
    for obs in frames.obs:
        for v in views:
            d = torch.from_numpy(np.asarray(obs[OBS_DEPTH][v], dtype=np.float32))[None]
            maps.append(crop_resize(d, center_box(d.shape[-2], d.shape[-1], crop_area), size)[0])
    return torch.stack(maps)


def _rows(label: str, checkpoint: str, layer: int, fitted: dict[str, tuple[DepthMetrics, Any]],
          n_train: int, n_test: int) -> list[dict[str, Any]]:
    return [{"label": label, "checkpoint": checkpoint, "layer": layer, "head": head,
             **dataclasses.asdict(m), "train_maps": n_train, "test_maps": n_test}
            for head, (m, _) in fitted.items()]


def probe_policy(policy: TrainablePolicy, frames: Frames, s: ProbeSettings, layer: int,
                 targets: torch.Tensor, train: np.ndarray, test: np.ndarray) -> dict[str, tuple[DepthMetrics, Any]]:
    """Fit each head on the train maps and score it on the test maps; head -> (metrics, test predictions)."""
    features = token_features(policy, frames, s.views, layer)
    v = len(s.views)
    rows_train = torch.from_numpy((train[:, None] * v + np.arange(v)).ravel())
    rows_test = torch.from_numpy((test[:, None] * v + np.arange(v)).ravel())
    valid = (targets > 0) & (targets < s.max_depth_m)
    fit = FitSettings(steps=s.steps, batch_size=s.batch_size, lr=s.lr, seed=s.seed)
    out = {}
    for head in s.heads:
        probe = fit_probe(head, features[rows_train], targets[rows_train], valid[rows_train], fit)
        pred = probe.predict(features[rows_test])
        out[head] = (depth_metrics(pred, targets[rows_test], valid[rows_test]), pred)
    return out


def _default_name(s: ProbeSettings, checkpoints: list[str]) -> str:
    settings = {k: v for k, v in dataclasses.asdict(s).items() if k != "num_threads"}  # same result either way
    key = json.dumps({"checkpoints": checkpoints, **settings}, sort_keys=True, default=str)
    return f"probe-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def _labels(configs: list[dict[str, Any]]) -> list[str]:
    names = [c["name"] for c in configs]
    return [n if names.count(n) == 1 else f"{n}:{Path(c['checkpoint']).parent.parent.name}/"
            f"{Path(c['checkpoint']).name}" for n, c in zip(names, configs, strict=True)]


def run_probe(cfg: DictConfig) -> dict[str, Any]:
    """Probe every checkpoint (plus a random-init control); write probe.csv, probe.json and PNG grids."""
    s = make_config(ProbeSettings, OmegaConf.to_container(cfg.probe), what="probe")
    if s.num_threads:
        torch.set_num_threads(s.num_threads)
    checkpoints = [str(c) for c in cfg.checkpoints] or ([cfg.policy.checkpoint] if cfg.policy.checkpoint else [])
    if not checkpoints:
        raise InvalidConfig("Nothing to probe: give checkpoints=[<ckpt_a>,<ckpt_b>] or policy.checkpoint=<ckpt>")
    configs = ([OmegaConf.to_container(cfg.policy)] if not cfg.checkpoints else
               [checkpoint_policy_config(c) for c in checkpoints])
    for c in configs:
        if not issubclass(family_of(c), TrainablePolicy):
            raise InvalidConfig(f"Policy {c['name']} exposes no hidden states to probe (not a trainable policy)")
    policies: list[TrainablePolicy] = [make_policy(c) for c in configs]  # type: ignore[misc]
    labels = _labels(configs)
    paths = [str(c["checkpoint"]) for c in configs]
    if s.random_init_control:
        policies, labels, paths = [*policies, policies[0].reinitialized(s.seed)], [*labels, RANDOM_INIT], [*paths, ""]
    layers = {p.num_layers for p in policies}
    layer = s.layer if s.layer is not None else round(0.75 * max(layers))
    if any(not 0 <= layer <= n for n in layers):
        raise InvalidConfig(f"probe.layer={layer} is outside the policies' layers 0..{min(layers)}")
    frames = load_frames(s)
    train, test = split(frames, s.test_fraction, s.seed)
    out = Path(s.output_dir) / (s.name or _default_name(s, checkpoints))
    out.mkdir(parents=True, exist_ok=True)
    rows, grids, targets_by_crop = [], {}, {}
    for label, policy, path in tqdm(list(zip(labels, policies, paths, strict=True)), desc="probing"):
        crop = policy.crop_area
        if crop not in targets_by_crop:  # policies that crop alike share their depth targets
            targets_by_crop[crop] = depth_targets(frames, s.views, crop, s.output_size)
        targets = targets_by_crop[crop]
        fitted = probe_policy(policy, frames, s, layer, targets, train, test)
        rows += _rows(label, path, layer, fitted,
                      len(train) * len(s.views), len(test) * len(s.views))
        grids[label] = _grid(out / f"{label.replace(':', '_').replace('/', '_')}.png", label, frames, test, s,
                             targets, fitted, crop)
    result = {"layer": layer, "frames": len(frames.obs), "train_frames": len(train), "test_frames": len(test),
              "settings": dataclasses.asdict(s), "rows": rows, "grids": {k: str(v) for k, v in grids.items()},
              "grid_scale": GRID_SCALE,
              "table": format_table(rows)}
    _write_csv(rows, out / "probe.csv")
    write_json_atomic(out / "probe.json", result)
    return result | {"csv": str(out / "probe.csv")}


def _write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    import csv

    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def format_table(rows: list[dict[str, Any]]) -> str:
    """Human-readable probe table (test split)."""
    lines = [f"{'policy':<34} {'head':<7} {'AbsRel':>7} {'RMSE m':>7} {'d<1.25':>7}"]
    lines += [f"{r['label']:<34} {r['head']:<7} {r['abs_rel']:>7.3f} {r['rmse']:>7.3f} {r['delta1']:>7.3f}"
              for r in rows]
    return "\n".join(lines)


def _grid(path: Path, label: str, frames: Frames, test: np.ndarray, s: ProbeSettings, targets: torch.Tensor,
          fitted: dict[str, tuple[DepthMetrics, Any]], crop_area: float) -> Path:
    """Write :func:`grid_figure` as a PNG at ``path``."""
    import matplotlib.pyplot as plt

    fig = grid_figure(label, frames, test, s, targets, fitted, crop_area)
    fig.savefig(path)
    plt.close(fig)
    return path


def depth_scale(target: torch.Tensor, max_depth_m: float) -> tuple[float, float]:
    """Colour range (metres) of one example: its valid ground-truth depths (0 < d < ``max_depth_m``).

    The pixels the metrics score set the range; a map without any falls back to all positive depths.
    """
    valid = target[(target > 0) & (target < max_depth_m)]
    if valid.numel() == 0:
        valid = target[target > 0] if (target > 0).any() else target.flatten()
    return float(valid.min()), float(valid.max())


def grid_figure(label: str, frames: Frames, test: np.ndarray, s: ProbeSettings, targets: torch.Tensor,
                fitted: dict[str, tuple[DepthMetrics, Any]], crop_area: float) -> Figure:
    """Per example test map: image | ground truth | each head's prediction, with a depth colour bar in metres.

    The ground truth and the predictions of a row share one colour scale (the row's valid ground-truth
    range); the colour bar beside the row gives it in metres, its arrows marking depths outside the range.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    v = len(s.views)
    picks = np.linspace(0, len(test) * v - 1, min(s.examples, len(test) * v)).round().astype(int)
    cols = 2 + len(fitted)
    fig, axes = plt.subplots(len(picks), cols, figsize=(2.2 * cols + 0.9, 2.2 * len(picks)), squeeze=False,
                             dpi=100, layout="constrained")
    for row, k in enumerate(picks):
        frame, view = int(test[k // v]), s.views[k % v]
        img = frames.obs[frame][view]
        box = center_box(img.shape[0], img.shape[1], crop_area)
        t = targets[test[k // v] * v + k % v]
        lo, hi = depth_scale(t, s.max_depth_m)
        axes[row, 0].imshow(img[box[0]:box[0] + box[2], box[1]:box[1] + box[3]])
        maps = [("ground truth", t.numpy())]
        maps += [(f"{head} probe", pred[k].numpy()) for head, (_, pred) in fitted.items()]
        for col, (_, data) in enumerate(maps, start=1):
            shown = axes[row, col].imshow(data, cmap="viridis", vmin=lo, vmax=hi)
        bar = fig.colorbar(shown, ax=list(axes[row, 1:]), extend="both", fraction=0.05, pad=0.02)
        bar.set_label("depth (m)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
        for ax in axes[row]:
            ax.set_xticks([]), ax.set_yticks([])
        axes[row, 0].set_ylabel(view, fontsize=8)
        if row == 0:
            for ax, title in zip(axes[row], ["image", *(f"{name} (m)" for name, _ in maps)], strict=True):
                ax.set_title(title, fontsize=9)
    fig.suptitle(f"{label}: metric depth probe on test frames (colour: depth in metres)", fontsize=10)
    return fig
