"""LeRobotDataset v2.0 / v2.1 / v3.0 read with pyarrow and ffmpeg only (no ``lerobot``, no ``datasets``).

- ``meta/info.json``: ``codebase_version``, ``fps``, ``features`` (dtype ``image`` = PNG bytes in parquet as
  ``struct<bytes, path>``; dtype ``video`` = an mp4, no parquet column), ``data_path`` / ``video_path`` templates.
- v2.x: one parquet (and one mp4 per camera) per episode; ``meta/episodes.jsonl``, ``meta/tasks.jsonl``.
- v3.0: many episodes per file; ``meta/episodes/*/*.parquet`` (``data/chunk_index``, ``data/file_index``,
  ``videos/<key>/chunk_index|file_index|from_timestamp``); ``meta/tasks.parquet`` (the task string may be the
  unnamed pandas index ``__index_level_0__``).

A video frame is the one at the row's ``timestamp`` (+ the episode's ``from_timestamp`` in v3.0), as LeRobot
picks it (nearest frame, within 1e-4 s). Camera, state and action keys differ between copies of the same data
(``image``/``observation.images.image``, ``image2``/``wrist_image``, ...), so they come from ``info.json`` by
the candidates below, or from ``data.keys``.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sfbench.core.errors import DamagedDataset, InvalidConfig, MissingAsset
from sfbench.train.data.demos import Demo
from sfbench.train.data.frames import EncodedFrames, VideoCache, VideoFrames, ffmpeg_exe
from sfbench.train.data.image_cache import cached_frames
from sfbench.train.data.tasks import TaskMatcher, check_some_kept

log = logging.getLogger(__name__)

VERSIONS = ("v2.0", "v2.1", "v3.0")
CANDIDATES = {
    "agentview": ("observation.images.image", "image", "observation.images.agentview", "agentview_image"),
    "wrist": ("observation.images.image2", "observation.images.wrist_image", "wrist_image",
              "observation.images.wrist"),
    "proprio": ("observation.state", "state"),
    "action": ("action", "actions"),
}


def read_info(root: Path) -> dict:
    """``meta/info.json``, checked for a supported ``codebase_version``."""
    path = root / "meta" / "info.json"
    if not path.is_file():
        raise MissingAsset(f"{root}: no meta/info.json (not a LeRobotDataset root)")
    try:
        info = json.loads(path.read_text())
        version, features = info["codebase_version"], info["features"]
    except (ValueError, KeyError) as e:
        raise DamagedDataset(f"{path}: not a LeRobot info.json ({type(e).__name__}: {e})") from None
    if version not in VERSIONS:
        raise InvalidConfig(f"{path}: codebase_version {version!r}; sfbench reads {', '.join(VERSIONS)}")
    if not isinstance(features, dict):
        raise DamagedDataset(f"{path}: features is not a mapping")
    return info


def resolve_keys(info: dict, override: dict[str, str] | None, where: Path) -> dict[str, str]:
    """Map sfbench names to dataset features: the override, else the first candidate ``info.json`` declares."""
    features = info["features"]
    keys = {}
    for name, candidates in CANDIDATES.items():
        key = (override or {}).get(name) or next((c for c in candidates if c in features), None)
        if key is None and name != "wrist":
            raise InvalidConfig(f"{where}: no {name} feature among {', '.join(candidates)} (features: "
                                f"{', '.join(features)}); set data.keys={{{name}: <feature>}}")
        if key is not None and key not in features:
            raise InvalidConfig(f"data.keys.{name}={key} is not a feature of {where} (features: {', '.join(features)})")
        if key is not None:
            keys[name] = key
    return keys


def _jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise MissingAsset(f"{path} is missing (a LeRobot v2.x dataset keeps its episodes and tasks there)")
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except ValueError as e:
        raise DamagedDataset(f"{path}: not JSON lines ({e})") from None


def _read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    if not path.is_file():
        raise MissingAsset(f"{path} is missing (named by the dataset's metadata)")
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as e:
        raise DamagedDataset(f"{path}: unreadable parquet ({e})") from None


def _tasks(root: Path, version: str) -> dict[int, str]:
    if version != "v3.0":
        return {int(r["task_index"]): str(r["task"]) for r in _jsonl(root / "meta" / "tasks.jsonl")}
    table = _read_parquet(root / "meta" / "tasks.parquet")
    name = next((c for c in ("task", "__index_level_0__") if c in table.column_names), None)
    if name is None:
        raise DamagedDataset(f"{root / 'meta/tasks.parquet'}: no task column (columns: {table.column_names})")
    return dict(zip(table.column("task_index").to_pylist(), table.column(name).to_pylist(), strict=True))


def episodes_table(root: Path, info: dict) -> list[dict]:
    """One dict per episode: ``episode_index``, ``length`` and (v3.0) its file and video locations."""
    if info["codebase_version"] != "v3.0":
        return _jsonl(root / "meta" / "episodes.jsonl")
    files = sorted((root / "meta" / "episodes").glob("*/*.parquet"))
    if not files:
        raise MissingAsset(f"{root}: no meta/episodes/*/*.parquet (a v3.0 dataset lists its episodes there)")
    wanted = [c for c in pq.read_schema(files[0]).names if not c.startswith("stats/")]
    return [row for f in files for row in _read_parquet(f, wanted).to_pylist()]


def _data_path(root: Path, info: dict, ep: dict) -> Path:
    chunks = int(info.get("chunks_size", 1000))
    if info["codebase_version"] == "v3.0":
        return root / info["data_path"].format(chunk_index=ep["data/chunk_index"], file_index=ep["data/file_index"])
    return root / info["data_path"].format(episode_chunk=ep["episode_index"] // chunks,
                                           episode_index=ep["episode_index"])


def _video_path(root: Path, info: dict, ep: dict, key: str) -> Path:
    if info["codebase_version"] == "v3.0":
        return root / info["video_path"].format(video_key=key, chunk_index=ep[f"videos/{key}/chunk_index"],
                                                file_index=ep[f"videos/{key}/file_index"])
    chunks = int(info.get("chunks_size", 1000))
    return root / info["video_path"].format(episode_chunk=ep["episode_index"] // chunks, video_key=key,
                                            episode_index=ep["episode_index"])


def frame_shape(feature: dict) -> tuple[int, int, int]:
    """(H, W, 3) of an image/video feature (its ``names`` say whether ``shape`` is channels-first)."""
    shape, names = list(feature["shape"]), feature.get("names") or []
    if len(shape) == 3 and names and str(names[0]).startswith("channel"):
        shape = shape[1:] + shape[:1]
    return tuple(int(s) for s in shape)


@cache
def video_duration_s(path: Path) -> float:
    """The container's duration (ffmpeg's header line), to refuse videos shorter than their episodes at load."""
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True,
                          check=False)
    found = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", proc.stderr.decode(errors="replace"))
    if not found:
        raise DamagedDataset(f"{path}: not a readable video")
    h, m, s = found.groups()
    return int(h) * 3600 + int(m) * 60 + float(s)


def load_lerobot(root: Path, matcher: TaskMatcher, keys: dict[str, str] | None = None,
                 cache: VideoCache | None = None, cache_dir: Path | None = None) -> list[Demo]:
    """Every episode of a LeRobotDataset root kept by ``matcher``, frames lazily decoded.

    PNG frames in parquet are served from a frame cache in ``cache_dir``
    (:mod:`sfbench.train.data.image_cache`; None = its default), extracted on first load.
    """
    info = read_info(root)
    names = resolve_keys(info, keys, root)
    tasks, episodes = _tasks(root, info["codebase_version"]), episodes_table(root, info)
    cache = cache or VideoCache()
    demos, seen, tables = [], [], {}
    for ep in episodes:
        path = _data_path(root, info, ep)
        if path not in tables:
            tables = {path: _read_table(path, names, cache_dir)}  # v3.0 files hold consecutive episodes
        demo = _episode(root, info, names, ep, tables[path], tasks, cache, matcher.keep)
        seen.append(demo.instruction)
        if matcher.keep(demo.instruction):
            match = matcher.match(demo.instruction)
            demo.task_id, demo.group = match.task_id, f"{match.suite}/{match.task_id}" if match.suite else \
                demo.instruction
            demos.append(demo)
    check_some_kept(len(demos), len(episodes), matcher, str(root), seen)
    return demos


class _CachedImages(dict):
    """Image column -> (cache file, offsets) of one parquet file, extracted when an episode kept first needs it.

    A file whose episodes are all filtered out (``data.suite`` on a 40-task copy) is never extracted.
    """

    def __init__(self, path: Path, rows: int, cache_dir: Path | None):
        super().__init__()
        self.path, self.rows, self.cache_dir = path, rows, cache_dir

    def __missing__(self, key: str) -> tuple:
        mapped, offsets = cached_frames(self.path, key, self.cache_dir)
        if len(offsets) - 1 != self.rows:
            raise DamagedDataset(f"{self.path}: {len(offsets) - 1} frames of {key} for {self.rows} rows")
        self[key] = mapped, offsets
        return mapped, offsets


def _read_table(path: Path, names: dict[str, str], cache_dir: Path | None) -> tuple[pa.Table, _CachedImages]:
    """The file's vector and index columns in memory; its image columns from the frame cache, on demand."""
    table = _read_parquet(path, [names["proprio"], names["action"], "timestamp", "episode_index", "task_index"])
    return table, _CachedImages(path, table.num_rows, cache_dir)


