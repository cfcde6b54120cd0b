"""Frozen teachers: exact geometry, shapes, determinism, error paths and the feature cache."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from sfbench.core.errors import MissingAsset, UnknownChoice
from sfbench.train.teachers import DinoV2Teacher, FeatureCache, GeometryTeacher, VGGTTeacher, make_teacher

H = W = 32
K = torch.tensor([[40.0, 0, 16], [0, 40.0, 16], [0, 0, 1]], dtype=torch.float64)


def rotation_z(angle: float) -> torch.Tensor:
    c, s = np.cos(angle), np.sin(angle)
    return torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=torch.float64)


def plane_scene(z0: float = 2.0) -> dict[str, torch.Tensor]:
    """Two views of a fronto-parallel plane at depth z0; view 1 is rotated and shifted."""
    pose = torch.eye(4, dtype=torch.float64).repeat(1, 2, 1, 1)
    pose[0, 1, :3, :3] = rotation_z(0.3)
    pose[0, 1, :3, 3] = torch.tensor([0.5, -0.2, 1.0])
    return {
        "depth": torch.full((1, 2, H, W), z0, dtype=torch.float64),
        "intrinsics": K.repeat(1, 2, 1, 1),
        "extrinsics": pose,
    }


def test_world_points_of_a_plane_are_exact():
    scene = plane_scene()
    world = GeometryTeacher().world_points(scene)
    assert world.shape == (1, 2, 3, H, W)
    i, j = 5, 20
    cam = torch.tensor([(j + 0.5 - 16) * 2.0 / 40, (i + 0.5 - 16) * 2.0 / 40, 2.0], dtype=torch.float64)
    assert torch.allclose(world[0, 0, :, i, j], cam)
    expected = rotation_z(0.3) @ cam + torch.tensor([0.5, -0.2, 1.0], dtype=torch.float64)
    assert torch.allclose(world[0, 1, :, i, j], expected)
    assert torch.allclose(world[0, 1, 2], torch.full((H, W), 3.0, dtype=torch.float64)), "plane z = 2 + 1"


def test_patch_normals_of_a_plane_face_the_camera_axis():
    inputs = GeometryTeacher(grid=4).patch_inputs(plane_scene())
    assert inputs.shape == (1, 2, 7, 4, 4), "XYZ + depth + normal"
    normals = inputs[0, 0, 4:].flatten(1)
    assert torch.allclose(
        normals.abs(), torch.tensor([[0.0], [0.0], [1.0]], dtype=torch.float64).expand(3, 16)
    )


def test_features_have_the_documented_shape_and_are_deterministic():
    scene = plane_scene()
    images = torch.rand(1, 2, 3, H, W)
    a = GeometryTeacher(feature_dim=64, grid=16, seed=3).features(images, scene)
    b = GeometryTeacher(feature_dim=64, grid=16, seed=3).features(images, scene)
    c = GeometryTeacher(feature_dim=64, grid=16, seed=4).features(images, scene)
    assert a.shape == (1, 2, 64, 16, 16) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert make_teacher("geometry").feature_dim == 256 and make_teacher("geometry").requires_geometry


def test_geometry_teacher_needs_geometry():
    with pytest.raises(ValueError, match="geometry"):
        GeometryTeacher().features(torch.rand(1, 2, 3, H, W), None)


def test_nearby_patches_have_more_similar_features():
    scene = plane_scene()
    scene["depth"] = scene["depth"] + torch.linspace(0, 1, W, dtype=torch.float64)  # tilted plane
    f = GeometryTeacher(feature_dim=512, grid=8).features(torch.zeros(1, 2, 3, H, W), scene)[0, 0]
    cos = torch.nn.functional.cosine_similarity
    assert cos(f[:, 4, 3], f[:, 4, 4], dim=0) > cos(f[:, 4, 0], f[:, 4, 7], dim=0)


def test_unknown_teacher_lists_the_choices():
    with pytest.raises(UnknownChoice, match="dinov2, geometry, vggt"):
        make_teacher("vgtt")


def test_vggt_missing_weights_names_the_path(weird_tmp_path):
    path = weird_tmp_path / "VGGT-1B" / "model.pt"
    with pytest.raises(MissingAsset, match="VGGT-1B"):
        VGGTTeacher(str(path))


def test_dinov2_error_paths(monkeypatch, weird_tmp_path):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MissingAsset, match="pip install transformers"):
        DinoV2Teacher(str(weird_tmp_path))
    fake = types.ModuleType("transformers")
    fake.Dinov2Model = object
    monkeypatch.setitem(sys.modules, "transformers", fake)
    with pytest.raises(MissingAsset, match="dinov2-small"):
        DinoV2Teacher(str(weird_tmp_path / "dinov2-small"))


def test_feature_cache_computes_once_per_content(weird_tmp_path):
    teacher = GeometryTeacher(feature_dim=16, grid=4)
    cache = FeatureCache(weird_tmp_path / "cache", teacher)
    scene = plane_scene()
    calls = []

    def compute():
        calls.append(1)
        return teacher.features(torch.zeros(1, 2, 3, H, W), scene)

    keys = [scene["depth"], scene["intrinsics"], scene["extrinsics"]]
    first = cache.get_or_compute(keys, compute)
    second = cache.get_or_compute(keys, compute)
    assert len(calls) == 1 and torch.equal(first, second)
    cache.get_or_compute([scene["depth"] + 0.1, *keys[1:]], compute)
    assert len(calls) == 2, "different inputs miss the cache"
    other = FeatureCache(weird_tmp_path / "cache", GeometryTeacher(feature_dim=16, grid=4, seed=1))
    assert other.key(keys) != cache.key(keys), "teacher settings are part of the key"
    assert not list((weird_tmp_path / "cache").glob("*.tmp*")), "no temporary files left"
