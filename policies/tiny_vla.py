"""A small vision-language-action policy that trains on a CPU (OpenVLA-OFT's design, scaled down).

The model follows OpenVLA-OFT's LIBERO recipe (parallel decoding, L1 regression, proprio token):

- each view is cut into ``patch_size`` patches by one strided ``Conv2d`` (shared by the views),
  plus a learned position embedding and a learned per-view embedding;
- the instruction is byte-tokenised (UTF-8 byte + 1, 0 = pad) and embedded;
- the normalised 8-D proprio goes through a 2-layer MLP into one token;
- ``chunk_size`` learned action-query tokens (OFT's "empty action embeddings") are appended, so the
  whole chunk comes out of one forward pass;
- a pre-LN transformer encoder runs over ``[visual (view-major, row-major) | proprio | text |
  action queries]`` with bidirectional attention (text padding masked);
- a LayerNorm + MLP head maps each action-query output to one normalised action.

The visual-token hidden states after any trunk layer are exposed (``hidden_layer``) together with
their grid, which is the contract Spatial Forcing needs (``sfbench.train.align``).
Image transforms, checkpoint I/O and the policy adapter live here too; the adapter owns the
conventions (quantile normalisation, gripper sign, centre crop).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from sfbench.constants import ACTION_DIM, OBS_PROPRIO, PROPRIO_DIM, VIEWS
from sfbench.errors import InvalidConfig, MissingAsset
from sfbench.policies import make_config
from sfbench.policies.base import Policy, Requirements
from sfbench.task import TaskSpec
from sfbench.train.normalize import check_stats, normalize, unnormalize

# Extra input channels per patch for each ``input_geometry`` kind.
GEOMETRY_CHANNELS = {"depth": 1, "points": 3}
# Crop box in pixels: (top, left, height, width).
Box = tuple[int, int, int, int]


@dataclass
class TinyVLAConfig:
    """Configuration of :class:`TinyVLA` and :class:`TinyVLAPolicy`.

    Args:
        image_size: Side of the square model input per view (px), after crop + resize.
        patch_size: Side of one square patch (px); ``image_size // patch_size`` patches per side.
        views: RGB views fed to the model, in token order (from ``sfbench.constants.VIEWS``).
        center_crop_area: Fraction of the image area kept by the policy-side centre crop at
            inference (OFT: 0.9); training uses random crops of the same area.
        input_geometry: Extra per-view geometry channels added to the patch tokens: None (RGB
            only), "depth" (metric depth, m) or "points" (camera-frame XYZ point map, m).
        dim: Width of the transformer trunk (channels per token).
        layers: Number of transformer trunk layers.
        heads: Attention heads per layer (must divide ``dim``).
        mlp_ratio: Hidden width of each trunk MLP, as a multiple of ``dim``.
        dropout: Dropout probability inside the trunk (training only).
        max_text_tokens: Instruction length in bytes; longer instructions are truncated.
        chunk_size: Actions predicted per forward pass (executed open-loop by the protocol).
        action_dim: Action dimensions (LIBERO: 6 delta end-effector + 1 gripper).
        proprio_dim: Proprio dimensions (eef position 3 + axis-angle 3 + gripper qpos 2).
        checkpoint: Directory of a trained checkpoint (``model.safetensors``, ``config.json``,
            ``normalization.json``, ``trainer_state.json``); required by the policy.
    """

    # The policy name recorded in a checkpoint's config.json.
    policy_name: ClassVar[str] = "tiny_vla"
    # Allowed ``input_geometry`` values for this family.
    allowed_geometry: ClassVar[tuple[str | None, ...]] = (None,)
    # Fields that may differ between the policy config and the checkpoint's config.json.
    runtime_fields: ClassVar[frozenset[str]] = frozenset({"checkpoint", "center_crop_area", "dropout"})

    # --- vision
    image_size: int = 64
    patch_size: int = 8
    views: tuple[str, ...] = VIEWS
    center_crop_area: float = 0.9
    input_geometry: str | None = None
    # --- trunk
    dim: int = 128
    layers: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    # --- language, proprio, actions
    max_text_tokens: int = 48
    chunk_size: int = 8
    action_dim: int = ACTION_DIM
    proprio_dim: int = PROPRIO_DIM
    # --- weights
    checkpoint: str | None = None

    def __post_init__(self) -> None:
        self.views = tuple(self.views)
        problems = [msg for ok, msg in self._checks() if not ok]
        if problems:
            raise ValueError("; ".join(problems))

    def _checks(self) -> list[tuple[bool, str]]:
        positive = ("image_size", "patch_size", "dim", "layers", "heads", "max_text_tokens", "chunk_size")
        checks = [(getattr(self, n) >= 1, f"{n} must be >= 1, got {getattr(self, n)}") for n in positive]
        return checks + [
            (
                self.image_size % self.patch_size == 0,
                f"image_size ({self.image_size}) must be a multiple of patch_size ({self.patch_size})",
            ),
            (
                len(self.views) > 0
                and set(self.views) <= set(VIEWS)
                and len(set(self.views)) == len(self.views),
                f"views must be distinct names from {list(VIEWS)}, got {list(self.views)}",
            ),
            (
                0.0 < self.center_crop_area <= 1.0,
                f"center_crop_area must be in (0, 1], got {self.center_crop_area}",
            ),
            (
                self.input_geometry in self.allowed_geometry,
                f"input_geometry must be one of {list(self.allowed_geometry)} for {self.policy_name}, "
                f"got {self.input_geometry!r}",
            ),
            (self.dim % max(self.heads, 1) == 0, f"heads ({self.heads}) must divide dim ({self.dim})"),
            (self.mlp_ratio > 0, f"mlp_ratio must be > 0, got {self.mlp_ratio}"),
            (0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}"),
            (self.action_dim >= 2, f"action_dim must be >= 2 (motion + gripper), got {self.action_dim}"),
            (self.proprio_dim >= 1, f"proprio_dim must be >= 1, got {self.proprio_dim}"),
        ]

    @property
    def grid(self) -> tuple[int, int, int]:
        """Visual token grid (V, Hp, Wp)."""
        side = self.image_size // self.patch_size
        return len(self.views), side, side


# ----------------------------------------------------------------------------- inputs
def tokenize(instructions: Sequence[str], max_tokens: int) -> torch.Tensor:
    """Byte-level tokens (B, max_tokens) int64: UTF-8 byte + 1, truncated, right-padded with 0."""
    tokens = torch.zeros(len(instructions), max_tokens, dtype=torch.long)
    for i, text in enumerate(instructions):
        ids = list(text.encode("utf-8")[:max_tokens])
        tokens[i, : len(ids)] = torch.tensor(ids, dtype=torch.long) + 1
    return tokens


def center_box(height: int, width: int, area: float) -> Box:
    """The centred crop box keeping ``area`` of the image with the image's aspect ratio."""
    h, w = round(height * math.sqrt(area)), round(width * math.sqrt(area))
    return (height - h) // 2, (width - w) // 2, h, w


