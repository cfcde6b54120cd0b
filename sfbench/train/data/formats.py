"""One ``load_demos(path)`` for every dataset format sfbench reads, chosen by what is at ``path``.

- ``hdf5``: LIBERO's HDF5 layout (an ``.hdf5`` file or a directory of them): :mod:`sfbench.train.data.demos`.
- ``rlds``: TFDS/RLDS (``modified_libero_rlds``: a suite dir, its ``1.0.0/`` or the root of several suites):
  :mod:`sfbench.train.data.rlds`.
- ``lerobot``: a LeRobotDataset root (``meta/info.json``; v2.0, v2.1, v3.0): :mod:`sfbench.train.data.lerobot`.

Every reader returns the same :class:`~sfbench.train.data.demos.Demo`: images upright as stored (the released
datasets are already rotated; never flipped twice), actions and proprio unchanged, ``task_id`` from the
instruction, ``init_state=-1`` where the format keeps none.
"""

from __future__ import annotations

from pathlib import Path

from sfbench.core.errors import MissingAsset
from sfbench.train.data import demos as hdf5
from sfbench.train.data.demos import Demo
from sfbench.train.data.tasks import TaskMatcher

FORMATS = ("hdf5", "rlds", "lerobot")


def detect_format(path: str | Path) -> str:
    """``hdf5``, ``rlds`` or ``lerobot``; one error line saying what was found when it is none of them."""
    from sfbench.train.data.rlds import version_dirs

    p = Path(path)
    if p.is_file() and p.suffix in (".hdf5", ".h5"):
        return "hdf5"
    if p.is_dir():
        if (p / "meta" / "info.json").is_file():
            return "lerobot"
        if version_dirs(p):
            return "rlds"
        if next(p.rglob("*.hdf5"), None) is not None:
            return "hdf5"
    raise MissingAsset(f"No dataset at data.path={path}: {_found(p)}; expected LIBERO .hdf5 files, an RLDS dir "
                       "(<suite>_no_noops[/1.0.0] with dataset_info.json) or a LeRobotDataset (meta/info.json)")


def _found(p: Path) -> str:
    if not p.exists():
        return "no such file or directory"
    if p.is_file():
        return f"a file of {p.stat().st_size} bytes with suffix '{p.suffix}'"
    entries = sorted(x.name + ("/" if x.is_dir() else "") for x in p.iterdir())
    if (p / "meta").is_dir():
        return "a meta/ folder without info.json"
    listed = ", ".join(entries[:6]) + (" ..." if len(entries) > 6 else "")
    return f"a directory holding {len(entries)} entries ({listed})" if entries else "an empty directory"


def load_demos(path: str | Path, *, suite: str | None = None, keys: dict[str, str] | None = None,
               cache_dir: str | Path | None = None) -> list[Demo]:
    """Every demo at ``path`` in any supported format.

    Args:
        path: An HDF5 file or directory, an RLDS dir, or a LeRobotDataset root.
        suite: Keep only the episodes of this suite's tasks (a combined 40-task dataset); None keeps all.
        keys: Override of the dataset keys (``agentview``, ``wrist``, ``proprio``, ``action``) for RLDS and LeRobot.
        cache_dir: Where LeRobot PNG frames are cached, read by byte range (:mod:`sfbench.train.data.image_cache`);
            None = ``~/.cache/sfbench/lerobot``.
    """
    fmt = detect_format(path)
    p = Path(path)
    if fmt == "hdf5":
        files = [p] if p.is_file() else sorted(p.rglob("*.hdf5"))
        return [d for f in files for d in hdf5.load_demos(f)]
    matcher = TaskMatcher(suite)
    if fmt == "rlds":
        from sfbench.train.data.rlds import load_rlds

        return load_rlds(p, matcher, keys)
    from sfbench.train.data.lerobot import load_lerobot

    return load_lerobot(p, matcher, keys, cache_dir=Path(cache_dir) if cache_dir else None)
