"""Write demos as a LeRobotDataset (v3.0 for export; v2.1 too, for tests): PNG images in parquet or mp4 video.

The layout, column types and metadata follow what lerobot 0.4.4 itself writes (the golden fixture in
``tests/train/data/lerobot_v30_images``): ``fixed_size_list<float>`` vectors, ``struct<bytes, path>`` PNG
images, a ``huggingface`` schema note, ``meta/tasks.parquet`` with the task string as the pandas index, and
HuggingFaceVLA/libero's feature names, so LeRobot and openpi load sfbench's demos as they load the released copies.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sfbench.train.data.demos import Demo
from sfbench.train.data.frames import encode_png, ffmpeg_exe

# sfbench name -> feature, as HuggingFaceVLA/libero and lerobot/libero name them.
EXPORT_KEYS = {"agentview": "observation.images.image", "wrist": "observation.images.image2",
               "proprio": "observation.state", "action": "action"}
VIDEO_PATH = {"v3.0": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
              "v2.1": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"}
DATA_PATH = {"v3.0": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
             "v2.1": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"}
INDEX_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")


@dataclass
class LeRobotWriteOptions:
    """How to write.

    Args:
        version: ``v3.0`` (LeRobot >= 0.4, HuggingFaceVLA/libero) or ``v2.1`` (openpi's pin).
        video: Cameras as mp4 (``vcodec``) instead of lossless PNG in parquet.
        vcodec: ``libx264`` or ``libsvtav1`` (LeRobot's default); yuv420p, keyframe every 2 frames.
        fps: Frame rate label (LIBERO copies say 10).
        data_file_mb: v3.0: start a new data file after this many MB (LeRobot's ``data_files_size_in_mb``).
    """

    version: str = "v3.0"
    video: bool = False
    vcodec: str = "libx264"
    fps: int = 10
    data_file_mb: int = 100
    robot_type: str = "panda"


@dataclass
class _State:
    tasks: dict[str, int] = field(default_factory=dict)
    episodes: list[dict] = field(default_factory=list)
    frames: int = 0
    file_index: int = 0
    written: int = 0
    writer: pq.ParquetWriter | None = None
    videos: dict[str, subprocess.Popen] = field(default_factory=dict)
    stats: dict[str, list[np.ndarray]] = field(default_factory=dict)


def _features(demo: Demo, opts: LeRobotWriteOptions) -> dict:
    out = {}
    for view, key in EXPORT_KEYS.items():
        if view in demo.images:
            h, w, c = demo.images[view][0].shape
            out[key] = {"dtype": "video" if opts.video else "image", "shape": [h, w, c],
                        "names": ["height", "width", "channel"]}
            if opts.video:
                out[key]["info"] = {"video.height": h, "video.width": w, "video.codec": opts.vcodec.removeprefix("lib")
                                    .replace("svtav1", "av1").replace("x264", "h264"), "video.pix_fmt": "yuv420p",
                                    "video.is_depth_map": False, "video.fps": opts.fps, "video.channels": c,
                                    "has_audio": False}
    out[EXPORT_KEYS["proprio"]] = {"dtype": "float32", "shape": [demo.proprio.shape[1]], "names": ["state"]}
    out[EXPORT_KEYS["action"]] = {"dtype": "float32", "shape": [demo.actions.shape[1]], "names": ["actions"]}
    for name in INDEX_COLUMNS:
        out[name] = {"dtype": "float32" if name == "timestamp" else "int64", "shape": [1], "names": None}
    return out


def _schema(features: dict) -> pa.Schema:
    fields, hf = [], {}
    for key, f in features.items():
        if f["dtype"] == "image":
            fields.append(pa.field(key, pa.struct([("bytes", pa.binary()), ("path", pa.string())])))
            hf[key] = {"_type": "Image"}
        elif f["dtype"] == "float32" and f["shape"] != [1]:
            fields.append(pa.field(key, pa.list_(pa.float32(), f["shape"][0])))
            hf[key] = {"feature": {"dtype": "float32", "_type": "Value"}, "length": f["shape"][0], "_type": "List"}
        elif f["dtype"] != "video":
            fields.append(pa.field(key, pa.float32() if f["dtype"] == "float32" else pa.int64()))
            hf[key] = {"dtype": f["dtype"], "_type": "Value"}
    return pa.schema(fields, metadata={"huggingface": json.dumps({"info": {"features": hf}})})


def _episode_table(demo: Demo, e: int, start: int, task: int, fps: int, schema: pa.Schema) -> pa.Table:
    t = len(demo.actions)
    cols: dict[str, pa.Array] = {}
    for view, key in EXPORT_KEYS.items():
        if key in schema.names and view in demo.images:
            cols[key] = pa.array([{"bytes": encode_png(demo.images[view][i]), "path": f"frame-{i:06d}.png"}
                                  for i in range(t)], schema.field(key).type)
    for name, values in (("proprio", demo.proprio), ("action", demo.actions)):
        key = EXPORT_KEYS[name]
        cols[key] = pa.FixedSizeListArray.from_arrays(pa.array(np.asarray(values, np.float32).ravel()),
                                                      values.shape[1])
    cols["timestamp"] = pa.array(np.arange(t, dtype=np.float32) / np.float32(fps))
    cols["frame_index"] = pa.array(np.arange(t, dtype=np.int64))
    cols["episode_index"] = pa.array(np.full(t, e, np.int64))
    cols["index"] = pa.array(np.arange(start, start + t, dtype=np.int64))
    cols["task_index"] = pa.array(np.full(t, task, np.int64))
    return pa.table({f.name: cols[f.name] for f in schema}, schema=schema)


def _start_video(path: Path, shape: tuple[int, ...], opts: LeRobotWriteOptions) -> subprocess.Popen:
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = shape[:2]
    cmd = [ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r",
           str(opts.fps), "-i", "pipe:0", "-c:v", opts.vcodec, "-pix_fmt", "yuv420p", "-g", "2"]
    cmd += ["-crf", "30", "-preset", "10"] if opts.vcodec == "libsvtav1" else ["-crf", "18"]
    return subprocess.Popen([*cmd, str(path)], stdin=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish_videos(state: _State) -> None:
    for proc in state.videos.values():
        _, err = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"ffmpeg failed: {err.decode(errors='replace').strip()}")
    state.videos = {}


def _stats(values: np.ndarray) -> dict:
    return {"min": values.min(0).tolist(), "max": values.max(0).tolist(), "mean": values.mean(0).tolist(),
            "std": values.std(0).tolist(), "count": [len(values)]}


def _image_stats(frames: list[np.ndarray]) -> dict:
    """Per-channel stats in [0, 1], shaped (3, 1, 1) as LeRobot keeps them, from a sample of frames."""
    x = np.stack(frames).astype(np.float64) / 255.0
    per = {"min": x.min((0, 1, 2)), "max": x.max((0, 1, 2)), "mean": x.mean((0, 1, 2)), "std": x.std((0, 1, 2))}
    return {k: v.reshape(3, 1, 1).tolist() for k, v in per.items()} | {"count": [len(frames)]}


def _locate(index: int) -> dict:
    return {"chunk_index": index // 1000, "file_index": index % 1000}


def _write_episode(root: Path, demo: Demo, e: int, st: _State, features: dict, schema: pa.Schema,
                   opts: LeRobotWriteOptions) -> None:
    t, task = len(demo.actions), st.tasks.setdefault(demo.instruction, len(st.tasks))
    table = _episode_table(demo, e, st.frames, task, opts.fps, schema)
    ep = {"episode_index": e, "tasks": [demo.instruction], "length": t}
    if opts.version == "v3.0":
        if st.writer is not None and st.written > opts.data_file_mb * 2**20:
            st.writer.close()
            st.writer, st.written, st.file_index = None, 0, st.file_index + 1
        if st.writer is None:
            path = root / DATA_PATH["v3.0"].format(**_locate(st.file_index))
            path.parent.mkdir(parents=True, exist_ok=True)
            st.writer = pq.ParquetWriter(path, schema)
        st.writer.write_table(table)
        st.written += table.nbytes
        loc = _locate(st.file_index)
        ep |= {"data/chunk_index": loc["chunk_index"], "data/file_index": loc["file_index"],
               "dataset_from_index": st.frames, "dataset_to_index": st.frames + t}
    else:
        path = root / DATA_PATH["v2.1"].format(episode_chunk=e // 1000, episode_index=e)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
    for view, key in EXPORT_KEYS.items():
        if key in features and features[key]["dtype"] == "video":
            if opts.version == "v3.0":
                ep |= {f"videos/{key}/chunk_index": 0, f"videos/{key}/file_index": 0,
                       f"videos/{key}/from_timestamp": st.frames / opts.fps,
                       f"videos/{key}/to_timestamp": (st.frames + t) / opts.fps}
                path = root / VIDEO_PATH["v3.0"].format(video_key=key, **_locate(0))
            else:
                path = root / VIDEO_PATH["v2.1"].format(episode_chunk=e // 1000, video_key=key, episode_index=e)
            if key not in st.videos:
                st.videos[key] = _start_video(path, features[key]["shape"], opts)
            for i in range(t):
                st.videos[key].stdin.write(np.ascontiguousarray(demo.images[view][i]).tobytes())
        if key in features and features[key]["dtype"] in ("image", "video"):
            st.stats.setdefault(key, []).extend(demo.images[view][i] for i in range(0, t, 10))
    if opts.version != "v3.0":
        _finish_videos(st)
    st.stats.setdefault("proprio", []).append(demo.proprio)
    st.stats.setdefault("action", []).append(demo.actions)
    st.frames += t
    st.episodes.append(ep)


def _write_meta(root: Path, st: _State, features: dict, opts: LeRobotWriteOptions) -> None:
    meta = root / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    stats = {k: _image_stats(v) for k, v in st.stats.items() if k not in ("proprio", "action")}
    stats[EXPORT_KEYS["proprio"]] = _stats(np.concatenate(st.stats["proprio"]))
    stats[EXPORT_KEYS["action"]] = _stats(np.concatenate(st.stats["action"]))
    n = len(st.episodes)
    info = {"codebase_version": opts.version, "robot_type": opts.robot_type, "total_episodes": n,
            "total_frames": st.frames, "total_tasks": len(st.tasks), "chunks_size": 1000, "fps": opts.fps,
            "splits": {"train": f"0:{n}"}, "data_path": DATA_PATH[opts.version],
            "video_path": VIDEO_PATH[opts.version] if opts.video else None, "features": features}
    if opts.version == "v3.0":
        info |= {"data_files_size_in_mb": opts.data_file_mb, "video_files_size_in_mb": 200}
        texts = list(st.tasks)
        pandas = {"index_columns": ["__index_level_0__"], "column_indexes": [], "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode", "numpy_type": "object",
             "metadata": None}], "attributes": {}, "creator": {"library": "pyarrow", "version": pa.__version__}}
        tasks = pa.table({"task_index": pa.array(range(len(texts)), pa.int64()),
                          "__index_level_0__": pa.array(texts, pa.large_string())})
        pq.write_table(tasks.replace_schema_metadata({"pandas": json.dumps(pandas)}), meta / "tasks.parquet")
        rows = [ep | {"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0} for ep in st.episodes]
        (meta / "episodes" / "chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), meta / "episodes" / "chunk-000" / "file-000.parquet")
        (meta / "stats.json").write_text(json.dumps(stats, indent=2))
    else:
        info |= {"total_chunks": (n + 999) // 1000, "total_videos": n * sum(
            f["dtype"] == "video" for f in features.values())}
        (meta / "tasks.jsonl").write_text("".join(json.dumps({"task_index": i, "task": s}) + "\n"
                                                  for s, i in st.tasks.items()))
        (meta / "episodes.jsonl").write_text("".join(json.dumps(ep) + "\n" for ep in st.episodes))
        (meta / "episodes_stats.jsonl").write_text("".join(
            json.dumps({"episode_index": i, "stats": {EXPORT_KEYS["action"]: _stats(a)}}) + "\n"
            for i, a in enumerate(st.stats["action"])))
    (meta / "info.json").write_text(json.dumps(info, indent=4))


def write_lerobot(root: Path, demos: Iterable[Demo], opts: LeRobotWriteOptions | None = None) -> int:
    """Write ``demos`` (streamed: one episode decoded at a time) as a LeRobotDataset at ``root``; episode count."""
    opts = opts or LeRobotWriteOptions()
    st, features, schema = _State(), None, None
    try:
        for e, demo in enumerate(demos):
            if features is None:
                features = _features(demo, opts)
                schema = _schema(features)
            _write_episode(root, demo, e, st, features, schema, opts)
    finally:
        if st.writer is not None:
            st.writer.close()
        _finish_videos(st)
    if features is None:
        raise ValueError("no demos to write")
    _write_meta(root, st, features, opts)
    return len(st.episodes)