def random_box(height: int, width: int, area: float, generator: torch.Generator) -> Box:
    """A crop box of :func:`center_box`'s size at a uniformly random position (OFT's training crop)."""
    _, _, h, w = center_box(height, width, area)
    top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
    left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
    return top, left, h, w


def crop_resize(x: torch.Tensor, box: Box, size: int) -> torch.Tensor:
    """Crop ``x`` (..., C, H, W) to ``box`` and resize to (..., C, size, size), antialiased bilinear."""
    top, left, h, w = box
    crop = x[..., top : top + h, left : left + w]
    flat = crop.reshape(-1, *crop.shape[-3:]).float()
    out = F.interpolate(flat, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.reshape(*crop.shape[:-2], size, size)


def crop_intrinsics(k: torch.Tensor, box: Box, size: int) -> torch.Tensor:
    """Intrinsics (..., 3, 3) of the image cropped to ``box`` and resized to ``size``.

    Pixel (row i, col j) has its centre at (u, v) = (j + 0.5, i + 0.5), the convention of
    robosuite's intrinsics (principal point W / 2); then u' = (u - left) * size / width, so
    K' = A @ K. A negative focal length (an image mirror folded into K) stays valid.
    """
    top, left, h, w = box
    sx, sy = size / w, size / h
    a = torch.tensor(
        [[sx, 0.0, -sx * left], [0.0, sy, -sy * top], [0.0, 0.0, 1.0]], dtype=k.dtype, device=k.device
    )
    return a @ k


def preprocess_views(images: Sequence[np.ndarray], size: int, area: float) -> torch.Tensor:
    """HWC uint8 views -> (V, 3, size, size) float in [0, 1]: centre crop of ``area``, then resize."""
    out = []
    for img in images:
        chw = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 255.0
        out.append(crop_resize(chw, center_box(img.shape[0], img.shape[1], area), size).clamp(0.0, 1.0))
    return torch.stack(out)


# ----------------------------------------------------------------------------- model
class TinyVLA(nn.Module):
    """The trunk + L1 action head; see the module docstring for the token layout."""

    def __init__(self, config: TinyVLAConfig):
        super().__init__()
        self.config = config
        d = config.dim
        n_views, hp, wp = config.grid
        self.patch_embed = nn.Conv2d(3, d, config.patch_size, stride=config.patch_size)
        self.geometry_embed = (
            nn.Conv2d(
                GEOMETRY_CHANNELS[config.input_geometry], d, config.patch_size, stride=config.patch_size
            )
            if config.input_geometry
            else None
        )
        self.pos_embed = nn.Parameter(torch.randn(1, hp * wp, d) * 0.02)
        self.view_embed = nn.Parameter(torch.randn(n_views, 1, d) * 0.02)
        self.proprio_embed = nn.Sequential(nn.Linear(config.proprio_dim, d), nn.GELU(), nn.Linear(d, d))
        self.text_embed = nn.Embedding(256 + 1, d, padding_idx=0)
        self.text_pos = nn.Parameter(torch.randn(1, config.max_text_tokens, d) * 0.02)
        self.action_queries = nn.Parameter(torch.randn(1, config.chunk_size, d) * 0.02)
        self.trunk = nn.ModuleList(
            nn.TransformerEncoderLayer(
                d,
                config.heads,
                round(d * config.mlp_ratio),
                config.dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(config.layers)
        )
        self.norm = nn.LayerNorm(d)
        self.action_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, config.action_dim))

    @property
    def num_layers(self) -> int:
        """Number of trunk layers (valid ``hidden_layer`` values are 0..num_layers)."""
        return self.config.layers

    @property
    def visual_grid(self) -> tuple[int, int, int]:
        """Grid (V, Hp, Wp) of the visual tokens, flattened view-major then row-major."""
        return self.config.grid

    @property
    def hidden_dim(self) -> int:
        """Width D of the trunk's hidden states."""
        return self.config.dim

    def _visual_tokens(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Patch tokens (B, V * Hp * Wp, D) of the images (and geometry) in ``batch``."""
        images = batch["images"]
        n_views, hp, wp = self.visual_grid
        size = self.config.image_size
        if images.shape[1:] != (n_views, 3, size, size):
            raise ValueError(f"images must be (B, {n_views}, 3, {size}, {size}), got {tuple(images.shape)}")
        x = self.patch_embed((images.flatten(0, 1) - 0.5) / 0.5)
        if self.geometry_embed is not None:
            if "geometry" not in batch:
                raise KeyError(f"input_geometry={self.config.input_geometry!r} needs batch['geometry']")
            x = x + self.geometry_embed(batch["geometry"].flatten(0, 1).float())
        x = x.flatten(2).transpose(1, 2) + self.pos_embed  # (B*V, Hp*Wp, D)
        x = x.reshape(-1, n_views, hp * wp, self.hidden_dim) + self.view_embed
        return x.flatten(1, 2)

    def forward(self, batch: dict[str, torch.Tensor], *, hidden_layer: int | None = None) -> dict[str, Any]:
        """Predict a normalised action chunk.

        Args:
            batch: ``images`` (B, V, 3, H, W) in [0, 1]; ``proprio`` (B, P) normalised to [-1, 1];
                ``tokens`` (B, L) int64 with L <= max_text_tokens (see :func:`tokenize`);
                ``geometry`` (B, V, C_g, H, W) when ``input_geometry`` is set.
            hidden_layer: If given, also return the visual tokens' hidden states after this trunk
                layer (1-based like HF ``hidden_states[k]``; 0 = the input embeddings).

        Returns:
            ``actions`` (B, chunk, action_dim) in normalised units; with ``hidden_layer`` also
            ``visual_hidden`` (B, V * Hp * Wp, D) and ``grid`` (V, Hp, Wp).
        """
        if hidden_layer is not None and not 0 <= hidden_layer <= self.num_layers:
            raise ValueError(f"hidden_layer must be in [0, {self.num_layers}], got {hidden_layer}")
        visual = self._visual_tokens(batch)
        n_visual, tokens = visual.shape[1], batch["tokens"]
        if tokens.shape[1] > self.config.max_text_tokens:
            raise ValueError(
                f"tokens has {tokens.shape[1]} columns > max_text_tokens={self.config.max_text_tokens}"
            )
        text = self.text_embed(tokens) + self.text_pos[:, : tokens.shape[1]]
        proprio = self.proprio_embed(batch["proprio"].float()).unsqueeze(1)
        queries = self.action_queries.expand(len(visual), -1, -1)
        h = torch.cat([visual, proprio, text, queries], dim=1)
        pad = torch.zeros(h.shape[:2], dtype=torch.bool, device=h.device)
        pad[:, n_visual + 1 : n_visual + 1 + tokens.shape[1]] = tokens == 0
        out: dict[str, Any] = {}
        for i, layer in enumerate([None, *self.trunk]):
            if layer is not None:
                h = layer(h, src_key_padding_mask=pad)
            if i == hidden_layer:
                out["visual_hidden"], out["grid"] = h[:, :n_visual], self.visual_grid
        out["actions"] = self.action_head(self.norm(h[:, -self.config.chunk_size :]))
        return out


# ----------------------------------------------------------------------------- policy
class TinyVLAPolicy(Policy):
    """Runs a trained :class:`TinyVLA` checkpoint under the LIBERO conventions.

    Images: centre crop of ``center_crop_area``, resize to ``image_size``. Proprio: q01/q99 ->
    [-1, 1], clipped. Actions: [-1, 1] -> q01/q99 (not clipped), gripper binarised to -1 (open) or
    +1 (close) by its sign, as LIBERO's controller expects.
    """

    name = "tiny_vla"
    config_class = TinyVLAConfig
    batchable = True

    def __init__(self, config: TinyVLAConfig | None = None):
        config = config or self.config_class()
        if config.checkpoint is None:
            raise MissingAsset(
                f"Policy {self.name} needs a trained checkpoint: set policy.checkpoint=<directory written by "
                "the trainer>; it never runs with random weights."
            )
        self.model, trained, self.stats, self.trainer_state = load_checkpoint(config.checkpoint, type(config))
        _check_same_architecture(config, trained)
        self.config = config
        self.model.eval()
        self.checkpoint_hash = _sha256(f"{config.checkpoint}/{WEIGHTS_FILE}")

    @property
    def requirements(self) -> Requirements:
        """The configured views, proprio, and depth + camera matrices when geometry is an input."""
        return Requirements(
            views=self.config.views, depth=self.config.input_geometry is not None, proprio=True
        )

    @property
    def checkpoint_id(self) -> str:
        """First 12 hex digits of the weights file's sha256."""
        return self.checkpoint_hash[:12]

    def reset(self, task: TaskSpec, *, seed: int | None = None) -> None:
        """Stateless: the instruction is read from each observation."""

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """One action chunk (chunk_size, action_dim) float32 for ``obs``."""
        return self.act_batch([obs])[0]

    def act_batch(self, obs_batch: list[dict[str, Any]]) -> list[np.ndarray]:
        """Action chunks for several observations in one forward pass."""
        with torch.no_grad():
            normed = self.model(self.make_batch(obs_batch))["actions"].double().numpy()
        actions = unnormalize(normed, self.stats["action"])
        actions[..., -1] = np.where(actions[..., -1] > 0.0, 1.0, -1.0)
        return list(actions.astype(np.float32))

    def make_batch(self, obs_batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Model inputs (see :meth:`TinyVLA.forward`) for raw env observations."""
        cfg = self.config
        proprio = np.stack([np.asarray(obs[OBS_PROPRIO], dtype=np.float64) for obs in obs_batch])
        batch = {
            "images": torch.stack(
                [
                    preprocess_views([obs[v] for v in cfg.views], cfg.image_size, cfg.center_crop_area)
                    for obs in obs_batch
                ]
            ),
            "proprio": torch.from_numpy(normalize(proprio, self.stats["proprio"])).float(),
            "tokens": tokenize([obs["instruction"] for obs in obs_batch], cfg.max_text_tokens),
        }
        if cfg.input_geometry is not None:
            batch["geometry"] = torch.stack([self.geometry_input(obs) for obs in obs_batch])
        return batch

    def geometry_input(self, obs: dict[str, Any]) -> torch.Tensor:
        """Geometry channels (V, C_g, image_size, image_size) of one observation (3-D input variants)."""
        raise InvalidConfig(f"Policy {self.name} takes no geometry input; use policy=tiny_vla_depth")


def _check_same_architecture(wanted: TinyVLAConfig, trained: TinyVLAConfig) -> None:
    """Raise if ``wanted`` and the checkpoint's config disagree on anything but runtime fields."""
    diffs = [
        f"{f.name}={getattr(wanted, f.name)!r} (checkpoint: {getattr(trained, f.name)!r})"
        for f in dataclasses.fields(wanted)
        if f.name not in wanted.runtime_fields and getattr(wanted, f.name) != getattr(trained, f.name)
    ]
    if diffs:
        raise InvalidConfig(
            f"Policy config disagrees with checkpoint '{wanted.checkpoint}': {', '.join(diffs)}. "
            "Set these fields to the checkpoint's values (its config.json)."
        )


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- checkpoints
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

    Layout: ``model.safetensors`` (weights), ``config.json`` (``policy`` + the config fields),
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
            (CONFIG_FILE, {"policy": config.policy_name, **fields}),
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


def load_checkpoint(
    path: str | Path, config_class: type[TinyVLAConfig] = TinyVLAConfig
) -> tuple[TinyVLA, TinyVLAConfig, dict[str, dict[str, list[float]]], dict[str, Any]]:
    """Load (model, config, norm_stats, trainer_state) from a :func:`save_checkpoint` directory.

    Raises:
        MissingAsset: The directory or one of its files does not exist.
        InvalidConfig: A file is corrupt, or the checkpoint belongs to another policy family.
    """
    path = Path(path)
    if not path.is_dir():
        raise MissingAsset(
            f"Checkpoint directory not found: '{path}' (set policy.checkpoint to a trained checkpoint)"
        )
    missing = [f for f in (WEIGHTS_FILE, CONFIG_FILE, NORM_FILE, STATE_FILE) if not (path / f).is_file()]
    if missing:
        raise MissingAsset(f"Checkpoint '{path}' is incomplete: missing {', '.join(missing)}")
    fields = _read_json(path / CONFIG_FILE)
    family = fields.pop("policy", None)
    if family != config_class.policy_name:
        raise InvalidConfig(
            f"Checkpoint '{path}' holds a {family!r} model, not {config_class.policy_name!r}; "
            f"evaluate it with policy={family}"
        )
    config = make_config(config_class, fields | {"checkpoint": str(path)}, what=f"checkpoint '{path}'")
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
