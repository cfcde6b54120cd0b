"""Spatial Forcing math: loss values, gradient flow, resampling order and the position embedding."""

from __future__ import annotations

import pytest
import torch

from sfbench.train.align import (
    AlignProjector,
    SpatialForcing,
    alignment_loss,
    resample_to_grid,
    sincos_pos_embed_2d,
)


def test_identical_features_give_zero_loss():
    x = torch.randn(2, 10, 16)
    assert alignment_loss(x, x.clone()).item() == pytest.approx(0.0, abs=1e-6)
    assert alignment_loss(x, 3.0 * x).item() == pytest.approx(0.0, abs=1e-6), "cosine ignores scale"
    assert alignment_loss(x, -x).item() == pytest.approx(2.0, abs=1e-6)


def test_orthogonal_features_give_loss_one():
    a = torch.zeros(1, 4, 8)
    b = torch.zeros(1, 4, 8)
    a[..., 0], b[..., 1] = 1.0, 1.0
    assert alignment_loss(a, b).item() == pytest.approx(1.0)


def test_loss_averages_tokens_then_batch():
    a = torch.ones(2, 2, 4)
    target = torch.ones(2, 2, 4)
    target[0, 0] = -1.0  # sample 0: cos = (-1 + 1) / 2 = 0 -> loss 1; sample 1: loss 0
    assert alignment_loss(a, target).item() == pytest.approx(0.5)


def test_gradient_reaches_projector_and_vla_but_not_teacher():
    sf = SpatialForcing(vla_dim=16, teacher_dim=8, layer=3, alpha=0.5)
    hidden = torch.randn(2, 2 * 4 * 4, 16, requires_grad=True)
    teacher = torch.randn(2, 2, 8, 9, 9, requires_grad=True)
    loss, metrics = sf.loss(hidden, (2, 4, 4), teacher)
    loss.backward()
    assert teacher.grad is None, "the frozen teacher gets no gradient"
    assert hidden.grad is not None and hidden.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in sf.projector.parameters())
    assert loss.item() == pytest.approx(0.5 * metrics["align_loss"], rel=1e-5), (
        "returned loss is alpha-weighted"
    )
    assert metrics["align_cos"] == pytest.approx(1 - metrics["align_loss"])


def test_projector_init_matches_official_code():
    proj = AlignProjector(16, 32)
    linears = [m for m in proj.modules() if isinstance(m, torch.nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(32, 16), (32, 32)], "hidden width defaults to D_t"
    assert all(torch.count_nonzero(m.bias) == 0 for m in linears)
    assert isinstance(proj.net[0], torch.nn.LayerNorm)
    assert proj(torch.randn(3, 5, 16)).shape == (3, 5, 32)


def test_resample_37_to_16_is_view_major_row_major():
    b, v, h = 2, 2, 37
    ramp = torch.linspace(0, 1, h)
    teacher = torch.zeros(b, v, 3, h, h)
    teacher[:, 1, 0] = 1.0  # channel 0: view index
    teacher[:, :, 1] = ramp[:, None]  # channel 1: row coordinate
    teacher[:, :, 2] = ramp[None, :]  # channel 2: column coordinate
    out = resample_to_grid(teacher, (2, 16, 16))
    assert out.shape == (b, v * 16 * 16, 3)
    view, row, col = 1, 5, 9
    token = out[0, view * 256 + row * 16 + col]
    assert torch.allclose(token, torch.tensor([1.0, row / 15, col / 15]), atol=1e-5), (
        "align_corners=True keeps ramps"
    )


def test_resample_rejects_a_view_mismatch():
    with pytest.raises(ValueError, match="views"):
        resample_to_grid(torch.zeros(1, 3, 4, 8, 8), (2, 4, 4))


def test_position_embedding_has_the_requested_scale():
    pe = sincos_pos_embed_2d(64, 37, 37)
    assert pe.shape == (64, 37, 37) and pe.abs().max() <= 1.0 + 1e-6
    out = resample_to_grid(torch.zeros(1, 1, 64, 37, 37), (1, 16, 16), pe_scale=0.1)
    assert 0.09 < out.abs().max().item() <= 0.1 + 1e-6
    assert resample_to_grid(torch.zeros(1, 1, 64, 37, 37), (1, 16, 16)).abs().max() == 0, "no PE by default"
    tokens = pe.flatten(1).T
    assert torch.unique(tokens, dim=0).shape[0] == 37 * 37, "every position gets a distinct code"
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_pos_embed_2d(30, 4, 4)


def test_use_pe_false_disables_the_embedding():
    assert SpatialForcing(8, 8, layer=1, use_pe=False).pe_scale == 0.0
    assert SpatialForcing(8, 8, layer=1).pe_scale == 0.1
