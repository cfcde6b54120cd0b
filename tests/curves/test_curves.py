"""Curve maths (pooling, threshold crossings, ratios), outputs, and train-run checks."""

from __future__ import annotations

import csv
import json

import pytest

from sfbench.core.errors import InvalidConfig, MissingAsset, UnknownChoice
from sfbench.curves.curve import (
    Measurement,
    crossings,
    figure,
    first_crossing,
    legend_label,
    plot,
    pool,
    write_points_csv,
)
from sfbench.curves.run import CurveSettings, replot
from sfbench.curves.train_runs import TrainRun, check_comparable, curve_labels, load_train_run, training_data
from sfbench.policies.tiny_vla import TinyVLA, TinyVLAConfig, save_checkpoint
from tests.conftest import REPO, run_cli
from tests.train.test_demos import write_file


def m(label, x, k, n, run="r"):
    return Measurement(label, run, x, k, n, f"eval-{label}-{x}")


def curve(label, *points):
    return pool([m(label, x, k, n) for x, k, n in points])[label]


def test_pool_sums_seeds_at_the_same_x_and_sorts_by_x():
    pooled = pool([m("sf", 200, 3, 10, "s1"), m("sf", 100, 1, 10, "s1"), m("sf", 200, 5, 10, "s2"),
                   m("base", 100, 0, 10)])
    assert list(pooled) == ["sf", "base"]
    p100, p200 = pooled["sf"]
    assert (p100.x, p200.x) == (100, 200)
    assert (p200.rate.successes, p200.rate.n, p200.rate.success_rate) == (8, 20, 0.4)
    assert p200.train_runs == ("s1", "s2")
    assert p200.rate.ci_low < 0.4 < p200.rate.ci_high


def test_first_crossing_interpolates_between_the_bracketing_points():
    points = curve("a", (100, 1, 10), (200, 3, 10), (300, 7, 10))
    x, first = first_crossing(points, 0.5)
    assert x == pytest.approx(250.0) and not first  # 0.3 -> 0.7 over 100 steps: 0.5 halfway
    assert first_crossing(points, 0.7) == (300, False)
    assert first_crossing(points, 0.1) == (100, True)  # reached at the first point: an upper bound
    assert first_crossing(points, 0.8) == (None, False)


def test_first_crossing_uses_the_first_time_not_a_later_one():
    points = curve("a", (1, 6, 10), (2, 2, 10), (3, 9, 10))
    assert first_crossing(points, 0.5) == (1, True)


def test_ratios_are_relative_to_the_baseline_and_say_when_it_never_reached():
    curves = {"base": curve("base", (100, 2, 10), (200, 4, 10), (400, 8, 10)),
              "sf": curve("sf", (100, 4, 10), (200, 8, 10), (400, 9, 10)),
              "none": curve("none", (100, 0, 10), (400, 1, 10))}
    rows = {c.label: c for c in crossings(curves, 0.4, "base")}
    assert rows["base"].ratio == pytest.approx(1.0)
    assert rows["sf"].x == 100 and rows["sf"].ratio == pytest.approx(2.0)
    assert rows["none"].x is None and rows["none"].ratio_note == "not reached"
    never = {c.label: c for c in crossings(curves, 0.85, "base")}
    assert never["base"].x is None and never["sf"].x == pytest.approx(200 + 200 * (0.85 - 0.8) / 0.1)
    assert never["sf"].ratio_note.startswith("> ") and "baseline never reached" in never["sf"].ratio_note


def test_points_csv_and_plot_are_written(tmp_path):
    curves = {"base": curve("base", (100, 2, 10), (200, 4, 10))}
    write_points_csv(curves, tmp_path / "points.csv", "training step")
    rows = list(csv.DictReader((tmp_path / "points.csv").open()))
    assert rows[1]["training step"] == "200" and rows[1]["successes"] == "4" and rows[1]["n"] == "10"
    png = plot(curves, [0.3], tmp_path / "c.png", x_name="training step", title="t")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_settings_reject_bad_kind_threshold_and_empty_runs():
    with pytest.raises(UnknownChoice, match="data_efficiency"):
        CurveSettings(kind="speed", runs=["a"])
    with pytest.raises(InvalidConfig, match="threshold=1.5"):
        CurveSettings(runs=["a"], threshold=[0.5, 1.5])
    with pytest.raises(InvalidConfig, match="runs is empty"):
        CurveSettings(runs=[])


