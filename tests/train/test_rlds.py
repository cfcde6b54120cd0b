"""RLDS (TFDS) datasets read without TensorFlow: the TFDS-written golden fixture and files our writer makes."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import simplejpeg

from sfbench.core.errors import DamagedDataset, InvalidConfig, MissingAsset
from sfbench.train.data.formats import detect_format, load_demos
from sfbench.train.data.frames import EncodedFrames
from sfbench.train.data.rlds import RldsEpisode, write_rlds
from sfbench.train.data.tasks import suite_instructions
from sfbench.train.data.tfrecord import encode_example, parse_example

GOLDEN = Path(__file__).parent / "data" / "rlds"
EXPECTED = json.loads((GOLDEN / "expected.json").read_text())


def _sha(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


def test_golden_tfds_fixture_reads_exactly_as_tfds_does() -> None:
    demos = load_demos(GOLDEN)
    by_suite = {"libero_10_no_noops": [d for d in demos if "liber_o10-train" in d.source],
                "libero_spatial_no_noops": [d for d in demos if "libero_spatial-train" in d.source]}
    assert [len(v) for v in by_suite.values()] == [2, 2], "both suites (incl. the liber_o10 prefix) are found"
    for suite, episodes in by_suite.items():
        for i, d in enumerate(episodes):
            key = f"{suite}/{i}"
            np.testing.assert_array_equal(d.actions, np.asarray(EXPECTED[f"{key}/action"], np.float32))
            np.testing.assert_array_equal(d.proprio, np.asarray(EXPECTED[f"{key}/state"], np.float32))
            assert d.instruction == EXPECTED[f"{key}/language_instruction"][0]
            assert d.init_state == -1 and d.camera == {}
            for view, name in (("agentview", "image"), ("wrist", "wrist_image")):
                frames = d.images[view]
                assert isinstance(frames, EncodedFrames) and len(frames) == len(d.actions)
                got = [_sha(frames[t]) for t in range(len(frames))]
                assert got == EXPECTED[f"{key}/{name}/sha256_tf_default"], "pixels equal tf.io.decode_jpeg's default"


def test_task_ids_come_from_the_instruction_and_suite_filters_a_combined_dataset(tmp_path: Path) -> None:
    spatial = suite_instructions("libero_spatial")
    demos = load_demos(GOLDEN, suite="libero_spatial")
    assert [d.task_id for d in demos] == [spatial.index(d.instruction) for d in demos]
    assert all(d.group == f"libero_spatial/{d.task_id}" for d in demos) and len(demos) == 2
    ten = load_demos(GOLDEN, suite="libero_10")
    assert [d.instruction for d in ten] == ["put both moka pots on the stove",
                                            "turn on the stove and put the moka pot on it"]
    with pytest.raises(InvalidConfig, match="none of its 2 episodes is a task of data.suite=libero_goal"):
        load_demos(shutil.copytree(GOLDEN / "libero_10_no_noops/1.0.0", tmp_path / "mixed" / "1.0.0"),
                   suite="libero_goal")  # a folder name that names no suite: filtered by instruction
    with pytest.raises(InvalidConfig, match="holds suites libero_10, libero_spatial, not data.suite=libero_goal"):
        load_demos(GOLDEN, suite="libero_goal")


@pytest.mark.parametrize("where", ["libero_10_no_noops", "libero_10_no_noops/1.0.0"])
def test_suite_dir_and_version_dir_both_load(where: str) -> None:
    assert detect_format(GOLDEN / where) == "rlds"
    assert [len(d.actions) for d in load_demos(GOLDEN / where)] == [2, 4]


def _episodes(rng: np.random.Generator, lengths: list[int], suite: str) -> list[RldsEpisode]:
    texts = suite_instructions(suite)
    out = []
    for i, t in enumerate(lengths):
        frames = rng.integers(0, 256, (2, t, 32, 48, 3), dtype=np.uint8)
        out.append(RldsEpisode.from_arrays(frames[0], frames[1], rng.normal(size=(t, 8)), rng.normal(size=(t, 7)),
                                           texts[i % len(texts)]))
    return out


def test_own_writer_round_trip_with_a_one_step_episode_and_the_liber_o10_prefix(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    episodes = _episodes(rng, [3, 1, 5], "libero_10")
    vdir = tmp_path / "with space's" / "libero_10_no_noops" / "1.0.0"
    files = write_rlds(vdir, "liber_o10", episodes, shards=2, image_shape=(32, 48, 3))
    assert [f.name for f in files] == ["liber_o10-train.tfrecord-00000-of-00002",
                                       "liber_o10-train.tfrecord-00001-of-00002"]
    demos = load_demos(tmp_path / "with space's")
    assert [len(d.actions) for d in demos] == [3, 1, 5]
    for ep, d in zip(episodes, demos, strict=True):
        np.testing.assert_array_equal(d.actions, ep.action.astype(np.float32))
        np.testing.assert_array_equal(d.proprio, ep.state.astype(np.float32))
        assert d.instruction == ep.instruction and d.task_id == suite_instructions("libero_10").index(ep.instruction)
        for t in range(len(d.actions)):
            assert d.images["wrist"].encoded(t) == ep.images["wrist_image"][t]
            expected = simplejpeg.decode_jpeg(ep.images["image"][t], fastdct=True, fastupsample=False)
            np.testing.assert_array_equal(d.images["agentview"][t], expected)
        assert d.images["agentview"].shape == (len(d.actions), 32, 48, 3)


def _one_shard(tmp_path: Path) -> Path:
    vdir = tmp_path / "libero_spatial_no_noops" / "1.0.0"
    return write_rlds(vdir, "libero_spatial", _episodes(np.random.default_rng(1), [2, 3], "libero_spatial"),
                      image_shape=(32, 48, 3))[0]


def test_bad_crc_names_file_and_episode(tmp_path: Path) -> None:
    shard = _one_shard(tmp_path)
    data = bytearray(shard.read_bytes())
    second = 12 + int.from_bytes(data[:8], "little") + 4
    data[second + 40] ^= 0xFF  # inside the second episode's data
    shard.write_bytes(bytes(data))
    with pytest.raises(DamagedDataset, match=rf"{shard.name}: bad data CRC at record 1 \(episode 1\)"):
        load_demos(tmp_path)


def test_truncated_and_missing_shards_are_one_clear_error(tmp_path: Path) -> None:
    shard = _one_shard(tmp_path)
    data = shard.read_bytes()
    shard.write_bytes(data[:-100])
    with pytest.raises(DamagedDataset, match=rf"{shard.name}: truncated at record 1 \(episode 1\)"):
        load_demos(tmp_path)
    shard.unlink()
    with pytest.raises(MissingAsset, match="shard libero_spatial-train.tfrecord-00000-of-00001 is missing"):
        load_demos(tmp_path)


def test_a_shard_with_fewer_episodes_than_dataset_info_says_is_damaged(tmp_path: Path) -> None:
    shard = _one_shard(tmp_path)
    data = shard.read_bytes()
    shard.write_bytes(data[:12 + int.from_bytes(data[:8], "little") + 4])  # cut cleanly after episode 0
    with pytest.raises(DamagedDataset, match="1 episodes, dataset_info.json says 2"):
        load_demos(tmp_path)


def test_example_codec_round_trips_negative_ints_and_empty_lists() -> None:
    raw = encode_example({"a": np.array([-1, 0, 2**40], np.int64), "b": np.zeros(0, np.float32), "c": [b"", b"x"]})
    buf = np.frombuffer(raw, np.uint8)
    got = parse_example(buf, 0, len(buf))
    assert got["a"].values.tolist() == [-1, 0, 2**40] and got["b"].values.size == 0
    assert [bytes(buf[s:e]) for s, e in got["c"].spans] == [b"", b"x"]


def test_unknown_layout_is_one_line_naming_what_was_found(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(MissingAsset, match=r"a directory holding 1 entries \(notes.txt\)"):
        detect_format(tmp_path)
    shutil.copytree(GOLDEN / "libero_10_no_noops", tmp_path / "libero_10_no_noops")
    assert detect_format(tmp_path) == "rlds"
