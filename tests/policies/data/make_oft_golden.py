"""Regenerate ``oft_golden.npz``: OpenVLA-OFT's TensorFlow pixel chain on real LIBERO frames and hard cases.

Two steps, in two environments (TensorFlow is **not** a dependency of sfbench and never will be):

1. ``frames`` runs in the project venv (real LIBERO simulator, EGL): renders both views of a few
   tasks of three suites at 256 px through sfbench's env (protocol ``libero_oft``: rotated 180
   degrees, after the wait steps and a few random actions), adds synthetic hard cases (uniform
   noise, a one-pixel checkerboard, colour gradients, a saturated image, 128 px blocks to upsample)
   and writes the inputs::

       MUJOCO_GL=egl .venv/bin/python tests/policies/data/make_oft_golden.py frames /tmp/oft_inputs.npz

2. ``golden`` runs in a scratch venv with ``pip install tensorflow-cpu numpy`` (measured with
   tensorflow-cpu 2.21.0) and applies the chain as OFT's code calls TensorFlow
   (``experiments/robot/openvla_utils.py``: ``resize_image_for_policy``, ``center_crop_image``,
   ``crop_and_resize``; dlimp's ``resize_image`` and ``random_resized_crop`` for training)::

       /tmp/tfvenv/bin/python tests/policies/data/make_oft_golden.py golden /tmp/oft_inputs.npz \\
           tests/policies/data/oft_golden.npz

The fixture holds, per case ``<name>``: ``<name>/input`` (HWC uint8) and ``<name>/eval`` (JPEG round trip,
Lanczos-3 to 224, 90%-area centre crop: what enters OFT's processor); the cases of ``FULL_CASES`` also
``<name>/raw_resized`` (Lanczos-3 of the input without JPEG: demos already stored as JPEG) and
``<name>/train`` (JPEG + Lanczos-3, then ``random_resized_crop``'s crop at the offset
``<name>/train_offset``; the colour jitter that follows it is random and not part of the fixture).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

SIZE = 224
CROP_SCALE = 0.9
SCENES = (("libero_spatial", 0), ("libero_object", 1), ("libero_goal", 2))
RANDOM_STEPS = 12
# Every case gets "eval"; these also get "train" and "raw_resized" (kept few: the fixture stays ~2 MB).
FULL_CASES = ("libero_spatial_t0_agentview", "checkerboard", "saturated", "blocks128")


def synthetic_cases() -> dict[str, np.ndarray]:
    """Inputs that stress each stage: JPEG ringing, Lanczos overshoot and clipping, the crop's grid."""
    rng = np.random.default_rng(25)
    yy, xx = np.mgrid[0:256, 0:256]
    checker = (((yy + xx) % 2) * 255).astype(np.uint8)
    gradient = np.stack([xx, yy, 255 - xx], axis=-1).astype(np.uint8)
    blocks = ((yy[:128, :128] // 8 + xx[:128, :128] // 8) % 2).astype(bool)
    return {
        "noise": rng.integers(0, 256, (256, 256, 3), dtype=np.uint8),
        "checkerboard": np.repeat(checker[..., None], 3, axis=-1),
        "gradient": gradient,
        "saturated": np.where(((yy // 16 + xx // 16) % 2)[..., None] > 0, 255, 0).astype(np.uint8).repeat(3, -1),
        "blocks128": np.where(blocks[..., None], np.array([250, 10, 128], np.uint8), np.uint8(5)),
    }


def render_frames() -> dict[str, np.ndarray]:
    """Both views of one observation of each scene, through sfbench's LIBERO env (real simulator)."""
    from sfbench.config.tree import load_protocol, load_suite
    from sfbench.envs import make_env

    frames, rng = {}, np.random.default_rng(0)
    for suite, task in SCENES:
        env = make_env(load_suite(suite), task, load_protocol("libero_oft"))
        obs, _ = env.reset(options={"init_state_index": 0})
        for _ in range(RANDOM_STEPS):
            obs, *_ = env.step(rng.uniform(-0.5, 0.5, 7).astype(np.float32))
        for view in ("agentview", "wrist"):
            frames[f"{suite}_t{task}_{view}"] = np.ascontiguousarray(obs[view])
        env.close()
    return frames


def tf_chain(image: np.ndarray, offset: float) -> dict[str, np.ndarray]:
    """OFT's TensorFlow calls on one view (``offset`` in [0, 1): the training crop's position)."""
    import tensorflow as tf

    def lanczos(img):  # dlimp.transforms.resize_image == the resize in resize_image_for_policy
        img = tf.image.resize(img, (SIZE, SIZE), method="lanczos3", antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(img), 0, 255), tf.uint8)

    def crop(img, box):  # center_crop_image / dlimp's augment_image around one crop_and_resize
        x = tf.image.convert_image_dtype(img, tf.float32)
        x = tf.image.crop_and_resize(x[None], box, tf.range(1), (SIZE, SIZE))[0]
        return tf.image.convert_image_dtype(tf.clip_by_value(x, 0, 1), tf.uint8, saturate=True)

    decoded = tf.io.decode_image(tf.image.encode_jpeg(tf.constant(image)), expand_animations=False, dtype=tf.uint8)
    resized = lanczos(decoded)
    side = tf.reshape(tf.clip_by_value(tf.sqrt(CROP_SCALE), 0, 1), (1,))
    centre = (1 - side) / 2
    train = tf.constant([offset], tf.float32) * (1 - side)  # stateless_uniform(0, 1 - side); same draw for x and y
    return {
        "resized": resized.numpy(),
        "eval": crop(resized, tf.stack([centre, centre, centre + side, centre + side], axis=1)).numpy(),
        "raw_resized": lanczos(tf.constant(image)).numpy(),
        "train": crop(resized, tf.stack([train, train, train + side, train + side], axis=1)).numpy(),
        "train_offset": np.float32(offset),
    }


def main() -> None:
    """``frames OUT`` (project venv) or ``golden INPUTS OUT`` (TensorFlow venv)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    frames = sub.add_parser("frames", help="render the inputs (project venv, EGL)")
    frames.add_argument("out", type=Path)
    golden = sub.add_parser("golden", help="apply TensorFlow's chain (a venv with tensorflow-cpu)")
    golden.add_argument("inputs", type=Path)
    golden.add_argument("out", type=Path)
    args = parser.parse_args()
    if args.step == "frames":
        np.savez_compressed(args.out, **render_frames(), **synthetic_cases())
        return
    offsets = np.random.default_rng(7).uniform(0, 1, 64).astype(np.float32)
    offsets[:2] = 0.0, np.nextafter(np.float32(1), np.float32(0))  # the crop at either extreme
    fixture = {}
    with np.load(args.inputs) as inputs:
        for i, name in enumerate(sorted(inputs.files)):
            fixture[f"{name}/input"] = inputs[name]
            outputs = tf_chain(inputs[name], float(offsets[i]))
            for key in ("eval", "train", "raw_resized", "train_offset") if name in FULL_CASES else ("eval",):
                fixture[f"{name}/{key}"] = outputs[key]
    np.savez_compressed(args.out, **fixture)


if __name__ == "__main__":
    main()
