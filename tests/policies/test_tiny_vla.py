"""TinyVLA family: model contract, checkpoints, the policy adapter and a real overfit check."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from sfbench.core.errors import InvalidConfig, MissingAsset, UnknownChoice
from sfbench.core.geometry import point_map
from sfbench.core.normalize import compute_stats, normalize, unnormalize
from sfbench.policies import make_policy, make_policy_config
from sfbench.policies.tiny_vla import (
    TinyVLA,
    TinyVLAConfig,
    center_box,
    crop_intrinsics,
    load_checkpoint,
    save_checkpoint,
    tokenize,
)

SMALL = {"image_size": 32, "dim": 32, "layers": 2, "heads": 2, "max_text_tokens": 16}
STATS = {
    "action": {"q01": [-0.5] * 6 + [-1.0], "q99": [0.5] * 6 + [1.0]},
    "proprio": {"q01": [-1.0] * 8, "q99": [1.0] * 8},
}


def small_batch(config: TinyVLAConfig, batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    v, size = len(config.views), config.image_size
    out = {
        "images": torch.rand(batch, v, 3, size, size, generator=g),
        "proprio": torch.rand(batch, config.proprio_dim, generator=g) * 2 - 1,
        "tokens": tokenize(["pick up the black bowl", "open the drawer"][:batch], config.max_text_tokens),
    }
    if config.input_geometry:
        out["geometry"] = torch.rand(
            batch, v, 3 if config.input_geometry == "points" else 1, size, size, generator=g
        )
    return out


def synthetic_obs(seed: int = 0, depth: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    obs = {
        "agentview": rng.integers(0, 256, (256, 256, 3), dtype=np.uint8),
        "wrist": rng.integers(0, 256, (256, 256, 3), dtype=np.uint8),
        "proprio": rng.normal(size=8).astype(np.float32),
        "instruction": "put the bowl on the plate",
    }
    if depth:
        k = np.array([[-200.0, 0, 128], [0, 200.0, 128], [0, 0, 1]], dtype=np.float32)
        obs["depth"] = {
            v: rng.uniform(0.5, 2.0, (256, 256)).astype(np.float32) for v in ("agentview", "wrist")
        }
        obs["intrinsics"] = {v: k for v in ("agentview", "wrist")}
        obs["extrinsics"] = {v: np.eye(4, dtype=np.float32) for v in ("agentview", "wrist")}
    return obs


@pytest.fixture
def checkpoint(weird_tmp_path):
    torch.manual_seed(0)
    config = TinyVLAConfig(**SMALL)
    model = TinyVLA(config)
    path = save_checkpoint(weird_tmp_path / "ckpt", model, config, STATS, step=30, extra={"lr": 1e-3})
    return path, model, config


def test_forward_shapes_and_visual_hidden_grid():
    config = TinyVLAConfig(**SMALL)
    model = TinyVLA(config)
    out = model(small_batch(config), hidden_layer=2)
    assert out["actions"].shape == (2, 8, 7)
    assert out["grid"] == model.visual_grid == (2, 4, 4)
    assert out["visual_hidden"].shape == (2, 2 * 4 * 4, model.hidden_dim)
    assert model.num_layers == 2
    assert "visual_hidden" not in model(small_batch(config)), "hidden states only on request"
    with pytest.raises(ValueError, match="hidden_layer"):
        model(small_batch(config), hidden_layer=3)


def test_text_padding_is_masked():
    """The same instruction padded to different lengths gives the same actions."""
    config = TinyVLAConfig(**SMALL)
    model = TinyVLA(config).eval()
    batch = dict(small_batch(config), tokens=tokenize(["open", "close it"], 16))
    short = dict(batch, tokens=tokenize(["open", "close it"], 9))
    assert torch.allclose(model(batch)["actions"], model(short)["actions"], atol=1e-5)


def test_invalid_config_names_the_bad_value():
    with pytest.raises(InvalidConfig, match="patch_size \\(7\\)"):
        make_policy_config({"name": "tiny_vla", "patch_size": 7})
    with pytest.raises(InvalidConfig, match="'voxels'"):
        make_policy_config({"name": "tiny_vla", "input_geometry": "voxels"})
    with pytest.raises(UnknownChoice, match="align_layer"):
        make_policy_config({"name": "tiny_vla_sf", "align_layer": 9})  # SF settings are the trainer's now
    assert make_policy_config({"name": "tiny_vla_sf"}).name == "tiny_vla_sf", "the name is kept in the config"


def test_checkpoint_round_trip_gives_identical_actions(checkpoint):
    path, model, config = checkpoint
    loaded, loaded_config, stats, state = load_checkpoint(path)
    assert dataclasses.replace(loaded_config, checkpoint=None) == config
    assert state == {"step": 30, "lr": 1e-3} and stats["action"]["q99"][0] == 0.5
    batch = small_batch(config)
    assert torch.equal(model.eval()(batch)["actions"], loaded(batch)["actions"])
    policy = make_policy({"name": "tiny_vla", **SMALL, "checkpoint": str(path)})
    again = make_policy({"name": "tiny_vla", **SMALL, "checkpoint": str(path)})
    obs = synthetic_obs()
    np.testing.assert_array_equal(policy.act(obs), again.act(obs))
    assert len(policy.checkpoint_id) == 12 and policy.checkpoint_hash.startswith(policy.checkpoint_id)


def test_save_replaces_an_existing_checkpoint(checkpoint):
    path, model, config = checkpoint
    save_checkpoint(path, model, config, STATS, step=60)
    assert load_checkpoint(path)[3]["step"] == 60
    assert [p.name for p in path.parent.iterdir()] == [path.name], "no temporary directories left"


def test_missing_checkpoint_names_the_path(weird_tmp_path):
    missing = weird_tmp_path / "nope"
    with pytest.raises(MissingAsset, match="nope"):
        make_policy({"name": "tiny_vla", "checkpoint": str(missing)})
    with pytest.raises(MissingAsset, match="checkpoint"):
        make_policy({"name": "tiny_vla"})


def test_truncated_weights_raise_a_clear_error(checkpoint):
    path = checkpoint[0]
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(InvalidConfig, match="Corrupt weights file"):
        load_checkpoint(path)


def test_corrupt_or_foreign_checkpoints_are_rejected(checkpoint, weird_tmp_path):
    path, model, _ = checkpoint
    with pytest.raises(InvalidConfig, match="dim=64"):
        make_policy({"name": "tiny_vla", **SMALL, "dim": 64, "checkpoint": str(path)})
    sf_config = TinyVLAConfig(name="tiny_vla_sf", **SMALL)
    sf_path = save_checkpoint(weird_tmp_path / "sf", TinyVLA(sf_config), sf_config, STATS, step=1)
    with pytest.raises(InvalidConfig, match="policy=tiny_vla_sf"):
        make_policy({"name": "tiny_vla", **SMALL, "checkpoint": str(sf_path)})
    (path / "normalization.json").write_text("{not json")
    with pytest.raises(InvalidConfig, match="normalization.json"):
        load_checkpoint(path)


def test_act_returns_finite_chunk_with_binary_gripper(checkpoint):
    policy = make_policy({"name": "tiny_vla", **SMALL, "checkpoint": str(checkpoint[0])})
    assert policy.requirements.views == ("agentview", "wrist") and not policy.requirements.depth
    chunks = policy.act_batch([synthetic_obs(0), synthetic_obs(1)])
    chunk = policy.act(synthetic_obs(0))
    assert chunk.shape == (8, 7) and chunk.dtype == np.float32 and np.all(np.isfinite(chunk))
    assert set(np.unique(chunk[:, -1])) <= {-1.0, 1.0}, "gripper is binarised to -1 / +1"
    np.testing.assert_allclose(chunks[0], chunk, atol=1e-5, err_msg="batched and single answers agree")


def test_normalize_round_trip_and_constant_dims():
    values = np.random.default_rng(0).normal(size=(500, 3)) * [1.0, 5.0, 0.0] + [0.0, 2.0, 3.0]
    stats = compute_stats(values)
    y = normalize(values, stats)
    assert y.min() >= -1 and y.max() <= 1 and np.all(y[:, 2] == 0), "clipped; constant dim -> 0"
    inside = (values[:, :2] > stats["q01"][:2]).all(1) & (values[:, :2] < stats["q99"][:2]).all(1)
    np.testing.assert_allclose(unnormalize(y, stats)[inside], values[inside], atol=1e-9)
    assert torch.allclose(normalize(torch.tensor(values), stats), torch.tensor(y))


def test_point_map_backprojects_and_handles_a_mirrored_k():
    k = np.array([[100.0, 0, 30], [0, 120.0, 20], [0, 0, 1]])
    depth = np.random.default_rng(0).uniform(0.5, 2.0, (40, 64)).astype(np.float32)
    points = point_map(depth, k)
    i, j = 7, 11
    expected = [(j + 0.5 - 30) * depth[i, j] / 100, (i + 0.5 - 20) * depth[i, j] / 120, depth[i, j]]
    np.testing.assert_allclose(points[:, i, j], expected, rtol=1e-5)
    mirrored_k = k.copy()
    mirrored_k[0, 0], mirrored_k[0, 2] = -k[0, 0], 64 - k[0, 2]  # the env's horizontal mirror
    mirrored = point_map(np.ascontiguousarray(depth[:, ::-1]), mirrored_k)
    np.testing.assert_allclose(mirrored[:, :, ::-1], points, rtol=1e-5, atol=1e-6)


def test_crop_intrinsics_follow_the_crop():
    k = torch.tensor([[-200.0, 0, 128], [0, 200.0, 128], [0, 0, 1]], dtype=torch.float64)
    box = center_box(256, 256, 0.9)
    k2 = crop_intrinsics(k, box, 64)
    p = torch.tensor([0.1, -0.2, 1.5], dtype=torch.float64)
    u, v = (k @ p)[:2] / p[2]
    u2, v2 = (k2 @ p)[:2] / p[2]
    assert torch.allclose(
        torch.stack([u2, v2]), torch.stack([(u - box[1]) * 64 / box[3], (v - box[0]) * 64 / box[2]])
    )


def test_depth_variant_consumes_point_maps(weird_tmp_path):
    config = TinyVLAConfig(name="tiny_vla_depth", input_geometry="points", **SMALL)
    torch.manual_seed(0)
    path = save_checkpoint(weird_tmp_path / "depth", TinyVLA(config), config, STATS, step=1)
    policy = make_policy({"name": "tiny_vla_depth", "family": "tiny_vla", "input_geometry": "points", **SMALL,
                          "checkpoint": str(path)})
    assert policy.requirements.depth
    obs = synthetic_obs(depth=True)
    batch = policy.make_batch([obs])
    assert batch["geometry"].shape == (1, 2, 3, 32, 32)
    z = batch["geometry"][0, :, 2]
    assert 0.5 <= z.min() and z.max() <= 2.0, "channel 2 of the point map is the depth (m)"
    far = dict(obs, depth={v: d + 1.0 for v, d in obs["depth"].items()})
    before = policy.model(batch)["actions"]
    after = policy.model(policy.make_batch([far]))["actions"]
    assert not torch.allclose(before, after), "actions depend on the geometry input"
    assert np.all(np.isfinite(policy.act(obs)))


def test_overfit_lowers_l1_loss():
    """30 AdamW steps on one tiny batch must cut the L1 loss well below its start."""
    torch.manual_seed(0)
    config = TinyVLAConfig(**SMALL)
    model = TinyVLA(config)
    batch = small_batch(config, batch=2)
    target = (
        torch.rand(2, config.chunk_size, config.action_dim, generator=torch.Generator().manual_seed(1)) * 2
        - 1
    )
    optim = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.l1_loss(model(batch)["actions"], target)
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], f"L1 went {losses[0]:.3f} -> {losses[-1]:.3f}"
