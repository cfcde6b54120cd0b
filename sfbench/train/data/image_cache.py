"""PNG bytes of a LeRobot parquet image column, extracted once into a cache file read by range.

``HuggingFaceVLA/libero`` keeps its frames as PNG inside parquet (~70 GB over 273k steps; a libero_spatial-size
subset is ~13.5 GB), so reading the columns with ``pq.read_table`` would put all of it in process memory. Instead
each (parquet file, camera) is streamed once, one record batch at a time, into a cache file; training then reads
each frame's byte range from it (:class:`~sfbench.train.data.frames.MappedFile`, ``pread`` while unmapped): the
pages belong to the OS page cache, shared by DataLoader workers, neither held by nor counted in the process.

The cache lives in ``data.cache_dir`` (default ``$SFBENCH_CACHE_DIR/lerobot``, else
``$XDG_CACHE_HOME/sfbench/lerobot``, i.e. ``~/.cache/sfbench/lerobot``, next to where ``datasets`` and LeRobot
keep theirs), so a read-only dataset works.
A cache file is named by a hash of the parquet file's resolved path and the camera key, and records the parquet
file's size and mtime: a changed file is extracted again. Files are written to a temporary name and renamed, so
a reader never sees a half-written cache; concurrent loads (the ranks of one run) take a lock file beside it, so
one extracts and the others reuse its file. Cache files of parquet files that were moved or deleted stay until
the folder is deleted (safe at any time between runs: it is rebuilt on the next load).

Layout of a cache file (little-endian), this module being its one reader and writer:

- 64-byte header: magic ``SFBPNG01``, frame count ``n``, offsets position, source size, source mtime (ns),
  all int64 after the magic, then zero padding;
- the frames' bytes, back to back from byte 64, padded to a multiple of 8;
- ``n + 1`` int64 offsets (absolute positions in the file): frame ``i`` is ``[offsets[i], offsets[i + 1])``.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sfbench.core.errors import DamagedDataset, InvalidConfig
from sfbench.train.data.frames import MappedFile

log = logging.getLogger(__name__)

MAGIC = b"SFBPNG01"
HEADER = struct.Struct("<8s5q")
HEADER_BYTES = 64
BATCH_ROWS = 64  # rows per record batch while extracting (~8 MB of LIBERO PNGs)
READ_BUFFER = 1 << 20  # bytes read from the parquet file at a time


def default_cache_dir() -> Path:
    """``$SFBENCH_CACHE_DIR/lerobot``, else ``$XDG_CACHE_HOME/sfbench/lerobot`` (``~/.cache/sfbench/lerobot``)."""
    if os.environ.get("SFBENCH_CACHE_DIR"):
        return Path(os.environ["SFBENCH_CACHE_DIR"]) / "lerobot"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sfbench" / "lerobot"


def cache_path(parquet: Path, key: str, cache_dir: Path) -> Path:
    """Where the frames of column ``key`` of ``parquet`` are cached."""
    digest = hashlib.sha256(f"{Path(parquet).resolve()}\0{key}".encode()).hexdigest()[:24]
    return Path(cache_dir) / f"{digest}.png.bin"


def binary_spans(column: pa.Array, where: str) -> tuple[np.ndarray, np.ndarray]:
    """The image bytes of a ``struct<bytes, path>`` (or binary) array as (uint8 buffer, (N+1,) int64 offsets).

    The buffer is a zero-copy view of the array's data; offsets index it.
    """
    if column.null_count:
        raise DamagedDataset(f"{where}: {column.null_count} image cells are null")
    data = column.field("bytes") if pa.types.is_struct(column.type) else column
    if data.null_count:
        raise DamagedDataset(f"{where}: {data.null_count} frames are stored by path, not embedded")
    bufs = data.buffers()
    width = np.int64 if pa.types.is_large_binary(data.type) else np.int32
    offsets = np.frombuffer(bufs[1], width)[data.offset:data.offset + len(data) + 1].astype(np.int64)
    buffer = np.frombuffer(bufs[2], np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    return buffer, offsets


def _header(path: Path) -> tuple[int, int, int, int] | None:
    """(frames, offsets position, source size, source mtime_ns) of a cache file; None when unreadable."""
    try:
        with open(path, "rb") as f:
            raw = f.read(HEADER.size)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return None
    if len(raw) < HEADER.size:
        return None
    magic, n, at, src_size, src_mtime, _ = HEADER.unpack(raw)
    if magic != MAGIC or size != at + 8 * (n + 1):
        return None
    return n, at, src_size, src_mtime


def _extract(parquet: Path, key: str, target: Path, stat: os.stat_result) -> None:
    """Stream column ``key`` of ``parquet`` into ``target`` (atomically), one record batch in memory at a time."""
    where = f"{parquet} {key}"
    try:
        reader = pq.ParquetFile(parquet, buffer_size=READ_BUFFER, pre_buffer=False)  # pages streamed, not a chunk
    except (pa.ArrowException, OSError) as e:
        raise DamagedDataset(f"{parquet}: unreadable parquet ({e})") from None
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    offsets = [HEADER_BYTES]
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(bytes(HEADER_BYTES))
            for batch in reader.iter_batches(batch_size=BATCH_ROWS, columns=[key], use_threads=False):
                buffer, spans = binary_spans(batch.column(0), where)
                out.write(memoryview(buffer[spans[0]:spans[-1]]))
                offsets.extend((spans[1:] - spans[0] + offsets[-1]).tolist())
            pad = -offsets[-1] % 8
            out.write(bytes(pad))
            at = offsets[-1] + pad
            out.write(np.asarray(offsets, "<i8").tobytes())
            out.seek(0)
            out.write(HEADER.pack(MAGIC, len(offsets) - 1, at, stat.st_size, stat.st_mtime_ns, 0))
        os.replace(tmp, target)
        pa.default_memory_pool().release_unused()  # give the batches' memory back to the OS
    except pa.ArrowException as e:
        raise DamagedDataset(f"{parquet}: unreadable parquet ({e})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_cache_dir(cache_dir: str | Path) -> None:
    """Refuse a ``data.cache_dir`` that cannot be created or written, without creating anything."""
    path = Path(cache_dir).expanduser().absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        what = "is not a directory" if not existing.is_dir() else "is not writable"
        raise InvalidConfig(f"data.cache_dir={cache_dir}: {existing} {what}; set data.cache_dir to a writable "
                            "directory for the LeRobot frame cache")


def _writable(cache_dir: Path) -> Path:
    """``cache_dir``, created; one error line naming ``data.cache_dir`` when it cannot be written."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InvalidConfig(f"data.cache_dir={cache_dir} cannot be created ({e.strerror}); set data.cache_dir "
                            "to a writable directory for the LeRobot frame cache") from None
    if not os.access(cache_dir, os.W_OK | os.X_OK):
        raise InvalidConfig(f"data.cache_dir={cache_dir} is not writable; set data.cache_dir to a writable "
                            "directory for the LeRobot frame cache")
    return cache_dir


