"""TensorFlow's image operations in OFT's pixel chain, re-implemented in numpy (no TensorFlow at run time).

OpenVLA-OFT prepares every view with TensorFlow, at training (RLDS + dlimp) and at evaluation
(``resize_image_for_policy``, ``center_crop_image``); a checkpoint has only ever seen those pixels.
The four operations it uses, each written from TensorFlow's documented kernel behaviour:

* :func:`jpeg_round_trip` -- ``tf.image.encode_jpeg`` (quality 95, 4:2:0 chroma) then
  ``tf.io.decode_image``, whose libjpeg IDCT is the fast integer one (``JDCT_IFAST``) with fancy
  upsampling. Pillow writes the same coefficients; simplejpeg (libjpeg-turbo) decodes them with the
  same IDCT, which Pillow cannot select (its accurate IDCT is up to 19 levels away).
* :func:`resize_lanczos3` -- ``tf.image.resize(method="lanczos3", antialias=True)`` (the
  ``ScaleAndTranslate`` kernel: per output pixel a span of input pixels with normalised Lanczos-3
  weights, the kernel widened by the downscale factor; rows first, then columns; float32 products
  accumulated tap by tap), then ``round`` (half to even), clip and uint8, as dlimp's ``resize_image``.
* :func:`crop_and_resize` -- ``tf.image.crop_and_resize`` (bilinear, corner-aligned: output row
  ``i`` samples input row ``y1 (H - 1) + i (y2 - y1) (H - 1) / (size - 1)``), in torch.
* :func:`uint8_to_float` / :func:`float_to_uint8` -- ``tf.image.convert_image_dtype``: ``u * (1/255)``
  on the way in, ``saturate_cast(x * 255.5)`` (a truncation, not a rounding) on the way out, in torch.

Every step keeps TensorFlow's float32 operation order, so the results are TensorFlow's bit for bit
but for float ties (measured against tensorflow-cpu 2.21: ``tests/policies/data/make_oft_golden.py``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import simplejpeg
import torch
from PIL import Image
from scipy import sparse

F32 = np.float32
JPEG_QUALITY = 95  # tf.image.encode_jpeg's default
LANCZOS_RADIUS = F32(3.0)
_PI = F32(3.14159265359)  # the kernel's own constant (float), not numpy's pi


def jpeg_round_trip(image: np.ndarray) -> np.ndarray:
    """HWC uint8 RGB -> the same image JPEG-encoded and decoded as TensorFlow's defaults do it."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=2)
    return simplejpeg.decode_jpeg(buffer.getvalue(), colorspace="RGB", fastdct=True, fastupsample=False)


@lru_cache(maxsize=1)
def _sinf() -> Callable[[float], float]:
    """The C library's single-precision sine, which TensorFlow's kernel calls (``std::sin(float)``).

    A double sine rounded to float differs from glibc's ``sinf`` in the last bit for about 4% of
    the weights of a 256 -> 224 resize; with ``sinf`` every weight is TensorFlow's. Where no C
    library can be loaded, the double sine stands in.
    """
    try:
        libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        sinf = libm.sinf
    except (OSError, AttributeError):
        return math.sin
    sinf.restype, sinf.argtypes = ctypes.c_float, [ctypes.c_float]
    return sinf


def _lanczos3(x: np.float32) -> np.float32:
    """TensorFlow's Lanczos-3 sampling kernel, in its float32 operation order."""
    x = abs(x)
    if x > LANCZOS_RADIUS:
        return F32(0.0)
    if float(x) <= 1e-3:  # C++ compares the float with the double 1e-3
        return F32(1.0)
    a = _PI * x
    sin = _sinf()
    num = LANCZOS_RADIUS * F32(sin(float(a))) * F32(sin(float(a / LANCZOS_RADIUS)))
    return num / (_PI * _PI * x * x)