def train_run(tmp_path, run_id, *, task_id=3, fraction=1.0, below=None, checkpoints=(10, 20)):
    """A train run directory with tiny real checkpoints, trained (nominally) on its own demo file."""
    data = tmp_path / f"data-{task_id}"
    if not data.exists():
        write_file(data / "t_demo.hdf5", 4, t=3)
        import h5py

        with h5py.File(data / "t_demo.hdf5", "a") as f:
            f["data"].attrs.update({"task_id": task_id, "suite": "libero_spatial", "protocol_hash": "abc"})
    run_dir = tmp_path / "train" / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(
        f"policy: {{name: tiny_vla, dim: 16, layers: 1, heads: 2, image_size: 16}}\n"
        f"data: {{path: {data}, fraction: {fraction}, demos_per_task: null, init_states_below: "
        f"{'null' if below is None else below}}}\ntrain: {{seed: 7}}\n")
    cfg = TinyVLAConfig(dim=16, layers=1, heads=2, image_size=16)
    stats = {k: {"q01": [-1.0] * d, "q99": [1.0] * d} for k, d in (("action", 7), ("proprio", 8))}
    for step in checkpoints:
        path = save_checkpoint(run_dir / "checkpoints" / f"step_{step:06d}", TinyVLA(cfg), cfg, stats, step)
        (path / "training_state.pt").write_bytes(b"")  # the trainer's completeness mark
    return run_dir


def test_train_runs_list_checkpoints_and_count_demos_used(tmp_path):
    train_run(tmp_path, "half", fraction=0.5, checkpoints=(20, 10))
    train_run(tmp_path, "held", below=3)
    run = load_train_run(tmp_path / "train", "half")
    assert list(run.checkpoints) == [10, 20] and run.config["train"]["seed"] == 7
    assert training_data(run).demos_per_task == (2,)  # ceil(0.5 * 4)
    assert training_data(load_train_run(tmp_path / "train", "held")).demos_per_task == (3,)  # init states 0..2
    with pytest.raises(InvalidConfig, match="no checkpoint at step 30.*saved steps: \\[10, 20\\]"):
        run.checkpoint(30)


def test_labels_pool_seeds_and_name_what_else_differs(tmp_path):
    base = {"policy": {"name": "tiny_vla"}, "data": {"fraction": 1.0}, "train": {"seed": 1, "steps": 10}}
    runs = [TrainRun(str(i), tmp_path, cfg, {}) for i, cfg in enumerate([
        base, base | {"train": {"seed": 2, "steps": 10}}, base | {"data": {"fraction": 0.5}},
        {**base, "policy": {"name": "tiny_vla_sf"}}])]
    assert curve_labels(runs, data_is_x=False) == [
        "tiny_vla fraction=1.0", "tiny_vla fraction=1.0", "tiny_vla fraction=0.5", "tiny_vla_sf"]
    assert curve_labels(runs, data_is_x=True) == ["tiny_vla", "tiny_vla", "tiny_vla", "tiny_vla_sf"]


def test_missing_runs_and_runs_without_checkpoints_are_clear_errors(tmp_path):
    train_run(tmp_path, "a")
    with pytest.raises(MissingAsset, match="No train run 'b'.*runs there: a"):
        load_train_run(tmp_path / "train", "b")
    (tmp_path / "train" / "empty").mkdir()
    (tmp_path / "train" / "empty" / "config.yaml").write_text("policy: {name: tiny_vla}\n")
    with pytest.raises(MissingAsset, match="'empty' has no saved checkpoints"):
        load_train_run(tmp_path / "train", "empty")


def test_runs_trained_on_different_task_sets_are_refused_naming_the_difference(tmp_path):
    train_run(tmp_path, "a", task_id=3)
    train_run(tmp_path, "b", task_id=3, fraction=0.25)
    train_run(tmp_path, "c", task_id=5)
    runs = [load_train_run(tmp_path / "train", r) for r in ("a", "b", "c")]
    assert check_comparable(runs[:2])[runs[0].run_id].task_ids == (3,)
    with pytest.raises(InvalidConfig, match="task set: a has \\[3\\], c has \\[5\\]"):
        check_comparable([runs[0], runs[2]])


