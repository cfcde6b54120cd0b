"""Frames that stay encoded until a sample needs them: ``len()`` is the step count, ``[t]`` a uint8 (H, W, 3).

Real datasets do not fit in RAM decoded (LIBERO's four RLDS suites: ~10 GB of JPEG, ~107 GB of pixels), so a
:class:`~sfbench.train.data.demos.Demo` read from RLDS or LeRobot holds one of these per view instead of an
array. JPEG is decoded with libjpeg-turbo's fast integer IDCT and fancy upsampling (``simplejpeg`` with
``fastdct=True, fastupsample=False``), which is what ``tf.io.decode_jpeg`` does by default: the pixels are
exactly those OpenVLA/OFT trained on (Pillow's accurate IDCT differs by up to 5 grey levels).
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import simplejpeg
from PIL import Image

from sfbench.core.errors import DamagedDataset

log = logging.getLogger(__name__)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8"
FPS_TOLERANCE_S = 1e-4  # LeRobotDataset's default tolerance_s between a timestamp and its video frame


def decode_image(data: bytes, where: str) -> np.ndarray:
    """Decode one JPEG (TF's default decode, exactly) or PNG to uint8 (H, W, 3) RGB."""
    try:
        if data[:2] == JPEG_MAGIC:
            return simplejpeg.decode_jpeg(data, colorspace="RGB", fastdct=True, fastupsample=False)
        if data[:8] == PNG_MAGIC:
            with Image.open(io.BytesIO(data)) as im:
                return np.asarray(im.convert("RGB"))
    except (ValueError, OSError) as e:
        raise DamagedDataset(f"{where}: cannot decode image ({e})") from None
    raise DamagedDataset(f"{where}: image is neither JPEG nor PNG (starts with {data[:8]!r})")


def encode_png(image: np.ndarray) -> bytes:
    """Lossless PNG of a uint8 (H, W, 3) image (what LeRobot stores for ``image`` features)."""
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(out, format="PNG", compress_level=1)
    return out.getvalue()


def encode_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    """Baseline JPEG, 4:2:0 subsampled (as TFDS writes RLDS frames)."""
    return simplejpeg.encode_jpeg(np.ascontiguousarray(image), quality=quality, colorspace="RGB",
                                  colorsubsampling="420")


class MappedFile:
    """A read-only file shared by every episode stored in it: memory-mapped (``array``) or read by range (``read``).

    Pickles as its path (a DataLoader worker started by spawn maps or opens the file again instead of copying it).
    ``read`` uses ``pread`` while the file is not mapped: no descriptor stays open (a v2.x LeRobot dataset has
    thousands of frame files) and the pages read stay in the OS page cache without counting in the process's RSS.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._array: np.ndarray | None = None

    @property
    def array(self) -> np.ndarray:
        """The file's bytes (uint8), mapped on first use."""
        if self._array is None:
            self._array = np.memmap(self.path, dtype=np.uint8, mode="r") if self.path.stat().st_size else \
                np.zeros(0, np.uint8)
        return self._array

    def read(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)``: from the mapping once ``array`` was used, else by ``pread``."""
        if self._array is not None:
            return bytes(self._array[start:end])
        fd = os.open(self.path, os.O_RDONLY)
        try:
            data = os.pread(fd, end - start, start)
        finally:
            os.close(fd)
        if len(data) != end - start:
            raise DamagedDataset(f"{self.path}: {len(data)} bytes at {start}, expected {end - start} (truncated)")
        return data

    def __reduce__(self) -> tuple:
        return MappedFile, (self.path,)


class LazyFrames:
    """uint8 (H, W, 3) frames decoded on access; ``len`` is the step count, ``shape`` the decoded array's."""

    frame_shape: tuple[int, ...]
    dtype = np.dtype(np.uint8)

    @property
    def shape(self) -> tuple[int, ...]:
        """(T, H, W, 3), as the decoded array would have."""
        return (len(self), *self.frame_shape)


class EncodedFrames(LazyFrames):
    """One view of one episode: each frame's encoded bytes, as (start, end) spans into a shared buffer.

    Args:
        buffer: A :class:`MappedFile` (RLDS shards) or a uint8 array (image bytes read from parquet).
        spans: (T, 2) int64 byte ranges of the frames in ``buffer``.
        frame_shape: Declared (H, W, 3) of every frame.
        source: Where the frames come from, for error messages.
    """

    def __init__(self, buffer: MappedFile | np.ndarray, spans: np.ndarray, frame_shape: tuple[int, ...],
                 source: str):
        self.buffer, self.spans, self.frame_shape, self.source = buffer, np.asarray(spans, np.int64), \
            tuple(frame_shape), source

    def __len__(self) -> int:
        return len(self.spans)

    def encoded(self, t: int) -> bytes:
        """The stored bytes of frame ``t``."""
        start, end = (int(x) for x in self.spans[t])
        if isinstance(self.buffer, MappedFile):
            return self.buffer.read(start, end)
        return bytes(self.buffer[start:end])

    def __getitem__(self, t: int) -> np.ndarray:
        if not -len(self) <= t < len(self):
            raise IndexError(f"frame {t} of {len(self)}")
        image = decode_image(self.encoded(t), f"{self.source} frame {t % len(self)}")
        if image.shape != self.frame_shape:
            raise DamagedDataset(f"{self.source} frame {t % len(self)}: decoded {image.shape}, "
                                 f"declared {self.frame_shape}")
        return image


@dataclass
class VideoCache:
    """The last few decoded video segments (one per episode and camera), bounded in bytes.

    One cache belongs to one loaded dataset (and is copied into each DataLoader worker); a sample of an
    episode that was decoded recently costs nothing, any other decodes that episode's segment once.
    """

    max_bytes: int = 1 << 30
    _segments: OrderedDict = field(default_factory=OrderedDict)

    def get(self, key: tuple, decode: callable) -> np.ndarray:
        """The cached frames of ``key``, decoded by ``decode()`` when absent."""
        if key in self._segments:
            self._segments.move_to_end(key)
            return self._segments[key]
        frames = decode()
        self._segments[key] = frames
        while sum(f.nbytes for f in self._segments.values()) > self.max_bytes and len(self._segments) > 1:
            self._segments.popitem(last=False)
        return frames


def ffmpeg_exe() -> str:
    """The ffmpeg binary that imageio-ffmpeg ships."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def decode_video_segment(path: Path, start_s: float, n_frames: int, fps: float, size: tuple[int, int]) -> np.ndarray:
    """Frames ``start_s, start_s + 1/fps, ...`` (at most ``n_frames``) of a video, uint8 (N, H, W, 3).

    Seeks half a frame before ``start_s`` (ffmpeg's accurate seek drops the frames before it), so the first
    frame returned is the one nearest ``start_s`` on the constant-rate files LeRobot writes.
    """
    h, w = size
    cmd = [ffmpeg_exe(), "-v", "error", "-nostdin"]
    if start_s > 0:
        cmd += ["-ss", f"{max(0.0, start_s - 0.5 / fps):.6f}"]
    cmd += ["-i", str(path), "-frames:v", str(n_frames), "-f", "rawvideo", "-pix_fmt", "rgb24",
            "-fps_mode", "passthrough", "pipe:1"]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        reason = (proc.stderr.decode(errors="replace").strip().splitlines() or ["ffmpeg failed"])[-1]
        raise DamagedDataset(f"{path}: cannot decode video ({reason})")
    frame_bytes = h * w * 3
    if len(proc.stdout) % frame_bytes:
        raise DamagedDataset(f"{path}: decoded frames are not {w}x{h} as info.json declares")
    return np.frombuffer(proc.stdout, np.uint8).reshape(-1, h, w, 3)


class VideoFrames(LazyFrames):
    """One camera of one episode stored in a video file, decoded by segment and cached.

    Args:
        path: The mp4 file.
        timestamps: (T,) query times of the episode's frames in seconds, from the file's start (v3.0: the
            episode's ``from_timestamp`` already added).
        fps: The dataset's frame rate.
        frame_shape: (H, W, 3).
        cache: The dataset's :class:`VideoCache`.
        source: ``<root>:episode_<i>`` for error messages.
    """

    def __init__(self, path: Path, timestamps: np.ndarray, fps: float, frame_shape: tuple[int, ...],
                 cache: VideoCache, source: str):
        self.path, self.fps, self.frame_shape, self.cache, self.source = path, fps, tuple(frame_shape), cache, source
        self.timestamps = np.asarray(timestamps, np.float64)
        self.start_s = float(self.timestamps.min()) if len(self.timestamps) else 0.0
        self.frame_of = np.rint((self.timestamps - self.start_s) * fps).astype(np.int64)
        off = np.abs(self.frame_of / fps + self.start_s - self.timestamps)
        if len(off) and off.max() > FPS_TOLERANCE_S:
            t = int(off.argmax())
            raise DamagedDataset(f"{source}: timestamp {self.timestamps[t]:.6f} s of frame {t} is not on the "
                                 f"{fps} fps grid (tolerance {FPS_TOLERANCE_S} s)")

    def __len__(self) -> int:
        return len(self.timestamps)

    def _segment(self) -> np.ndarray:
        n = int(self.frame_of.max()) + 1 if len(self.frame_of) else 0
        frames = self.cache.get((str(self.path), self.start_s, n), lambda: decode_video_segment(
            self.path, self.start_s, n, self.fps, self.frame_shape[:2]))
        if len(frames) < n:
            raise DamagedDataset(f"{self.source}: video {self.path} has {len(frames)} frames from "
                                 f"{self.start_s:.3f} s, the episode needs {n} (video shorter than its episode)")
        return frames

    def __getitem__(self, t: int) -> np.ndarray:
        if not -len(self) <= t < len(self):
            raise IndexError(f"frame {t} of {len(self)}")
        return self._segment()[self.frame_of[t]]
