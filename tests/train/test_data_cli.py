"""``sfbench data info`` / ``sfbench data export``: summaries, and LeRobot v3.0 exports that read back exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from sfbench.cli import main
from sfbench.train.data.formats import load_demos
from tests.train.test_demos import write_file

DATA = Path(__file__).parent / "data"
GOLDEN_LEROBOT = DATA / "lerobot_v30_images"


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def _schema(path: Path) -> dict[str, str]:
    return {f.name: str(f.type) for f in pq.read_schema(path) if not f.name.startswith("stats/")}


def test_info_names_format_counts_tasks_and_their_suite_tasks(capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "info", f"data.path={DATA / 'rlds'}"]) == 0
    out = capsys.readouterr().out
    assert "format:   rlds TFDS 1.0.0 (liber_o10, libero_spatial)" in out
    assert "episodes: 4   steps: 11" in out and "agentview 256x256x3, wrist 256x256x3" in out
    assert "libero_10/8        put both moka pots on the stove" in out
    assert main(["data", "info", f"data.path={GOLDEN_LEROBOT}", "data.suite=libero_goal"]) == 0
    out = capsys.readouterr().out
    assert "lerobot v3.0" in out and "episodes: 1   steps: 7   fps: 10" in out and "libero_goal/7" in out


def test_export_of_rlds_reads_back_exactly_in_the_layout_lerobot_writes(tmp_path: Path) -> None:
    out = tmp_path / "exported"
    assert main(["data", "export", f"data.path={DATA / 'rlds'}", "data.to=lerobot", f"output={out}"]) == 0
    assert _files(out) == _files(GOLDEN_LEROBOT), "same files as lerobot 0.4.4 writes"
    ours, theirs = (json.loads((r / "meta/info.json").read_text()) for r in (out, GOLDEN_LEROBOT))
    assert set(ours) == set(theirs) and ours["codebase_version"] == "v3.0"
    assert {k: (f["dtype"], f["shape"]) for k, f in ours["features"].items()} == {
        k: (f["dtype"], f["shape"]) for k, f in theirs["features"].items()}
    for part in ("data/chunk-000/file-000.parquet", "meta/tasks.parquet"):
        assert _schema(out / part) == _schema(GOLDEN_LEROBOT / part), part
    assert _schema(out / "meta/episodes/chunk-000/file-000.parquet").items() <= _schema(
        GOLDEN_LEROBOT / "meta/episodes/chunk-000/file-000.parquet").items()
    source, back = load_demos(DATA / "rlds"), load_demos(out)
    assert len(back) == len(source) == 4
    for s, b in zip(source, back, strict=True):
        assert (b.instruction, b.task_id, b.group) == (s.instruction, s.task_id, s.group)
        np.testing.assert_array_equal(b.actions, s.actions)
        np.testing.assert_array_equal(b.proprio, s.proprio)
        for view in ("agentview", "wrist"):
            for t in range(len(s.actions)):
                np.testing.assert_array_equal(b.images[view][t], s.images[view][t])


def test_export_of_collected_hdf5_demos_as_video(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    trajectories = write_file(tmp_path / "demos" / "a_demo.hdf5", 2, t=4)
    out = tmp_path / "video"
    assert main(["data", "export", f"data.path={tmp_path / 'demos'}", f"output={out}", "data.video=true"]) == 0
    assert "wrote 2 episodes" in capsys.readouterr().out
    info = json.loads((out / "meta/info.json").read_text())
    assert info["features"]["observation.images.image"]["dtype"] == "video"
    assert (out / "videos/observation.images.image/chunk-000/file-000.mp4").is_file()
    back = load_demos(out)
    np.testing.assert_array_equal(back[1].actions, np.asarray([a for _, a in trajectories[1]], np.float32))
    assert back[1].images["agentview"][3].shape == trajectories[1][3][0]["agentview"].shape


def test_export_refuses_bad_options_before_writing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    assert main(["data", "export", f"data.path={DATA / 'rlds'}", f"output={busy}"]) == 2
    assert "exists and is not an empty directory" in capsys.readouterr().err
    assert main(["data", "export", f"data.path={DATA / 'rlds'}", "data.to=hdf5", f"output={tmp_path / 'o'}"]) == 2
    assert "data.to='hdf5'; choices: lerobot" in capsys.readouterr().err
    assert main(["data", "frobnicate", f"data.path={DATA}"]) == 2
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob("*.partial"))
