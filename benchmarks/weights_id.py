"""Cost of the weights' identity: the tensor hash (name, dtype, shape, bytes) against a plain file sha256.

Usage: python benchmarks/weights_id.py [--mb 512] [--shards 4]
Writes a synthetic checkpoint (bf16 tensors of ~4 MB each) to a temporary folder, then times each
hash on a warm page cache, best of 3 (the tensor hash's own cache is cleared between rounds).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from sfbench.core import weights_id
from sfbench.core.io import file_sha256


def _best(fn, rounds: int = 3) -> float:
    times = []
    for _ in range(rounds):
        weights_id._FILE_DIGESTS.clear()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    """Print seconds and MB/s for both hashes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=512)
    parser.add_argument("--shards", type=int, default=4)
    args = parser.parse_args()
    n_tensors = args.mb // 4
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for shard in range(args.shards):
            names = range(shard, n_tensors, args.shards)
            tensors = {f"layer{i}.weight": torch.randn(1024, 2048).to(torch.bfloat16) for i in names}
            paths.append(Path(tmp) / f"model-{shard:05d}-of-{args.shards:05d}.safetensors")
            save_file(tensors, paths[-1])
        size_mb = sum(p.stat().st_size for p in paths) / 2**20
        plain = _best(lambda: [file_sha256(p) for p in paths])
        tensor = _best(lambda: weights_id.weights_id(paths))
    print(f"checkpoint: {size_mb:.0f} MB in {args.shards} shards, {n_tensors} tensors")
    print(f"file sha256 (before): {plain:.3f} s  ({size_mb / plain:.0f} MB/s)")
    print(f"tensor hash (now):    {tensor:.3f} s  ({size_mb / tensor:.0f} MB/s), {tensor / plain:.2f}x")


if __name__ == "__main__":
    main()
