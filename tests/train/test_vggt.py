"""VGGT's aggregator in plain torch: the model.pt key layout, shapes read from weights, RoPE, multi-view."""

from __future__ import annotations

import pytest
import torch

from sfbench.core.errors import InvalidConfig
from sfbench.train.teachers import VGGTTeacher
from sfbench.train.vggt import Aggregator, AggregatorShape, load_aggregator, rope_2d

TINY = AggregatorShape(dim=32, depth=2, heads=2, embed_depth=2, embed_heads=2, image_size=56)


@pytest.fixture
def model_pt(tmp_path):
    torch.manual_seed(0)
    model = Aggregator(TINY)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    state = {f"aggregator.{k}": v for k, v in model.state_dict().items()}
    state |= {"camera_head.trunk.0.weight": torch.zeros(2), "depth_head.proj.weight": torch.zeros(2)}
    torch.save(state, tmp_path / "model.pt")
    return tmp_path / "model.pt", model


def test_model_pt_keys_follow_vggt(model_pt):
    _, model = model_pt
    keys = set(model.state_dict())
    for key in ("patch_embed.register_tokens", "patch_embed.mask_token", "patch_embed.pos_embed",
                "patch_embed.patch_embed.proj.weight", "patch_embed.blocks.1.ls1.gamma", "patch_embed.norm.weight",
                "frame_blocks.1.attn.q_norm.weight", "global_blocks.0.attn.k_norm.bias", "camera_token",
                "register_token"):
        assert key in keys, key
    assert model.state_dict()["patch_embed.pos_embed"].shape == (1, 1 + 16, 32)


def test_loading_drops_the_heads_and_reads_the_shape_from_the_weights(model_pt):
    path, model = model_pt
    loaded = load_aggregator(path, heads=2, embed_heads=2)
    assert loaded.shape == TINY
    x = torch.rand(1, 2, 3, 56, 56)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


def test_teacher_features_are_last_layer_patch_tokens_per_view(model_pt):
    path, _ = model_pt
    teacher = VGGTTeacher(str(path), heads=2, embed_heads=2)
    images = torch.rand(2, 2, 3, 64, 64)
    feats = teacher.features(images)
    assert teacher.feature_dim == 64 and feats.shape == (2, 2, 64, 4, 4)
    changed = images.clone()
    changed[:, 1] = torch.rand(2, 3, 64, 64)
    assert not torch.allclose(teacher.features(changed)[:, 0], feats[:, 0]), "global attention couples the views"


def test_rope_depends_only_on_relative_positions():
    q, k = torch.randn(1, 2, 1, 8), torch.randn(1, 2, 1, 8)
    p, r = torch.tensor([[[3, 5]]]), torch.tensor([[[1, 2]]])
    shift = torch.tensor([[[4, 7]]])

    def score(a, b):
        return (rope_2d(q, a) * rope_2d(k, b)).sum()

    assert torch.allclose(score(p, r), score(p + shift, r + shift), atol=1e-5)
    assert not torch.allclose(score(p, r), score(p, r + shift), atol=1e-3)


def test_a_file_without_aggregator_weights_is_one_clear_error(tmp_path):
    torch.save({"depth_head.proj.weight": torch.zeros(1)}, tmp_path / "heads.pt")
    with pytest.raises(InvalidConfig, match="no aggregator.\\* tensors.*depth_head"):
        load_aggregator(tmp_path / "heads.pt")
