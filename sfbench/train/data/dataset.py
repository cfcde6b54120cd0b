"""Training data: demos -> (observation, action chunk) samples, normalisation stats, subsets, augmentation."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sfbench.core.constants import VIEWS
from sfbench.core.errors import InvalidConfig, MissingAsset
from sfbench.core.normalize import compute_stats, normalize
from sfbench.train.data.demos import Demo
from sfbench.train.data.formats import load_demos
from sfbench.train.data.frames import JPEG_MAGIC, EncodedFrames
from sfbench.train.data.image_cache import check_cache_dir

log = logging.getLogger(__name__)


@dataclass
class DataConfig:
    """The ``data`` section of ``configs/train.yaml``.

    Args:
        path: A LIBERO-layout HDF5 file or a directory of them (``*.hdf5``, searched recursively), an RLDS
            dataset (suite dir, its ``1.0.0/`` or a root of suites) or a LeRobotDataset root (v2.0/v2.1/v3.0);
            the format is detected (:mod:`sfbench.train.data.formats`).
        suite: Keep only episodes of this suite's tasks (matched by instruction) from an RLDS or LeRobot
            dataset, e.g. libero_spatial out of a combined 40-task copy; null keeps every episode.
        keys: Dataset keys for sfbench's names (``agentview``, ``wrist``, ``proprio``, ``action``) when an RLDS
            or LeRobot copy names them differently; null uses the format's defaults / ``info.json``.
        cache_dir: Where the PNG frames of a LeRobot dataset are extracted once, to be read from disk by byte
            range instead of held in RAM; null = ``$SFBENCH_CACHE_DIR/lerobot``, else ``~/.cache/sfbench/lerobot``
            (``$XDG_CACHE_HOME``). A frame file is rebuilt when its parquet file changes; the dataset dir
            itself may be read-only.
        fraction: Fraction of each task's demos used (data-efficiency curves); 1.0 = all.
        demos_per_task: Use exactly this many demos per task instead (overrides ``fraction``).
        subset_seed: Seed of the deterministic demo subset.
        init_states_below: Use only demos that started from an init state index below this, keeping
            the later init states unseen for evaluation (``eval.first_episode``); null = all demos.
        augment: OFT-style augmentation: random crop of ``crop_area`` + colour jitter.
        brightness: Colour jitter: brightness factor range 1 +- this.
        contrast: Colour jitter: contrast factor range 1 +- this.
        saturation: Colour jitter: saturation factor range 1 +- this.
        hue: Colour jitter: hue rotation range +- this fraction of a turn.
    """

    path: str = "results/demos"
    suite: str | None = None
    keys: dict[str, str] | None = None
    cache_dir: str | None = None
    fraction: float = 1.0
    demos_per_task: int | None = None
    subset_seed: int = 0
    init_states_below: int | None = None
    augment: bool = True
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction <= 1.0:
            raise InvalidConfig(f"data.fraction={self.fraction} must be in (0, 1]")
        if self.demos_per_task is not None and self.demos_per_task < 1:
            raise InvalidConfig(f"data.demos_per_task={self.demos_per_task} must be >= 1")
        if self.cache_dir is not None:
            check_cache_dir(self.cache_dir)


def find_files(path: str) -> list[Path]:
    """The HDF5 files at ``path`` (a file, or every ``*.hdf5`` below a directory)."""
    p = Path(path)
    files = [p] if p.is_file() else sorted(p.rglob("*.hdf5")) if p.is_dir() else []
    if not files:
        raise MissingAsset(f"No dataset at data.path={path} (expected an .hdf5 file or a directory of them)")
    return files


def in_training_split(init_state: int, below: int | None) -> bool:
    """Whether a demo that started from ``init_state`` is used under ``data.init_states_below=below``."""
    return below is None or 0 <= init_state < below


def subset_size(available: int, fraction: float, demos_per_task: int | None) -> int:
    """Demos taken from a task's ``available`` ones: ``demos_per_task`` or ``ceil(fraction * n)``, at least 1."""
    return max(1, demos_per_task if demos_per_task is not None else math.ceil(fraction * available))


