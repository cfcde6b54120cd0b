"""OFT's pixel chain without TensorFlow, against TensorFlow's own output (``data/oft_golden.npz``).

The fixture was made by ``data/make_oft_golden.py`` with tensorflow-cpu 2.21.0 (never an sfbench
dependency): real LIBERO frames of three suites (both views, 256 px, sfbench's env) and synthetic
hard cases. The bound asserted is the issue's: within 1 level, on at most 0.1% of the values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from sfbench.config.compose import compose_config
from sfbench.core.errors import InvalidConfig
from sfbench.policies import make_policy_config
from sfbench.policies.openvla_oft import OpenVLAOFTConfig
from sfbench.policies.openvla_oft.processing import (
    crop_box,
    crop_float,
    crop_pixel_box,
    image_pixels,
    policy_image,
    resized_view,
    tower_channels,
)
from sfbench.policies.openvla_oft.tf_image import (
    _spans,
    float_to_uint8,
    jpeg_round_trip,
    resize_lanczos3,
    resize_lanczos3_float,
    uint8_to_float,
)
from sfbench.policies.openvla_oft.tiny import preprocessor_config
from sfbench.policies.openvla_oft.training import training_pixels

GOLDEN = np.load(Path(__file__).parent / "data" / "oft_golden.npz")
CASES = sorted({k.split("/")[0] for k in GOLDEN.files})
FULL = sorted({k.split("/")[0] for k in GOLDEN.files if k.endswith("/train")})
REAL = [c for c in CASES if c.startswith("libero_")]


def _assert_within_bound(mine: np.ndarray, tf: np.ndarray, what: str) -> None:
    assert mine.shape == tf.shape and mine.dtype == np.uint8, what
    diff = np.abs(mine.astype(np.int16) - tf.astype(np.int16))
    assert diff.max() <= 1, f"{what}: {diff.max()} levels from TensorFlow"
    assert (diff > 0).mean() <= 1e-3, f"{what}: {(diff > 0).mean():.4%} of the values differ from TensorFlow"


def test_the_fixture_covers_three_suites_both_views_and_hard_cases():
    assert {c.rsplit("_", 2)[0] for c in REAL} == {"libero_spatial", "libero_object", "libero_goal"}
    assert {c.rsplit("_", 1)[1] for c in REAL} == {"agentview", "wrist"}
    assert {"noise", "checkerboard", "gradient", "saturated", "blocks128"} <= set(CASES)


@pytest.mark.parametrize("case", CASES)
def test_policy_image_is_tensorflows_evaluation_chain(case):
    _assert_within_bound(policy_image(GOLDEN[f"{case}/input"], center_crop=True), GOLDEN[f"{case}/eval"], case)


@pytest.mark.parametrize("case", FULL)
def test_the_resize_alone_is_tensorflows_lanczos3(case):
    _assert_within_bound(resize_lanczos3(GOLDEN[f"{case}/input"], 224), GOLDEN[f"{case}/raw_resized"], case)


@pytest.mark.parametrize("case", FULL)
def test_the_training_crop_is_dlimps_random_resized_crop(case):
    offset = float(GOLDEN[f"{case}/train_offset"])
    mine = float_to_uint8(crop_float(resized_view(GOLDEN[f"{case}/input"]), offset)).permute(1, 2, 0).numpy()
    _assert_within_bound(mine, GOLDEN[f"{case}/train"], f"{case} at offset {offset}")


def test_each_stage_matters_on_a_real_frame():
    """Dropping the JPEG round trip, or rounding instead of truncating, leaves the bound: the test can fail."""
    view, tf = GOLDEN[f"{REAL[0]}/input"], GOLDEN[f"{REAL[0]}/eval"]
    no_jpeg = float_to_uint8(crop_float(resize_lanczos3(view, 224))).permute(1, 2, 0).numpy()
    rounded = np.rint(crop_float(resized_view(view)).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    for wrong in (no_jpeg, rounded):
        assert (np.abs(wrong.astype(int) - tf.astype(int)) > 0).mean() > 1e-2


def test_the_jpeg_round_trip_is_lossy_but_keeps_shape():
    view = GOLDEN["noise/input"]
    decoded = jpeg_round_trip(view)
    assert decoded.shape == view.shape and decoded.dtype == np.uint8 and not np.array_equal(decoded, view)


def test_without_centre_crop_the_image_is_the_resized_view():
    view = GOLDEN[f"{REAL[1]}/input"]
    assert np.array_equal(policy_image(view, center_crop=False), resized_view(view))


def test_processor_pixels_are_the_policy_image_normalised_per_tower():
    stats = tuple((p["mean"], p["std"]) for p in preprocessor_config()["tvf_normalize_params"])
    view = GOLDEN[f"{REAL[2]}/input"]
    pixels = image_pixels([view, GOLDEN["noise/input"]], stats, center_crop=True)
    expected = tower_channels(torch.from_numpy(GOLDEN[f"{REAL[2]}/eval"]).permute(2, 0, 1).float() / 255, stats)
    assert pixels.shape == (2, 6, 224, 224)
    assert (pixels[0] - expected).abs().max() < 0.05  # at most 1 level (of 255) off, in normalised units
    assert torch.allclose(pixels[0, :3] * torch.tensor(stats[0][1]).view(3, 1, 1) + torch.tensor(stats[0][0]).view(
        3, 1, 1), pixels[0, 3:] * torch.tensor(stats[1][1]).view(3, 1, 1) + torch.tensor(stats[1][0]).view(3, 1, 1),
        atol=1e-5), "both towers see the same image"


def test_crop_boxes_are_centred_or_slide_along_the_diagonal():
    y1, x1, y2, x2 = (float(v) for v in crop_box(None))
    assert y1 == x1 and abs(y1 + y2 - 1) < 1e-6 and abs((y2 - y1) ** 2 - 0.9) < 1e-6
    top, left, h, w = crop_pixel_box(None, 256, 256)
    assert abs(top + h / 2 - 128) < 1e-3 and abs(h - 256 * 0.9 ** 0.5) < 1e-3 and top == left
    assert crop_pixel_box(0.0, 256, 256)[0] < top < crop_pixel_box(0.999, 256, 256)[0]


def test_training_pixels_follow_the_chain_and_skip_jpeg_for_jpeg_frames():
    view = GOLDEN["libero_spatial_t0_agentview/input"]
    items = [{"images": np.stack([view, view])}, {"images": np.stack([view, view]), "images_jpeg": True}]
    gen = torch.Generator().manual_seed(0)
    pixels, boxes = training_pixels(items, None, gen)
    assert pixels.shape == (2, 2, 3, 224, 224) and len(boxes) == 2 and len(boxes[0]) == 2
    eval_image = torch.from_numpy(GOLDEN["libero_spatial_t0_agentview/eval"]).permute(2, 0, 1).float() / 255
    assert torch.equal(pixels[0, 0], eval_image), "without augmentation, training sees the evaluation pixels"
    raw = float_to_uint8(crop_float(resize_lanczos3(view, 224))).float() / 255
    assert torch.equal(pixels[1, 0], raw), "frames decoded from JPEG are not JPEG-encoded again"


def test_augmented_training_pixels_are_random_crops_in_range():
    view = GOLDEN["libero_object_t1_agentview/input"]

    class Jitter:
        brightness, contrast, saturation, hue = 0.2, 0.2, 0.2, 0.05

    gen = torch.Generator().manual_seed(3)
    pixels, boxes = training_pixels([{"images": np.stack([view, view])}], Jitter(), gen)
    assert pixels.min() >= 0 and pixels.max() <= 1 and boxes[0][0] != boxes[0][1]
    assert torch.equal(pixels * 255, (pixels * 255).round()), "views are uint8 levels, as dlimp returns them"
    assert not torch.equal(pixels[0, 0], pixels[0, 1])


def test_uint8_conversions_are_tensorflows():
    u = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(float_to_uint8(uint8_to_float(u)), u)
    assert np.array_equal(uint8_to_float(u).numpy(), u.numpy().astype(np.float32) * np.float32(1 / 255))
    assert float_to_uint8(torch.tensor([0.998])) == 254  # 0.998 * 255.5 = 254.99: truncated, not rounded


@pytest.mark.parametrize("policy", ["openvla_oft", "openvla_sf", "openvla_3d"])
def test_every_oft_family_config_names_its_image_chain(policy):
    config = make_policy_config(OmegaConf.to_container(compose_config("eval", [f"policy={policy}"]).policy))
    assert config.image_chain == "oft_tf"


def test_an_unknown_image_chain_is_one_clear_error():
    with pytest.raises(InvalidConfig, match="policy.image_chain='torch' .* choices: oft_tf"):
        OpenVLAOFTConfig(image_chain="torch")


def test_the_sparse_resize_adds_taps_in_tensorflows_order():
    """The CSR product equals a tap-by-tap float32 loop bit for bit (a BLAS or FMA reordering would not)."""
    image = GOLDEN["noise/input"].astype(np.float32)
    index, weights = _spans(256, 224)
    rows = np.zeros((224, 256, 3), np.float32)
    for k in range(index.shape[1]):
        rows += weights[:, k, None, None] * image[index[:, k]]
    loop = np.zeros((224, 224, 3), np.float32)
    for k in range(index.shape[1]):
        loop += weights[None, :, k, None] * rows[:, index[:, k]]
    assert np.array_equal(resize_lanczos3_float(image, 224), loop)


def test_dataset_items_say_which_frames_were_stored_as_jpeg():
    """RLDS frames (JPEG) skip the chain's JPEG round trip; LeRobot's PNG frames do not."""
    from sfbench.train.data.dataset import DataConfig, load_dataset

    data = Path(__file__).parents[1] / "train" / "data"
    rlds, _ = load_dataset(DataConfig(path=str(data / "rlds")))
    lerobot, _ = load_dataset(DataConfig(path=str(data / "lerobot_v30_images")))
    assert rlds[0]["images_jpeg"] == (True, True)
    assert lerobot[0]["images_jpeg"] == (False, False)