@lru_cache(maxsize=16)
def _spans(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Input indices (out, span) and normalised weights (out, span) of an antialiased Lanczos-3 resize.

    Taps past a span's end get weight 0 (and a valid index); they are not part of the sum.
    """
    scale = F32(out_size) / F32(in_size)
    inv_scale = F32(1.0 / float(scale))
    kernel_scale = max(inv_scale, F32(1.0))
    reach = LANCZOS_RADIUS * kernel_scale
    span = min(2 * math.ceil(reach) + 1, in_size)
    one_over_kernel_scale = F32(1.0) / kernel_scale
    index = np.zeros((out_size, span), np.int64)
    weights = np.zeros((out_size, span), F32)
    for x in range(out_size):
        sample = (F32(x) + F32(0.5)) * inv_scale
        if sample < 0 or sample > in_size:
            continue
        start = min(max(math.ceil(sample - reach - F32(0.5)), 0), in_size - 1)
        end = min(max(math.floor(sample + reach - F32(0.5)), 0), in_size - 1) + 1
        taps = [_lanczos3((F32(s) + F32(0.5) - sample) * one_over_kernel_scale) for s in range(start, end)]
        total = F32(0.0)
        for w in taps:
            total = total + w
        norm = F32(1.0) / total
        weights[x, : len(taps)] = [w * norm for w in taps]
        index[x] = np.minimum(np.arange(start, start + span), in_size - 1)
    return index, weights


@lru_cache(maxsize=16)
def _resize_matrix(in_size: int, out_size: int) -> sparse.csr_matrix:
    """The (out, in) float32 matrix of :func:`_spans`, each row's taps stored in ascending input order.

    scipy's CSR x dense product adds a row's taps one by one, in stored order, in the matrix's
    dtype and without fused multiply-adds: TensorFlow's ``GatherRows`` order, so the float32 sums
    are TensorFlow's (checked bit for bit against a tap-by-tap numpy loop on the golden fixture).
    """
    index, weights = _spans(in_size, out_size)
    rows, cols, values = [], [], []
    for i in range(out_size):
        keep = weights[i] != 0  # the span's padding taps (weight 0) add nothing
        rows += [i] * int(keep.sum())
        cols += index[i][keep].tolist()
        values += weights[i][keep].tolist()
    return sparse.csr_matrix((np.asarray(values, F32), (rows, cols)), shape=(out_size, in_size))


def resize_lanczos3_float(image: np.ndarray, size: int) -> np.ndarray:
    """HWC image -> (size, size, C) float32, ``tf.image.resize(..., "lanczos3", antialias=True)``.

    Rows first, then columns (on the transposed intermediate), as TensorFlow's ``GatherSpans``.
    """
    h, w, c = image.shape
    x = _resize_matrix(h, size) @ image.astype(F32).reshape(h, w * c)
    x = torch.from_numpy(x).view(size, w, c).transpose(0, 1).contiguous().numpy()  # torch's copy: 2.5x numpy's
    x = _resize_matrix(w, size) @ x.reshape(w, size * c)
    return x.reshape(size, size, c).transpose(1, 0, 2)  # a view: stored column after column


def resize_lanczos3(image: np.ndarray, size: int) -> np.ndarray:
    """HWC uint8 -> (size, size, C) uint8: Lanczos-3 resize, round half to even, clip (dlimp's ``resize_image``)."""
    return np.clip(np.rint(resize_lanczos3_float(image, size)), 0, 255).astype(np.uint8)


def uint8_to_float(image: torch.Tensor) -> torch.Tensor:
    """``tf.image.convert_image_dtype(uint8 -> float32)``: ``u * float32(1 / 255)``."""
    return image.float().mul_(1 / 255)


def float_to_uint8(image: torch.Tensor) -> torch.Tensor:
    """``tf.image.convert_image_dtype(float32 -> uint8, saturate=True)``: truncation of ``x * 255.5``."""
    return (image.float() * 255.5).clamp_(0, 255).to(torch.uint8)


@lru_cache(maxsize=64)
def _bilinear_taps(start: float, end: float, in_size: int, out_size: int,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per output sample along one axis: the input indices below and above it and its float32 lerp weight.

    The samples are corner-aligned, as ``crop_and_resize`` places them: sample ``i`` is at
    ``start (in - 1) + i (end - start) (in - 1) / (out - 1)``, in float32.
    """
    step = (F32(end) - F32(start)) * F32(in_size - 1) / F32(out_size - 1)
    pos = F32(start) * F32(in_size - 1) + np.arange(out_size, dtype=F32) * step
    if pos.min() < 0 or pos.max() > in_size - 1:
        raise ValueError(f"crop box [{start}, {end}] reaches outside the image")
    low = np.floor(pos)
    return (torch.from_numpy(low.astype(np.int64)), torch.from_numpy(np.ceil(pos).astype(np.int64)),
            torch.from_numpy(pos - low))


def crop_and_resize(image: torch.Tensor, box: tuple[float, float, float, float], size: int) -> torch.Tensor:
    """HWC float32 -> (C, size, size): ``tf.image.crop_and_resize`` of one normalised box (y1, x1, y2, x2).

    Channels come out first, as the processor takes them. The box must lie inside the image, as
    every OFT crop does (TensorFlow's zero extrapolation of samples outside it is not reproduced).
    """
    h, w = image.shape[:2]
    y1, x1, y2, x2 = (float(v) for v in box)
    top, bottom, y_lerp = _bilinear_taps(y1, y2, h, size)
    left, right, x_lerp = _bilinear_taps(x1, x2, w, size)
    # Per sample TensorFlow computes top = tl + (tr - tl) * x_lerp, bottom likewise, then
    # top + (bottom - top) * y_lerp: the same float32 operations, done along every input row first,
    # each on a transposed copy so that every gather takes whole rows (no copy for an image stored
    # column after column, as resize_lanczos3 returns it).
    columns = image.transpose(0, 1).contiguous()  # (W, H, C)
    left_px = columns.index_select(0, left)
    across = columns.index_select(0, right).sub_(left_px).mul_(x_lerp.view(-1, 1, 1)).add_(left_px)
    rows = across.permute(2, 1, 0).contiguous()  # (C, H, size)
    upper = rows.index_select(1, top)
    return rows.index_select(1, bottom).sub_(upper).mul_(y_lerp.view(-1, 1)).add_(upper)


def square_box(side: float, top: float, left: float) -> tuple[np.float32, np.float32, np.float32, np.float32]:
    """A normalised box (y1, x1, y2, x2) of ``side``, in float32 as TensorFlow stacks it."""
    side32, top32, left32 = F32(side), F32(top), F32(left)
    return top32, left32, top32 + side32, left32 + side32
