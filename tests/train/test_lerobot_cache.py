"""LeRobot PNG frames are served from a cache file, extracted once per parquet file and camera."""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import shutil
import stat
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sfbench.core.errors import InvalidConfig
from sfbench.train.data import image_cache, lerobot_write
from sfbench.train.data.dataset import DataConfig, load_dataset
from sfbench.train.data.demos import Demo
from sfbench.train.data.formats import load_demos
from sfbench.train.data.frames import MappedFile, decode_image, encode_png
from sfbench.train.data.image_cache import cache_path, cached_frames
from sfbench.train.data.tasks import suite_instructions
from tests.train.test_train_datasets import DATASETS

CAMERAS = ("observation.images.image", "observation.images.image2")
PARQUET = Path("data/chunk-000/file-000.parquet")


def _stored(parquet: Path, key: str) -> list[bytes]:
    return [cell["bytes"] for cell in pq.read_table(parquet, columns=[key]).column(key).to_pylist()]


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "dataset"
    shutil.copytree(DATASETS["lerobot"], root)
    return root


def test_frames_read_back_identically_through_the_cache(tmp_path: Path):
    demos = load_demos(DATASETS["lerobot"], cache_dir=tmp_path / "cache")
    for view, key in zip(("agentview", "wrist"), CAMERAS, strict=True):
        stored = _stored(DATASETS["lerobot"] / PARQUET, key)
        frames = [demo.images[view] for demo in demos]
        assert all(isinstance(f.buffer, MappedFile) for f in frames)
        assert frames[0].buffer.path == cache_path(DATASETS["lerobot"] / PARQUET, key, tmp_path / "cache")
        served = [f.encoded(t) for f in frames for t in range(len(f))]
        assert served == stored, f"{key}: the cache serves the parquet file's PNG bytes, in order"
        assert np.array_equal(frames[1][2], decode_image(stored[len(frames[0]) + 2], key))
    again = pickle.loads(pickle.dumps(demos[1].images["wrist"]))  # as a spawned DataLoader worker gets it
    assert np.array_equal(again[3], demos[1].images["wrist"][3])


def test_cache_is_reused_then_rebuilt_when_the_parquet_file_changes(tmp_path: Path):
    root, cache = _copy(tmp_path), tmp_path / "cache"
    parquet = root / PARQUET
    load_demos(root, cache_dir=cache)
    files = {key: cache_path(parquet, key, cache) for key in CAMERAS}
    before = {key: os.stat(p) for key, p in files.items()}
    load_demos(root, cache_dir=cache)
    for key, p in files.items():
        assert (os.stat(p).st_ino, os.stat(p).st_mtime_ns) == (before[key].st_ino, before[key].st_mtime_ns), \
            "a second load maps the same cache file, not a rewritten one"
    assert sorted(cache.glob("*.bin")) == sorted(files.values())
    assert not list(cache.glob("*.tmp")), "no temporary files left behind"

    table = pq.read_table(parquet)
    key = CAMERAS[0]
    cells = table.column(key).to_pylist()
    cells[0], cells[1] = cells[1], cells[0]
    pq.write_table(table.set_column(table.schema.get_field_index(key), key,
                                    pa.array(cells, table.schema.field(key).type)), parquet)
    demos = load_demos(root, cache_dir=cache)
    assert os.stat(files[key]).st_ino != before[key].st_ino, "a changed parquet file is extracted again"
    assert demos[0].images["agentview"].encoded(0) == cells[0]["bytes"]
    assert [demos[0].images["agentview"].encoded(t) for t in range(2)] == [c["bytes"] for c in cells[:2]]


def test_damaged_cache_file_is_rebuilt(tmp_path: Path):
    cache = tmp_path / "cache"
    load_demos(DATASETS["lerobot"], cache_dir=cache)
    target = cache_path(DATASETS["lerobot"] / PARQUET, CAMERAS[1], cache)
    with open(target, "r+b") as f:
        f.truncate(os.path.getsize(target) - 8)
    demos = load_demos(DATASETS["lerobot"], cache_dir=cache)
    assert demos[1].images["wrist"].encoded(4) == _stored(DATASETS["lerobot"] / PARQUET, CAMERAS[1])[9]