def test_cli_refuses_runs_of_different_task_sets_before_evaluating(tmp_path):
    train_run(tmp_path, "a", task_id=3)
    train_run(tmp_path, "c", task_id=5)
    proc = run_cli("curves", "runs=[a,c]", f"curves.train_dir={tmp_path / 'train'}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "task set: a has [3], c has [5]" in proc.stderr
    proc = run_cli("curves", "runs=[a,zzz]", f"curves.train_dir={tmp_path / 'train'}")
    assert proc.returncode == 2 and "No train run 'zzz'" in proc.stderr


@pytest.mark.sim
def test_curves_evaluate_every_checkpoint_in_the_simulator_and_resume(tmp_path):
    train_run(tmp_path, "full", checkpoints=(10, 20))
    train_run(tmp_path, "quarter", fraction=0.25, checkpoints=(10, 20))
    common = ["runs=[full,quarter]", f"curves.train_dir={tmp_path / 'train'}", "protocol=libero_oft_fast",
              "protocol.max_steps.libero_spatial=12", "eval.tasks=[0]", "eval.episodes_per_task=1",
              "eval.progress=false", f"output_dir={tmp_path / 'runs'}", f"curves.output_dir={tmp_path / 'curves'}"]
    proc = run_cli("curves", "kind=convergence", "curves.name=conv", "curves.threshold=[0.5,1.0]", *common)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "curves" / "conv" / "points.csv").open()))
    assert [(r["label"], r["training step"], r["n"]) for r in rows] == [
        ("tiny_vla fraction=1.0", "10", "1"), ("tiny_vla fraction=1.0", "20", "1"),
        ("tiny_vla fraction=0.25", "10", "1"), ("tiny_vla fraction=0.25", "20", "1")]
    assert len(list((tmp_path / "runs").iterdir())) == 4  # one eval run per checkpoint
    assert (tmp_path / "curves" / "conv" / "convergence.png").is_file()
    assert "not reached" in proc.stdout  # 12-step episodes of untrained models cannot succeed
    proc = run_cli("curves", "kind=data_efficiency", "curves.name=data", *common)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "curves" / "data" / "points.csv").open()))
    assert [r["demos per task"] for r in rows] == ["1", "4"]  # ceil(0.25 * 4) and all 4
    assert len(list((tmp_path / "runs").iterdir())) == 4, "the final checkpoints' evaluations are reused"


@pytest.mark.parametrize("kind", ["convergence", "data_efficiency"])
def test_committed_experiment_curves_regenerate_byte_identically_from_records(kind, tmp_path):
    experiment = REPO / "results" / "experiments" / "sf_tiny_spatial3"
    result = replot(experiment / kind, experiment / "runs", tmp_path)
    for name in ("points.csv", "thresholds.csv", f"{kind}.png"):
        assert (tmp_path / name).read_bytes() == (experiment / kind / name).read_bytes(), f"{name} differs"
    committed = json.loads((experiment / kind / "curve.json").read_text())
    assert {k: v for k, v in result.items() if k != "files"} == {k: v for k, v in committed.items() if k != "files"}


def test_points_csv_carries_each_pooled_runs_own_count(tmp_path):
    pooled = pool([m("sf", 100, 3, 10, "s1"), m("sf", 100, 5, 12, "s2"), m("sf", 200, 4, 10, "s1")])
    write_points_csv(pooled, tmp_path / "points.csv", "training step")
    rows = list(csv.DictReader((tmp_path / "points.csv").open()))
    assert [(r["n"], r["successes"], r["run_counts"], r["train_runs"]) for r in rows] == [
        ("22", "8", "3/10 5/12", "s1 s2"), ("10", "4", "4/10", "s1")]


def test_legend_names_n_when_a_label_shares_it_and_counts_seeds():
    assert legend_label("a", curve("a", (100, 2, 10), (200, 4, 10))) == "a (n=10 episodes per point)"
    assert legend_label("a", curve("a", (100, 2, 10), (200, 4, 20))) == "a"  # n is written at each point
    seeded = pool([m("sf", 100, 3, 10, "s1"), m("sf", 100, 5, 10, "s2"), m("sf", 200, 4, 10, "s1"),
                   m("sf", 200, 6, 10, "s2")])["sf"]
    assert legend_label("sf", seeded) == "sf (2 seeds pooled, n=20 episodes per point)"


def test_figure_writes_n_at_points_that_differ_and_draws_one_dot_per_seed():
    from matplotlib.collections import PathCollection

    pooled = pool([m("sf", 100, 3, 10, "s1"), m("sf", 100, 7, 10, "s2"), m("sf", 200, 9, 10, "s1"),
                   m("base", 100, 1, 10), m("base", 200, 4, 30)])
    fig = figure(pooled, [0.5], x_name="training step", title="t")
    ax = fig.axes[0]
    # sf pools 20 then 10 episodes, base has 10 then 30: both vary, so n is written at every point
    assert sorted(t.get_text() for t in ax.texts) == ["n=10", "n=10", "n=20", "n=30"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["sf (up to 2 seeds pooled)", "base", "single seeds"]
    uniform = figure(pool([m("a", 100, 1, 10), m("a", 200, 2, 10)]), [], x_name="training step", title="t")
    assert not uniform.axes[0].texts
    assert uniform.axes[0].get_legend().get_texts()[0].get_text() == "a (n=10 episodes per point)"
    dots = [c.get_offsets().tolist() for c in ax.collections if isinstance(c, PathCollection) and len(c.get_offsets())]
    assert dots == [[[100.0, 30.0], [100.0, 70.0]]], "one hollow dot per seed at the pooled x, none for 1-run points"
    pooled_line = ax.get_lines()[0].get_xydata().tolist()
    assert pooled_line == [[100.0, 50.0], [200.0, 90.0]]  # the line is the pooled rate: (3 + 7) / 20
