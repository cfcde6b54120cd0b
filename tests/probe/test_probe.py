"""Depth-probe maths (metrics, heads, fitting), the demo-level split and the command end to end."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from sfbench.config.compose import compose_config
from sfbench.core.errors import InvalidConfig
from sfbench.probe.heads import FitSettings, depth_metrics, fit_probe, make_head
from sfbench.probe.run import Frames, run_probe, split
from tests.curves.test_curves import train_run


def test_metrics_of_exact_scaled_and_known_predictions():
    t = torch.tensor([[1.0, 2.0], [4.0, 0.0]])
    valid = t > 0
    exact = depth_metrics(t.clone(), t, valid)
    assert (exact.abs_rel, exact.rmse, exact.delta1, exact.pixels) == (0.0, 0.0, 1.0, 3)
    double = depth_metrics(2 * t, t, valid)
    assert double.abs_rel == pytest.approx(1.0) and double.delta1 == 0.0
    assert double.rmse == pytest.approx(np.sqrt((1 + 4 + 16) / 3))
    near = depth_metrics(torch.tensor([[1.2, 2.6], [4.0, 9.0]]), t, valid)  # ratios 1.2, 1.3, 1.0
    assert near.delta1 == pytest.approx(2 / 3) and near.abs_rel == pytest.approx((0.2 + 0.3 + 0) / 3)


def test_heads_map_a_token_grid_to_the_output_resolution():
    x = torch.randn(2, 8, 4, 4)
    assert make_head("linear", 8, 4)(x).shape == (2, 16, 16)
    assert make_head("conv", 8, 4)(x).shape == (2, 16, 16)
    with pytest.raises(ValueError, match="power-of-two"):
        make_head("conv", 8, 3)


def synthetic(n: int, informative: bool, seed: int = 0):
    """Depth maps (n, 8, 8) whose 2x2 patches' log-depths are (or are not) linear in the features."""
    g = torch.Generator().manual_seed(seed)
    log_depth = torch.rand(n, 4, 4, 4, generator=g) * 1.5 - 0.5  # per token: its 4 pixels, 0.6..2.7 m
    depth = torch.nn.functional.pixel_shuffle(log_depth.permute(0, 3, 1, 2), 2)[:, 0].exp()
    mixing = torch.randn(4, 12, generator=torch.Generator().manual_seed(99))  # one encoding for every split
    codes = log_depth @ mixing if informative else torch.randn(n, 4, 4, 12, generator=g)
    return codes.permute(0, 3, 1, 2).contiguous(), depth


@pytest.mark.parametrize(("head", "max_abs_rel"), [("linear", 0.08), ("conv", 0.2)])
def test_a_probe_reads_depth_that_the_features_encode_and_not_from_noise(head, max_abs_rel):
    settings = FitSettings(steps=600, batch_size=32, lr=1e-2)
    feats, depth = synthetic(256, informative=True)
    test_feats, test_depth = synthetic(64, informative=True, seed=1)
    probe = fit_probe(head, feats, depth, depth > 0, settings)
    good = depth_metrics(probe.predict(test_feats), test_depth, test_depth > 0)
    noise, noise_depth = synthetic(256, informative=False)
    bad_probe = fit_probe(head, noise, noise_depth, noise_depth > 0, settings)
    test_noise, test_noise_depth = synthetic(64, informative=False, seed=1)
    bad = depth_metrics(bad_probe.predict(test_noise), test_noise_depth, test_noise_depth > 0)
    # The conv head's bilinear upsampling cannot place each token's 2x2 pixels exactly: a looser bound.
    assert good.abs_rel < max_abs_rel and good.delta1 > 0.8
    assert bad.abs_rel > 0.3 and bad.delta1 < good.delta1 - 0.2, (good, bad)


def test_split_keeps_each_demo_on_one_side():
    frames = Frames([{}] * 20, np.repeat(np.arange(5), 4))
    train, test = split(frames, 0.4, seed=0)
    assert len(train) + len(test) == 20 and len(test) == 8
    assert not set(frames.demo_index[train]) & set(frames.demo_index[test])
    assert split(frames, 0.4, seed=0)[1].tolist() == test.tolist()


