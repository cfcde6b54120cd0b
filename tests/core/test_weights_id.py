"""A checkpoint's identity is its tensors: re-sharding identical weights keeps it, any other change does not."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from sfbench.core.errors import InvalidConfig
from sfbench.core.weights_id import weights_id


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"a.weight": torch.randn(4, 3, generator=g), "b.bias": torch.randn(5, generator=g),
            "c.scale": torch.randn(2, 2, generator=g).to(torch.bfloat16), "d.step": torch.tensor(3)}


def test_resharding_identical_weights_keeps_the_id(tmp_path):
    t = _tensors()
    save_file(t, tmp_path / "model.safetensors")
    save_file({k: t[k] for k in ("c.scale", "a.weight")}, tmp_path / "model-00001-of-00002.safetensors",
              metadata={"format": "pt", "note": "other metadata"})
    save_file({k: t[k] for k in ("d.step", "b.bias")}, tmp_path / "model-00002-of-00002.safetensors")
    one = weights_id([tmp_path / "model.safetensors"])
    two = weights_id([tmp_path / "model-00002-of-00002.safetensors", tmp_path / "model-00001-of-00002.safetensors"])
    assert one == two, "the same tensors in two shards, another order and metadata: the same weights"


@pytest.mark.parametrize("change", ["value", "dtype", "shape", "name"])
def test_any_change_of_a_tensor_changes_the_id(tmp_path, change):
    t = _tensors()
    save_file(t, tmp_path / "base.safetensors")
    other = dict(t)
    if change == "value":
        other["b.bias"] = t["b.bias"].clone()
        other["b.bias"][0] += 1e-6
    elif change == "dtype":
        other["a.weight"] = t["a.weight"].double()
    elif change == "shape":
        other["a.weight"] = t["a.weight"].reshape(3, 4).contiguous()
    else:
        other["a.w"] = other.pop("a.weight")
    save_file(other, tmp_path / "other.safetensors")
    assert weights_id([tmp_path / "base.safetensors"]) != weights_id([tmp_path / "other.safetensors"])


def test_torch_heads_are_hashed_by_tensor_with_their_kind_and_not_their_step(tmp_path):
    head = {"fc.weight": torch.randn(3, 3), "fc.bias": torch.zeros(3)}
    torch.save(head, tmp_path / "action_head--100_checkpoint.pt")
    (tmp_path / "later").mkdir()
    torch.save(dict(reversed(head.items())), tmp_path / "later" / "action_head--200_checkpoint.pt")
    torch.save(head, tmp_path / "proprio_projector--100_checkpoint.pt")
    assert weights_id([tmp_path / "action_head--100_checkpoint.pt"]) == \
        weights_id([tmp_path / "later" / "action_head--200_checkpoint.pt"])
    assert weights_id([tmp_path / "action_head--100_checkpoint.pt"]) != \
        weights_id([tmp_path / "proprio_projector--100_checkpoint.pt"])


def test_damaged_weight_files_are_one_clear_error(tmp_path):
    save_file(_tensors(), tmp_path / "model.safetensors")
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:-7])
    (tmp_path / "junk.safetensors").write_bytes(b"\x05" * 40)
    (tmp_path / "head--1_checkpoint.pt").write_bytes(b"not a zip")
    for name, expected in [("cut.safetensors", "is truncated"), ("junk.safetensors", "not a safetensors file"),
                           ("head--1_checkpoint.pt", "not a torch state dict")]:
        with pytest.raises(InvalidConfig, match=expected):
            weights_id([tmp_path / name])