def test_read_only_dataset_dir_and_unwritable_cache_dir(tmp_path: Path):
    root = _copy(tmp_path)
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        demos = load_demos(root, cache_dir=tmp_path / "cache")
        assert demos[0].images["agentview"][0].shape == (256, 256, 3)
        assert not list(root.rglob("*.bin")), "nothing is written into the dataset dir"
        if os.geteuid() != 0:  # root may write anywhere
            with pytest.raises(InvalidConfig, match="data.cache_dir="):
                load_demos(root, cache_dir=root / "cache")
    finally:
        for path in [root, *root.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def _rss_kib() -> dict[str, int]:
    """RssAnon (private memory) and VmRSS (with file-backed pages: mapped files, libraries) of this process."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {k: int(fields[k].split()[0]) for k in ("RssAnon", "VmRSS")}


def _synthetic(root: Path, episodes: int, steps: int, monkeypatch: pytest.MonkeyPatch) -> int:
    """A v3.0 PNG dataset at LIBERO's frame size: 256 px noise PNGs (~197 kB each); its PNG byte count."""
    rng = np.random.default_rng(0)
    pool = [encode_png(rng.integers(0, 256, (256, 256, 3), np.uint8)) for _ in range(8)]
    calls = iter(range(1 << 30))
    monkeypatch.setattr(lerobot_write, "encode_png", lambda image: pool[next(calls) % len(pool)])
    task = suite_instructions("libero_spatial")[0]
    frame = np.broadcast_to(np.zeros((1, 256, 256, 3), np.uint8), (steps, 256, 256, 3))
    demos = (Demo(np.zeros((steps, 7), np.float32), np.zeros((steps, 8), np.float32),
                  {"agentview": frame, "wrist": frame}, task, -1, {}, f"synthetic:{e}") for e in range(episodes))
    lerobot_write.write_lerobot(root, demos, lerobot_write.LeRobotWriteOptions(data_file_mb=100))
    return sum(len(b) for p in sorted(root.rglob("data/*/*.parquet")) for key in CAMERAS for b in _stored(p, key))


def test_training_load_of_png_dataset_holds_its_frames_outside_process_memory(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch):
    png_bytes = _synthetic(tmp_path / "dataset", episodes=8, steps=95, monkeypatch=monkeypatch)
    assert png_bytes > 280 * 2**20, png_bytes
    assert len(list((tmp_path / "dataset").rglob("data/*/*.parquet"))) >= 2, "several data files"
    gc.collect()
    before, fds = _rss_kib(), len(os.listdir("/proc/self/fd"))
    cfg = DataConfig(path=str(tmp_path / "dataset"), cache_dir=str(tmp_path / "cache"), augment=False)
    dataset, _ = load_dataset(cfg, ("agentview", "wrist"), chunk=8)
    for i in range(0, len(dataset), 3):  # a third of the samples: frames of every page of the cache files
        assert dataset[i]["images"].shape == (2, 256, 256, 3)
    after = _rss_kib()
    grown = {k: (after[k] - before[k]) * 1024 for k in after}
    cached = sum(p.stat().st_size for p in (tmp_path / "cache").iterdir())
    assert cached >= png_bytes
    assert grown["RssAnon"] < png_bytes / 8, f"anonymous memory grew {grown} bytes for {png_bytes} bytes of PNG"
    assert grown["VmRSS"] < png_bytes / 8, f"RSS grew {grown} bytes for {png_bytes} bytes of PNG (mapped pages?)"
    assert len(os.listdir("/proc/self/fd")) == fds, "no file descriptor stays open per cache file"


def test_cache_dir_is_not_part_of_the_run_id():
    from sfbench.train.run import make_train_run_id

    cfg = {"policy": {"name": "tiny_vla"}, "data": {"path": "d", "suite": None, "keys": None, "cache_dir": None},
           "train": {"steps": 2}, "teacher": {"name": "geometry"}}
    moved = cfg | {"data": cfg["data"] | {"cache_dir": "/scratch/frames"}}
    other = cfg | {"data": cfg["data"] | {"path": "e"}}
    assert make_train_run_id(moved) == make_train_run_id(cfg) != make_train_run_id(other)


def test_data_info_takes_the_cache_dir(tmp_path: Path, capsys: pytest.CaptureFixture):
    from sfbench.cli import main

    main(["data", "info", f"data.path={DATASETS['lerobot']}", f"data.cache_dir={tmp_path / 'frames'}"])
    assert "episodes: 2" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "frames").glob("*.bin")) == sorted(
        cache_path(DATASETS["lerobot"] / PARQUET, key, tmp_path / "frames").name for key in CAMERAS)