def test_probe_command_writes_table_csv_and_grids(tmp_path):
    run_dir = train_run(tmp_path, "r", checkpoints=(10,))
    ckpt = run_dir / "checkpoints" / "step_000010"
    data = tmp_path / "data-3"
    cfg = compose_config("probe", [f"checkpoints=[{ckpt}]", f"probe.data={data}", "probe.frame_stride=1",
                                   "probe.output_size=4", "probe.steps=20", "probe.examples=2",
                                   f"probe.output_dir={tmp_path / 'probes'}", "probe.name=p"])
    result = run_probe(cfg)
    assert result["layer"] == 1 and result["train_frames"] + result["test_frames"] == 12
    rows = list(csv.DictReader((tmp_path / "probes" / "p" / "probe.csv").open()))
    assert [(r["label"], r["head"]) for r in rows] == [
        ("tiny_vla", "linear"), ("tiny_vla", "conv"), ("random_init", "linear"), ("random_init", "conv")]
    assert all(0.0 <= float(r["delta1"]) <= 1.0 and float(r["rmse"]) >= 0 for r in rows)
    assert (tmp_path / "probes" / "p" / "tiny_vla.png").read_bytes()[:4] == b"\x89PNG"
    written = json.loads((tmp_path / "probes" / "p" / "probe.json").read_text())
    assert written["rows"][0]["pixels"] > 0 and "colour bar in metres" in written["grid_scale"]


def test_probe_needs_a_checkpoint_and_known_heads(tmp_path):
    with pytest.raises(InvalidConfig, match="Nothing to probe"):
        run_probe(compose_config("probe", []))
    cfg = compose_config("probe", ["policy.checkpoint=x", "probe.heads=[linear,mlp]"])
    with pytest.raises(InvalidConfig, match="'mlp'; choices: linear, conv"):
        run_probe(OmegaConf.create(OmegaConf.to_container(cfg)))
    cfg = compose_config("probe", ["policy.checkpoint=x", "probe.num_threads=0"])
    with pytest.raises(InvalidConfig, match="probe.num_threads=0 must be >= 1"):
        run_probe(OmegaConf.create(OmegaConf.to_container(cfg)))


def grid_inputs(examples: int = 2):
    """Four test frames of one view, 8x8 depth in metres (one far pixel beyond max_depth_m), two heads."""
    from sfbench.probe.run import ProbeSettings

    s = ProbeSettings(views=["agentview"], examples=examples, max_depth_m=5.0)
    rng = np.random.default_rng(0)
    frames = Frames([{"agentview": rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)} for _ in range(4)],
                    np.arange(4))
    targets = torch.from_numpy(rng.uniform(0.5, 2.0, (4, 8, 8)).astype(np.float32))
    targets[:, 0, 0] = 9.0  # beyond max_depth_m: not scored, so not part of the colour range
    fitted = {h: (None, targets[1:] + 0.5 * (i + 1)) for i, h in enumerate(("linear", "conv"))}
    return frames, np.arange(1, 4), s, targets, fitted


def test_probe_grid_has_one_colour_scale_per_row_and_a_colour_bar_in_metres():
    from sfbench.probe.run import depth_scale, grid_figure

    frames, test, s, targets, fitted = grid_inputs()
    fig = grid_figure("tiny_vla", frames, test, s, targets, fitted, crop_area=1.0)
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 2 and all(b.get_ylabel() == "depth (m)" for b in bars), "one colour bar in metres per row"
    image_axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert [ax.get_title() for ax in image_axes[:4]] == ["image", "ground truth (m)", "linear probe (m)",
                                                         "conv probe (m)"]
    for row, example in enumerate((test[0], test[-1])):  # linspace picks the first and last test maps
        lo, hi = depth_scale(targets[example], s.max_depth_m)
        assert hi < 2.0 and lo >= 0.5, "the range is the scored pixels', without the 9 m one"
        depth_images = [ax.images[0] for ax in image_axes[4 * row + 1:4 * row + 4]]
        assert all(im.get_clim() == (lo, hi) for im in depth_images), "ground truth and predictions share a scale"
        assert bars[row].get_ylim() == pytest.approx((lo, hi))


def test_depth_scale_falls_back_when_no_pixel_is_scored():
    from sfbench.probe.run import depth_scale

    far = torch.full((2, 2), 7.0)
    far[0, 0] = 0.0
    assert depth_scale(far, 5.0) == (7.0, 7.0)
    assert depth_scale(torch.tensor([[0.0, 1.5], [3.0, 6.0]]), 5.0) == (1.5, 3.0)
