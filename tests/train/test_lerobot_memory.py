"""LeRobot PNG-in-parquet frames stay encoded (the PNG bytes, in a cache file read by range) and are decoded at
each access."""

from __future__ import annotations

import numpy as np

from sfbench.train.data.formats import load_demos
from sfbench.train.data.frames import PNG_MAGIC, EncodedFrames, MappedFile
from tests.train.test_train_datasets import DATASETS


def test_png_frames_are_held_as_their_bytes_in_one_cache_file_per_file_and_camera(tmp_path):
    demos = load_demos(DATASETS["lerobot"], cache_dir=tmp_path)
    views = [d.images[v] for d in demos for v in ("agentview", "wrist")]
    assert all(isinstance(f, EncodedFrames) and isinstance(f.buffer, MappedFile) for f in views)
    buffers = {id(f.buffer): f.buffer for f in views}
    assert len(buffers) == 2, "one cache file per parquet file and camera"
    for view in ("agentview", "wrist"):
        assert demos[0].images[view].buffer is demos[1].images[view].buffer, \
            "the episodes of one parquet file share its cache file, not copies"
    held = sum(b.path.stat().st_size for b in buffers.values())
    encoded = sum(len(f.encoded(t)) for f in views for t in range(len(f)))
    decoded = sum(int(np.prod(f.shape)) for f in views)
    frames = sum(len(f) for f in views)
    assert encoded <= held <= encoded + 2 * (64 + 8) + 8 * (frames + 2), \
        "the cache files hold the PNG bytes, a 64-byte header, padding and the offsets, nothing else"
    assert all(f.encoded(t)[:8] == PNG_MAGIC for f in views for t in range(len(f)))
    assert held * 20 < decoded, f"{held} bytes held for {decoded} bytes of pixels"


def test_each_access_decodes_a_fresh_frame(tmp_path):
    frames = load_demos(DATASETS["lerobot"], cache_dir=tmp_path)[0].images["agentview"]
    a, b = frames[1], frames[1]
    assert a.shape == (256, 256, 3) and a.dtype == np.uint8
    assert a is not b and not np.shares_memory(a, b) and np.array_equal(a, b), "decoded per access, nothing cached"