def _load_counting(parquet: Path, cache: Path, log: Path) -> None:
    extract = image_cache._extract

    def slow(*args) -> None:
        with open(log, "a") as f:
            f.write("extract\n")
        time.sleep(0.5)  # the other process asks for the same file meanwhile
        extract(*args)

    image_cache._extract = slow
    cached_frames(parquet, CAMERAS[0], cache)


def test_concurrent_loads_extract_once(tmp_path: Path):
    ctx = multiprocessing.get_context("fork")
    log, parquet = tmp_path / "extractions", DATASETS["lerobot"] / PARQUET
    procs = [ctx.Process(target=_load_counting, args=(parquet, tmp_path / "cache", log)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0]
    assert log.read_text().splitlines() == ["extract"], "one process extracts, the other waits and reuses it"
    mapped, offsets = cached_frames(parquet, CAMERAS[0], tmp_path / "cache")
    assert [mapped.read(a, b) for a, b in zip(offsets[:-1], offsets[1:], strict=True)] == _stored(parquet, CAMERAS[0])


def test_files_of_filtered_out_episodes_are_not_extracted(tmp_path: Path):
    rng = np.random.default_rng(1)
    tasks = [suite_instructions("libero_spatial")[0], suite_instructions("libero_object")[0]] * 2

    def demo(e: int, task: str) -> Demo:
        images = {v: rng.integers(0, 256, (3, 16, 16, 3), np.uint8) for v in ("agentview", "wrist")}
        return Demo(rng.normal(size=(3, 7)).astype(np.float32), rng.normal(size=(3, 8)).astype(np.float32), images,
                    task, -1, {}, f"t:{e}")

    root = tmp_path / "combined"
    lerobot_write.write_lerobot(root, (demo(e, t) for e, t in enumerate(tasks)),
                                lerobot_write.LeRobotWriteOptions(data_file_mb=0))  # one data file per episode
    files = sorted(root.rglob("data/*/*.parquet"))
    assert len(files) == 4
    demos = load_demos(root, suite="libero_spatial", cache_dir=tmp_path / "cache")
    assert [d.instruction for d in demos] == tasks[0::2]
    extracted = {p.name for p in (tmp_path / "cache").glob("*.bin")}
    assert extracted == {cache_path(f, key, tmp_path / "cache").name for f in files[0::2] for key in CAMERAS}
    assert demos[1].images["wrist"].encoded(2) == _stored(files[2], CAMERAS[1])[2]


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("SFBENCH_CACHE_DIR", str(tmp_path / "sf"))
    assert image_cache.default_cache_dir() == tmp_path / "sf" / "lerobot"
    monkeypatch.delenv("SFBENCH_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert image_cache.default_cache_dir() == tmp_path / "xdg" / "sfbench" / "lerobot"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert image_cache.default_cache_dir() == Path.home() / ".cache" / "sfbench" / "lerobot"


def test_bad_cache_dir_is_refused_before_a_run_dir_is_made(tmp_path: Path, capsys: pytest.CaptureFixture):
    from sfbench.cli import main

    (tmp_path / "a_file").write_text("")
    bad = tmp_path / "a_file" / "frames"
    with pytest.raises(InvalidConfig, match="is not a directory"):
        DataConfig(path=str(DATASETS["lerobot"]), cache_dir=str(bad))
    code = main(["train", "policy=tiny_vla", f"data.path={DATASETS['lerobot']}", f"data.cache_dir={bad}",
                 f"output_dir={tmp_path / 'out'}", "train.steps=1"])
    assert code == 2 and "data.cache_dir=" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