def select_demos(demos: list[Demo], fraction: float, demos_per_task: int | None, seed: int) -> list[Demo]:
    """A deterministic subset: per file, ``demos_per_task`` or ``ceil(fraction * n)`` demos (at least 1).

    The order is a seeded permutation, so smaller subsets are nested in larger ones.
    """
    by_file: dict[str, list[Demo]] = {}
    for d in demos:
        by_file.setdefault(d.group or d.source.rsplit(":", 1)[0], []).append(d)
    chosen = []
    for i, (_, group) in enumerate(sorted(by_file.items())):
        k = subset_size(len(group), fraction, demos_per_task)
        if k > len(group):
            raise InvalidConfig(f"data.demos_per_task={k} but {group[0].source.rsplit(':', 1)[0]} has {len(group)}")
        order = np.random.default_rng([seed, i]).permutation(len(group))
        chosen += [group[j] for j in sorted(order[:k])]
    return chosen


def chunk_actions(actions: np.ndarray, t: int, chunk: int) -> np.ndarray:
    """Actions ``t .. t+chunk-1``, repeating the last action past the end (OFT convention)."""
    idx = np.minimum(np.arange(t, t + chunk), len(actions) - 1)
    return actions[idx]


class DemoDataset(torch.utils.data.Dataset):
    """Samples of (images, proprio, instruction, action chunk, camera geometry) at every demo step.

    Images are returned uint8 (V, H, W, 3) in the views' order; crops and colour jitter are applied
    by :func:`augment_batch` on whole batches (cheaper than per sample).
    """

    def __init__(self, demos: list[Demo], views: tuple[str, ...], chunk: int, stats: dict):
        if not demos:
            raise InvalidConfig("No demonstrations selected")
        self.demos, self.views, self.chunk, self.stats = demos, views, chunk, stats
        self.index = [(d, t) for d in range(len(demos)) for t in range(len(demos[d].actions))]
        self.has_camera = all(all(v in d.camera for v in views) for d in demos)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        d, t = self.index[i]
        demo = self.demos[d]
        item = {
            "images": np.stack([demo.images[v][t] for v in self.views]),
            "proprio": normalize(demo.proprio[t], self.stats["proprio"]).astype(np.float32),
            "actions": normalize(chunk_actions(demo.actions, t, self.chunk), self.stats["action"]).astype(np.float32),
            "instruction": demo.instruction,
            "key": f"{demo.source}:{t}",
            "images_jpeg": tuple(_decoded_from_jpeg(demo.images[v], t) for v in self.views),
        }
        if self.has_camera:
            for name in ("depth", "intrinsics", "extrinsics"):
                item[name] = np.stack([demo.camera[v][name][t] for v in self.views]).astype(np.float32)
        return item


def _decoded_from_jpeg(frames: object, t: int) -> bool:
    """Whether frame ``t`` of a view was stored as JPEG (RLDS): OFT's image chain then adds no JPEG round trip."""
    return isinstance(frames, EncodedFrames) and frames.encoded(t)[:2] == JPEG_MAGIC


def load_dataset(cfg: DataConfig, views: tuple[str, ...] = VIEWS, chunk: int = 8) -> tuple[DemoDataset, dict]:
    """Read, subset and index the demos; stats (q01/q99) come from the selected demos only."""
    demos = load_demos(cfg.path, suite=cfg.suite, keys=dict(cfg.keys) if cfg.keys else None, cache_dir=cfg.cache_dir)
    if cfg.init_states_below is not None:
        demos = [d for d in demos if in_training_split(d.init_state, cfg.init_states_below)]
        if not demos:
            raise InvalidConfig(f"No demo in {cfg.path} started from an init state below "
                                f"data.init_states_below={cfg.init_states_below}")
    missing = sorted({v for d in demos for v in views if v not in d.images})
    if missing:
        have = sorted({v for d in demos for v in d.images})
        raise InvalidConfig(f"data.path={cfg.path} has no {missing[0]!r} view (it has {', '.join(have) or 'none'}); "
                            "the policy needs " + ", ".join(views) + "; map a camera with data.keys")
    chosen = select_demos(demos, cfg.fraction, cfg.demos_per_task, cfg.subset_seed)
    stats = {
        "action": compute_stats(np.concatenate([d.actions for d in chosen])),
        "proprio": compute_stats(np.concatenate([d.proprio for d in chosen])),
    }
    log.info("Using %d of %d demos (%d steps) from %s", len(chosen), len(demos),
             sum(len(d.actions) for d in chosen), cfg.path)
    return DemoDataset(chosen, views, chunk, stats), stats