@contextmanager
def _locked(target: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``<target>.lock`` while held."""
    with open(target.with_name(target.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def cached_frames(parquet: Path, key: str, cache_dir: Path | None = None) -> tuple[MappedFile, np.ndarray]:
    """The frames of image column ``key`` of ``parquet``: (cache file, (N+1,) int64 offsets into it).

    The frames are read by range (:meth:`~sfbench.train.data.frames.MappedFile.read`), never all at once.

    Extracts the column on first use, or when the parquet file's size or mtime changed since.
    """
    stat = Path(parquet).stat()
    target = cache_path(parquet, key, _writable(Path(cache_dir) if cache_dir else default_cache_dir()))
    head = _header(target)
    if head is None or head[2:] != (stat.st_size, stat.st_mtime_ns):
        with _locked(target):  # ranks of one run loading together: one extracts, the others wait for it
            head = _header(target)
            if head is None or head[2:] != (stat.st_size, stat.st_mtime_ns):
                log.info("Extracting the %s frames of %s into %s", key, parquet, target)
                _extract(Path(parquet), key, target, stat)
                head = _header(target)
        if head is None:
            raise DamagedDataset(f"{target}: the frame cache just written is unreadable")
    n, at = head[:2]
    frames = MappedFile(target)
    return frames, np.frombuffer(frames.read(at, at + 8 * (n + 1)), "<i8").astype(np.int64)