def _episode(root: Path, info: dict, names: dict[str, str], ep: dict, read: tuple[pa.Table, dict],
             tasks: dict[int, str], cache: VideoCache, keep: Callable[[str], bool]) -> Demo:
    """One episode; its frames only when ``keep`` accepts its instruction (else none: it is dropped)."""
    table, images = read
    e = int(ep["episode_index"])
    source = f"{root}:episode_{e}"
    rows = np.flatnonzero(table.column("episode_index").to_numpy() == e)
    if len(rows) != int(ep["length"]) or (len(rows) and rows[-1] - rows[0] + 1 != len(rows)):
        raise DamagedDataset(f"{source}: {len(rows)} rows in {_data_path(root, info, ep)}, the episode index says "
                             f"{ep['length']}")
    if not len(rows):
        raise DamagedDataset(f"{source}: empty episode")
    part = table.slice(int(rows[0]), len(rows))

    def vectors(key: str) -> np.ndarray:
        col = part.column(key).combine_chunks()
        flat = col.flatten() if pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type) else col
        return np.asarray(flat.to_numpy(zero_copy_only=False), np.float32).reshape(len(rows), -1)

    task_index = int(part.column("task_index")[0].as_py())
    if task_index not in tasks:
        raise DamagedDataset(f"{source}: task_index {task_index} is not in the dataset's tasks")
    frames = {}
    for view in ("agentview", "wrist") if keep(tasks[task_index]) else ():
        key = names.get(view)
        if key is None:
            continue
        feature = info["features"][key]
        if feature["dtype"] == "image":
            data, offsets = images[key]
            spans = np.stack([offsets[rows], offsets[rows + 1]], axis=1)
            frames[view] = EncodedFrames(data, spans, frame_shape(feature), f"{source} {key}")
        elif feature["dtype"] == "video":
            frames[view] = _video(root, info, ep, key, part, cache, source)
        else:
            raise InvalidConfig(f"{root}: feature {key} has dtype {feature['dtype']}, not image or video")
    return Demo(vectors(names["action"]), vectors(names["proprio"]), frames, tasks[task_index], -1, {}, source)


def _video(root: Path, info: dict, ep: dict, key: str, part: pa.Table, cache: VideoCache, source: str) -> VideoFrames:
    path = _video_path(root, info, ep, key)
    if not path.is_file():
        raise MissingAsset(f"{source}: video {path} is missing")
    offset = float(ep.get(f"videos/{key}/from_timestamp", 0.0) or 0.0)
    fps = float(info["fps"])
    timestamps = part.column("timestamp").to_numpy().astype(np.float64) + offset
    frames = VideoFrames(path, timestamps, fps, frame_shape(info["features"][key]), cache, f"{source} {key}")
    needed = float(timestamps.max()) + 0.5 / fps
    if video_duration_s(path) + 1e-3 < needed:
        raise DamagedDataset(f"{source}: video {path} lasts {video_duration_s(path):.3f} s, the episode needs "
                             f"frames up to {timestamps.max():.3f} s (video shorter than its episode)")
    return frames
