"""TinyVLA checkpoints: one directory per checkpoint, written atomically, validated on load."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from sfbench.config.schema import make_config
from sfbench.core.errors import InvalidConfig, MissingAsset
from sfbench.core.normalize import check_stats
from sfbench.policies.tiny_vla.config import TinyVLAConfig
from sfbench.policies.tiny_vla.model import TinyVLA

FAMILY = "tiny_vla"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
NORM_FILE = "normalization.json"
STATE_FILE = "trainer_state.json"


def save_checkpoint(
    path: str | Path,
    model: TinyVLA,
    config: TinyVLAConfig,
    norm_stats: dict[str, dict[str, list[float]]],
    step: int,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint directory atomically (a temporary sibling directory, then a rename).

    Layout: ``model.safetensors`` (weights), ``config.json`` (``family`` + the config fields),
    ``normalization.json`` (``{"action": {"q01", "q99"}, "proprio": {...}}``) and
    ``trainer_state.json`` (``{"step": step, **extra}``, JSON-serialisable). An existing
    directory at ``path`` is replaced.
    """
    path = Path(path)
    stats = {
        "action": check_stats(norm_stats.get("action"), config.action_dim, "action"),
        "proprio": check_stats(norm_stats.get("proprio"), config.proprio_dim, "proprio"),
    }
    fields = dataclasses.asdict(config) | {"views": list(config.views), "checkpoint": None}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, tmp / WEIGHTS_FILE
        )
        for name, content in (
            (CONFIG_FILE, {"family": FAMILY, **fields}),
            (NORM_FILE, stats),
            (STATE_FILE, {"step": int(step), **(extra or {})}),
        ):
            (tmp / name).write_text(json.dumps(content, indent=2) + "\n")
        _replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _replace_dir(src: Path, dest: Path) -> None:
    """Move ``src`` to ``dest``, replacing an existing directory (two renames, then a delete)."""
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.rename(dest, old)
    os.rename(src, dest)
    if old is not None:
        shutil.rmtree(old)


def load_checkpoint(path: str | Path) -> tuple[TinyVLA, TinyVLAConfig, dict[str, Any], dict[str, Any]]:
    """Load (model, config, norm_stats, trainer_state) from a :func:`save_checkpoint` directory.

    Raises:
        MissingAsset: The directory or one of its files does not exist.
        InvalidConfig: A file is corrupt, or the checkpoint belongs to another policy family.
    """
    path = Path(path)
    config = read_config(path)
    raw = _read_json(path / NORM_FILE)
    stats = {
        "action": check_stats(raw.get("action"), config.action_dim, f"'{path / NORM_FILE}' action"),
        "proprio": check_stats(raw.get("proprio"), config.proprio_dim, f"'{path / NORM_FILE}' proprio"),
    }
    model = TinyVLA(config)
    try:
        model.load_state_dict(load_file(path / WEIGHTS_FILE), strict=True)
    except (SafetensorError, OSError) as e:
        raise InvalidConfig(f"Corrupt weights file '{path / WEIGHTS_FILE}': {e}") from None
    except RuntimeError as e:
        raise InvalidConfig(f"Weights in '{path / WEIGHTS_FILE}' do not fit its config.json: {e}") from None
    return model.eval(), config, stats, _read_json(path / STATE_FILE)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        content = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InvalidConfig(f"Corrupt checkpoint file '{path}': {e}") from None
    if not isinstance(content, dict):
        raise InvalidConfig(f"Corrupt checkpoint file '{path}': expected a JSON object")
    return content


def read_config(path: Path) -> TinyVLAConfig:
    """The config of a checkpoint directory, after checking that every file is there (no weights read)."""
    if not path.is_dir():
        raise MissingAsset(f"Checkpoint directory not found: '{path}' (set policy.checkpoint to a trained checkpoint)")
    missing = [f for f in (WEIGHTS_FILE, CONFIG_FILE, NORM_FILE, STATE_FILE) if not (path / f).is_file()]
    if missing:
        raise MissingAsset(f"Checkpoint '{path}' is incomplete: missing {', '.join(missing)}")
    return make_config(TinyVLAConfig, _checkpoint_fields(path) | {"checkpoint": str(path)},
                       what=f"checkpoint '{path}'")


def _checkpoint_fields(path: Path) -> dict[str, Any]:
    """The config fields of ``config.json``, checking that it holds a TinyVLA-family model."""
    fields = _read_json(path / CONFIG_FILE)
    family = fields.pop("family", None)
    if family != FAMILY:
        raise InvalidConfig(f"Checkpoint '{path}' holds a {family!r} model, not a {FAMILY!r} one")
    return fields
