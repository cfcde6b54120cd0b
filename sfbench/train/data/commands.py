"""``sfbench data info`` and ``sfbench data export``: what a dataset holds, and converting it to LeRobot v3.0."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sfbench.core.errors import InvalidConfig
from sfbench.train.data.demos import Demo
from sfbench.train.data.formats import detect_format, load_demos
from sfbench.train.data.lerobot_write import LeRobotWriteOptions, write_lerobot

log = logging.getLogger(__name__)

EXPORT_TARGETS = ("lerobot",)
VCODECS = ("libx264", "libsvtav1")


@dataclass
class DatasetInfo:
    """What ``sfbench data info`` prints."""

    path: str
    format: str
    version: str
    episodes: int
    steps: int
    tasks: list[tuple[str, int, str]]  # (instruction, episodes, "<suite>/<task id>" or "unmatched")
    keys: list[str]
    image_sizes: dict[str, str]
    fps: str


def _version_and_keys(path: Path, fmt: str) -> tuple[str, list[str], str]:
    if fmt == "lerobot":
        from sfbench.train.data.lerobot import read_info

        info = read_info(path)
        return info["codebase_version"], list(info["features"]), str(info.get("fps", "-"))
    if fmt == "rlds":
        from sfbench.train.data.rlds import INFO, step_features, version_dirs

        vdirs = version_dirs(path)
        versions = sorted({json.loads((v / INFO).read_text()).get("version", v.name) for v in vdirs})
        names = [json.loads((v / INFO).read_text())["name"] for v in vdirs]
        keys = sorted({f"steps/{k}" for v in vdirs for k in step_features(v)})
        return f"TFDS {', '.join(versions)} ({', '.join(names)})", keys, "not stored (LIBERO control: 20 Hz)"
    return "LIBERO HDF5 (robomimic layout)", ["actions", "obs/*"], "not stored (LIBERO control: 20 Hz)"


def dataset_info(path: str, *, suite: str | None = None, keys: dict[str, str] | None = None,
                 cache_dir: str | None = None) -> DatasetInfo:
    """Read the dataset at ``path`` (any supported format) and summarise it (LeRobot PNG frames: ``cache_dir``)."""
    fmt = detect_format(path)
    demos = load_demos(path, suite=suite, keys=keys, cache_dir=cache_dir)
    version, names, fps = _version_and_keys(Path(path), fmt)
    counts = Counter(d.instruction for d in demos)
    where = {d.instruction: d.group if d.task_id >= 0 else "unmatched" for d in demos}
    sizes = {v: "x".join(str(s) for s in frames[0].shape) for v, frames in demos[0].images.items()} if demos else {}
    return DatasetInfo(str(path), fmt, version, len(demos), sum(len(d.actions) for d in demos),
                       sorted(((t, n, where[t]) for t, n in counts.items()), key=lambda x: (x[2], x[0])),
                       names, sizes, fps)


def format_info(info: DatasetInfo) -> str:
    """The human-readable report."""
    lines = [f"{info.path}", f"  format:   {info.format} {info.version}",
             f"  episodes: {info.episodes}   steps: {info.steps}   fps: {info.fps}",
             "  images:   " + (", ".join(f"{v} {s}" for v, s in info.image_sizes.items()) or "none"),
             f"  keys:     {', '.join(info.keys)}", f"  tasks:    {len(info.tasks)}"]
    lines += [f"    {n:>5}  {task:<18} {text}" for text, n, task in info.tasks]
    return "\n".join(lines)


def check_export(to: str, output: str | None, vcodec: str) -> Path:
    """Refuse a bad target, codec or output before anything is read or written."""
    if to not in EXPORT_TARGETS:
        raise InvalidConfig(f"data.to={to!r}; choices: {', '.join(EXPORT_TARGETS)}")
    if vcodec not in VCODECS:
        raise InvalidConfig(f"data.vcodec={vcodec!r}; choices: {', '.join(VCODECS)}")
    if not output:
        raise InvalidConfig("Missing output=<dir> (the LeRobotDataset root to write)")
    out = Path(output)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidConfig(f"output={output} exists and is not an empty directory; choose a new one")
    return out


def export_dataset(path: str, output: str, *, to: str = "lerobot", video: bool = False, vcodec: str = "libx264",
                   suite: str | None = None, keys: dict[str, str] | None = None, fps: int = 10,
                   cache_dir: str | None = None) -> tuple[Path, int]:
    """Write the demos at ``path`` as a LeRobotDataset v3.0 at ``output``; (output, episodes written).

    The dataset is written under ``<output>.partial`` and renamed when complete, so an interrupted
    export leaves no half-written dataset at ``output``.
    """
    out = check_export(to, output, vcodec)
    demos: list[Demo] = load_demos(path, suite=suite, keys=keys, cache_dir=cache_dir)
    if not demos:
        raise InvalidConfig(f"data.path={path} holds no demos to export")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    n = write_lerobot(partial, demos, LeRobotWriteOptions(version="v3.0", video=video, vcodec=vcodec, fps=fps))
    if out.exists():
        out.rmdir()
    os.replace(partial, out)
    return out, n
