"""LIBERO-layout HDF5: writing, reading, subsets and clear errors (synthetic demos, no simulator)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from sfbench.core.errors import InvalidConfig, MissingAsset
from sfbench.train.data.dataset import DataConfig, DemoDataset, chunk_actions, load_dataset, select_demos
from sfbench.train.data.demos import ROTATED, append_demo, demo_arrays, load_demos


def fake_trajectory(t: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    steps = []
    for _ in range(t):
        obs = {"agentview": rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
               "wrist": rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
               "proprio": rng.normal(size=8).astype(np.float32), "joint_states": np.zeros(7, np.float32),
               "depth": {"agentview": np.ones((16, 16), np.float32), "wrist": np.ones((16, 16), np.float32)},
               "intrinsics": {v: np.eye(3, dtype=np.float32) for v in ("agentview", "wrist")},
               "extrinsics": {v: np.eye(4, dtype=np.float32) for v in ("agentview", "wrist")}}
        steps.append((obs, rng.uniform(-1, 1, 7)))
    return steps


def write_file(path, n_demos: int, t: int = 5, convention: str = ROTATED) -> list:
    trajectories = [fake_trajectory(t, seed) for seed in range(n_demos)]
    for i, traj in enumerate(trajectories):
        append_demo(path, demo_arrays(traj), init_state_index=i,
                    file_attrs={"instruction": "do it", "task_id": 3, "image_convention": convention})
    return trajectories


def test_round_trip_keeps_every_array(tmp_path):
    path = tmp_path / "task_demo.hdf5"
    trajectories = write_file(path, 2)
    demos = load_demos(path)
    assert len(demos) == 2 and demos[0].instruction == "do it" and demos[0].task_id == 3
    np.testing.assert_array_equal(demos[1].images["agentview"][2], trajectories[1][2][0]["agentview"])
    np.testing.assert_allclose(demos[0].actions, np.stack([a for _, a in trajectories[0]]), rtol=1e-6)
    np.testing.assert_allclose(demos[0].proprio[0], trajectories[0][0][0]["proprio"])
    assert demos[0].camera["wrist"]["extrinsics"].shape == (5, 4, 4)
    with h5py.File(path) as f:
        assert f["data"].attrs["total"] == 10 and f["data/demo_1"].attrs["num_samples"] == 5
        assert f["data/demo_1/dones"][-1] == 1 and f["data/demo_1/rewards"][-1] == 1.0


def test_released_libero_files_are_rotated_to_the_protocol_convention(tmp_path):
    path = tmp_path / "raw_demo.hdf5"
    trajectories = write_file(path, 1, convention="robosuite")
    img = trajectories[0][0][0]["agentview"]
    np.testing.assert_array_equal(load_demos(path)[0].images["agentview"][0], img[::-1, ::-1])


def test_missing_file_key_and_empty_file_errors_name_the_problem(tmp_path):
    with pytest.raises(MissingAsset, match="nothere.hdf5"):
        load_demos(tmp_path / "nothere.hdf5")
    empty = tmp_path / "empty.hdf5"
    h5py.File(empty, "w").close()
    with pytest.raises(InvalidConfig, match="empty.hdf5: missing key data/demo_"):
        load_demos(empty)
    broken = tmp_path / "broken.hdf5"
    write_file(broken, 1)
    with h5py.File(broken, "a") as f:
        del f["data/demo_0/obs/ee_pos"]
    with pytest.raises(InvalidConfig, match=r"broken.hdf5:demo_0: missing key obs/ee_pos"):
        load_demos(broken)
    (tmp_path / "junk.hdf5").write_text("not hdf5")
    with pytest.raises(InvalidConfig, match="junk.hdf5: not a readable HDF5"):
        load_demos(tmp_path / "junk.hdf5")


def test_subsets_are_deterministic_nested_and_per_task(tmp_path):
    write_file(tmp_path / "a_demo.hdf5", 10)
    write_file(tmp_path / "b_demo.hdf5", 10)
    demos = [d for p in sorted(tmp_path.glob("*.hdf5")) for d in load_demos(p)]
    small = {d.source for d in select_demos(demos, 0.2, None, seed=0)}
    large = {d.source for d in select_demos(demos, 0.5, None, seed=0)}
    assert len(small) == 4 and len(large) == 10 and small <= large
    assert small == {d.source for d in select_demos(demos, 0.2, None, seed=0)}
    assert len(select_demos(demos, 1.0, 3, seed=0)) == 6


def test_dataset_items_are_normalised_chunks(tmp_path):
    write_file(tmp_path / "a_demo.hdf5", 3, t=6)
    dataset, stats = load_dataset(DataConfig(path=str(tmp_path)))
    assert isinstance(dataset, DemoDataset) and len(dataset) == 18
    item = dataset[5]
    assert item["images"].shape == (2, 16, 16, 3) and item["actions"].shape == (8, 7)
    assert np.all(np.abs(item["actions"]) <= 1.0 + 1e-6) and item["depth"].shape == (2, 16, 16)
    np.testing.assert_array_equal(chunk_actions(np.arange(6)[:, None], 4, 4)[:, 0], [4, 5, 5, 5])
