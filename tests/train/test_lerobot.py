"""LeRobotDataset v2.x / v3.0 read without lerobot: lerobot's own golden fixture and files our writer makes."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from sfbench.core.errors import DamagedDataset, InvalidConfig, MissingAsset
from sfbench.train.data.demos import Demo
from sfbench.train.data.formats import detect_format, load_demos
from sfbench.train.data.lerobot_write import LeRobotWriteOptions, write_lerobot
from sfbench.train.data.tasks import suite_instructions

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "lerobot_v30_images"
EXPECTED = json.loads((DATA / "lerobot_expected.json").read_text())


def test_golden_lerobot_fixture_reads_exactly() -> None:
    demos = load_demos(GOLDEN)
    assert [len(d.actions) for d in demos] == [5, 7]
    index = 0
    for e, d in enumerate(demos):
        np.testing.assert_array_equal(d.actions, np.asarray(EXPECTED[f"src/{e}/action"], np.float32))
        np.testing.assert_array_equal(d.proprio, np.asarray(EXPECTED[f"src/{e}/state"], np.float32))
        for t in range(len(d.actions)):
            for view, key in (("agentview", "observation.images.image"), ("wrist", "observation.images.image2")):
                got = hashlib.sha256(d.images[view][t].tobytes()).hexdigest()
                assert got == EXPECTED[f"lr_v30_images/{index}/{key}/sha256"], f"frame {index} {key} is lossless"
            index += 1
        stack = np.stack([d.images["agentview"][t] for t in range(len(d.actions))])
        assert hashlib.sha256(stack.tobytes()).hexdigest() == EXPECTED[f"src/{e}/observation.images.image/sha256"]
    assert (demos[0].group, demos[1].group) == (
        f"libero_10/{suite_instructions('libero_10').index(demos[0].instruction)}",
        f"libero_goal/{suite_instructions('libero_goal').index(demos[1].instruction)}")
    assert [d.instruction for d in load_demos(GOLDEN, suite="libero_goal")] == ["turn on the stove"]


def _demos(lengths: list[int], seed: int = 0) -> list[Demo]:
    """Demos whose frames are distinct flat-ish images (frame t of episode e: level 20 t + 7 e), so a video
    decode must land on its own frame; instructions are real LIBERO tasks of two suites."""
    rng = np.random.default_rng(seed)
    texts = [suite_instructions("libero_spatial")[1], suite_instructions("libero_goal")[3]]
    out = []
    for e, t in enumerate(lengths):
        base = (np.arange(t)[:, None, None, None] * 20 + 7 * e + 10).astype(np.int16)
        img = np.clip(base + rng.integers(0, 3, (t, 32, 48, 3)), 0, 255).astype(np.uint8)
        wrist = np.clip(255 - base + rng.integers(0, 3, (t, 32, 48, 3)), 0, 255).astype(np.uint8)
        out.append(Demo(rng.normal(size=(t, 7)).astype(np.float32), rng.normal(size=(t, 8)).astype(np.float32),
                        {"agentview": img, "wrist": wrist}, texts[e % 2], -1, {}, f"mem:{e}"))
    return out


@pytest.mark.parametrize("version", ["v2.1", "v3.0"])
@pytest.mark.parametrize("video", [False, True], ids=["images", "video"])
def test_own_writer_round_trip(tmp_path: Path, version: str, video: bool) -> None:
    src = _demos([4, 1, 6])
    root = tmp_path / "lerobot copy's"
    write_lerobot(root, src, LeRobotWriteOptions(version=version, video=video))
    assert detect_format(root) == "lerobot"
    got = load_demos(root)
    assert [len(d.actions) for d in got] == [4, 1, 6]
    for s, d in zip(src, got, strict=True):
        np.testing.assert_array_equal(d.actions, s.actions)
        np.testing.assert_array_equal(d.proprio, s.proprio)
        assert d.instruction == s.instruction and d.task_id >= 0
        for view in ("agentview", "wrist"):
            frames = [d.images[view][t] for t in range(len(d.images[view]))]
            if not video:
                np.testing.assert_array_equal(np.stack(frames), s.images[view])
                continue
            for t, frame in enumerate(frames):
                errors = [np.abs(frame.astype(int) - s.images[view][k]).mean() for k in range(len(frames))]
                assert int(np.argmin(errors)) == t and errors[t] < 3, f"{view} frame {t} decodes to itself"


def test_keys_come_from_info_json_with_an_override(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_lerobot(root, _demos([2, 3]))
    info = json.loads((root / "meta" / "info.json").read_text())
    assert {"observation.images.image", "observation.images.image2", "observation.state", "action"} <= set(
        info["features"])
    swapped = load_demos(root, keys={"agentview": "observation.images.image2", "wrist": "observation.images.image"})
    np.testing.assert_array_equal(swapped[0].images["agentview"][0], load_demos(root)[0].images["wrist"][0])
    with pytest.raises(InvalidConfig, match="data.keys.proprio=state is not a feature"):
        load_demos(root, keys={"proprio": "state"})


def test_damaged_lerobot_inputs_are_one_error_naming_file_and_episode(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_lerobot(root, _demos([2, 5]), LeRobotWriteOptions(version="v2.1", video=True))
    key = "observation.images.image"
    short, long = (root / f"videos/chunk-000/{key}/episode_00000{i}.mp4" for i in (0, 1))
    shutil.copy(short, long)
    with pytest.raises(DamagedDataset, match=r"ds:episode_1: video .*episode_000001.mp4 lasts 0.200 s.*shorter than"):
        load_demos(root)
    (root / "meta" / "info.json").unlink()
    with pytest.raises(MissingAsset, match="a meta/ folder without info.json"):
        load_demos(root)


def test_v30_row_count_mismatch_names_the_episode(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_lerobot(root, _demos([2, 3]))
    import pyarrow.parquet as pq

    path = root / "meta/episodes/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    lengths = table.column("length").to_pylist()
    pq.write_table(table.set_column(table.column_names.index("length"), "length",
                                    [[lengths[0], lengths[1] + 4]]), path)
    with pytest.raises(DamagedDataset, match="episode_1: 3 rows in .*file-000.parquet, the episode index says 7"):
        load_demos(root)
