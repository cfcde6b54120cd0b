"""RLDS datasets as TFDS writes them (``openvla/modified_libero_rlds``), read and written without TensorFlow.

Layout of one suite (the shard prefix is ``dataset_info.json["name"]``, never the folder name:
``libero_10_no_noops`` holds ``liber_o10-train.tfrecord-*``)::

    <suite>_no_noops/1.0.0/
      dataset_info.json      name, splits[].shardLengths (episodes per shard), filepathTemplate
      features.json          the step features, with shapes
      <name>-train.tfrecord-00000-of-000NN

One episode is one ``tf.train.Example`` with flattened keys ``steps/observation/image`` (T JPEGs, already
rotated 180 degrees, i.e. upright), ``steps/observation/wrist_image``, ``steps/observation/state`` (T*8:
eef pos, axis-angle, gripper qpos = sfbench's proprio order), ``steps/action`` (T*7, LIBERO's sign),
``steps/language_instruction`` (T strings) and ``episode_metadata/file_path``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sfbench.core.errors import DamagedDataset, InvalidConfig, MissingAsset
from sfbench.train.data.demos import Demo
from sfbench.train.data.frames import EncodedFrames, MappedFile, encode_jpeg
from sfbench.train.data.tasks import RELEASED_SUITES, TaskMatcher, check_some_kept
from sfbench.train.data.tfrecord import encode_example, frame_record, iter_records, parse_example

log = logging.getLogger(__name__)

INFO, FEATURES = "dataset_info.json", "features.json"
DEFAULT_TEMPLATE = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
# sfbench name -> step feature of the released LIBERO RLDS data (override with data.keys).
DEFAULT_KEYS = {"agentview": "observation/image", "wrist": "observation/wrist_image",
                "proprio": "observation/state", "action": "action", "instruction": "language_instruction"}


def version_dirs(path: Path) -> list[Path]:
    """The TFDS version directories at ``path``: itself, its newest version, or each suite's newest version."""
    if (path / INFO).is_file():
        return [path]
    here = [p.parent for p in path.glob(f"*/{INFO}")]
    if here:
        return [max(here, key=_version_key)]
    suites: dict[Path, list[Path]] = {}
    for p in path.glob(f"*/*/{INFO}"):
        suites.setdefault(p.parent.parent, []).append(p.parent)
    return [max(v, key=_version_key) for _, v in sorted(suites.items())]


def _version_key(p: Path) -> tuple:
    return tuple(int(x) if x.isdigit() else -1 for x in p.name.split("."))


def suite_of_dir(vdir: Path) -> str:
    """The suite a version dir's folder names: ``libero_10_no_noops/1.0.0`` -> ``libero_10``."""
    return vdir.parent.name.removesuffix("_no_noops")


@dataclass(frozen=True)
class StepFeature:
    """One step feature of ``features.json``: ``image`` (with its shape), ``tensor`` or ``text``."""

    kind: str
    shape: tuple[int, ...]


def step_features(vdir: Path) -> dict[str, StepFeature]:
    """``observation/image`` -> StepFeature, ... from ``features.json``'s ``steps`` sequence."""
    try:
        root = json.loads((vdir / FEATURES).read_text())["featuresDict"]["features"]
        steps = root["steps"]["sequence"]["feature"]["featuresDict"]["features"]
    except (OSError, KeyError, ValueError) as e:
        raise DamagedDataset(f"{vdir / FEATURES}: not a TFDS RLDS features file ({type(e).__name__}: {e})") from None
    out: dict[str, StepFeature] = {}

    def walk(features: dict, prefix: str) -> None:
        for name, spec in features.items():
            if "featuresDict" in spec:
                walk(spec["featuresDict"]["features"], f"{prefix}{name}/")
            elif "image" in spec:
                out[prefix + name] = StepFeature("image", tuple(int(d) for d in spec["image"]["shape"]["dimensions"]))
            elif "tensor" in spec:
                out[prefix + name] = StepFeature("tensor",
                                                 tuple(int(d) for d in spec["tensor"]["shape"].get("dimensions", [])))
            else:
                out[prefix + name] = StepFeature("text", ())

    walk(steps, "")
    return out


def shard_files(vdir: Path) -> list[tuple[Path, int]]:
    """(shard path, episodes in it) of the train split, named from ``dataset_info.json``."""
    try:
        info = json.loads((vdir / INFO).read_text())
        split = next((s for s in info["splits"] if s["name"] == "train"), info["splits"][0])
        lengths = [int(n) for n in split["shardLengths"]]
        name = info["name"]
    except (OSError, KeyError, ValueError, IndexError, StopIteration) as e:
        raise DamagedDataset(f"{vdir / INFO}: not a TFDS dataset_info file ({type(e).__name__}: {e})") from None
    template = split.get("filepathTemplate", DEFAULT_TEMPLATE)
    n = len(lengths)
    fmt = info.get("fileFormat", "tfrecord")
    files = [vdir / template.replace("{DATASET}", name).replace("{SPLIT}", split["name"])
             .replace("{FILEFORMAT}", fmt).replace("{SHARD_X_OF_Y}", f"{i:05d}-of-{n:05d}") for i in range(n)]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise MissingAsset(f"{vdir}: shard {missing[0]} is missing ({len(missing)} of {n} named by {INFO}; "
                           "incomplete download?)")
    return list(zip(files, lengths, strict=True))


def _episode(example: dict, keys: dict[str, str], features: dict[str, StepFeature], mapped: MappedFile,
             source: str) -> tuple[Demo, str]:
    buf = mapped.array

    def values(name: str, dim: int) -> np.ndarray:
        feature = example.get(f"steps/{keys[name]}")
        if feature is None or feature.values is None:
            raise DamagedDataset(f"{source}: no float feature steps/{keys[name]} (keys: {', '.join(sorted(example))})")
        if feature.values.size % dim:
            raise DamagedDataset(f"{source}: steps/{keys[name]} has {feature.values.size} values, "
                                 f"not a multiple of {dim}")
        return feature.values.reshape(-1, dim).astype(np.float32)

    actions = values("action", features[keys["action"]].shape[0])
    proprio = values("proprio", features[keys["proprio"]].shape[0])
    text = example.get(f"steps/{keys['instruction']}")
    instruction = bytes(buf[slice(*text.spans[0])]).decode() if text and text.spans else ""
    images = {}
    for view in ("agentview", "wrist"):
        key = keys.get(view)
        if key is None or f"steps/{key}" not in example:
            continue
        images[view] = EncodedFrames(mapped, np.asarray(example[f"steps/{key}"].spans, np.int64).reshape(-1, 2),
                                     features[key].shape, f"{source} steps/{key}")
    lengths = {"action": len(actions), "proprio": len(proprio), **{v: len(f) for v, f in images.items()}}
    if len(set(lengths.values())) != 1 or not len(actions):
        raise DamagedDataset(f"{source}: inconsistent step counts {lengths}")
    return Demo(actions, proprio, images, instruction, -1, {}, source), instruction


def iter_episodes(vdir: Path, keys: dict[str, str] | None = None) -> Iterator[tuple[Demo, str]]:
    """Every episode of a version dir, in shard and record order, with its instruction."""
    keys = DEFAULT_KEYS | (keys or {})
    features = step_features(vdir)
    unknown = [k for n, k in keys.items() if n in ("action", "proprio") and k not in features]
    if unknown:
        raise DamagedDataset(f"{vdir}: no step feature {unknown[0]} (features: {', '.join(sorted(features))}); "
                             "set data.keys")
    for shard, expected in shard_files(vdir):
        mapped = MappedFile(shard)
        count = 0
        for index, (start, end) in enumerate(iter_records(mapped.array, shard)):
            source = f"{shard}:{index}"
            try:
                example = parse_example(mapped.array, start, end)
            except (ValueError, IndexError) as e:
                raise DamagedDataset(f"{shard}: episode {index} is not a tf.train.Example ({e})") from None
            yield _episode(example, keys, features, mapped, source)
            count += 1
        if count != expected:
            raise DamagedDataset(f"{shard}: {count} episodes, {INFO} says {expected} (truncated shard?)")


def load_rlds(path: Path, matcher: TaskMatcher, keys: dict[str, str] | None = None) -> list[Demo]:
    """Every episode under ``path`` (suite dir, version dir or a root of suites) kept by ``matcher``."""
    demos, total, seen, skipped = [], 0, [], []
    for vdir in version_dirs(path):
        if matcher.suite and suite_of_dir(vdir) in RELEASED_SUITES and suite_of_dir(vdir) != matcher.suite:
            skipped.append(suite_of_dir(vdir))  # another released suite: not even read
            continue
        for demo, instruction in iter_episodes(vdir, keys):
            total += 1
            seen.append(instruction)
            if not matcher.keep(instruction):
                continue
            match = matcher.match(instruction)
            demo.task_id = match.task_id
            demo.group = f"{match.suite}/{match.task_id}" if match.suite else instruction
            demos.append(demo)
    if skipped and not total:
        raise InvalidConfig(f"data.path={path} holds suites {', '.join(skipped)}, not data.suite={matcher.suite}")
    check_some_kept(len(demos), total, matcher, str(path), seen)
    return demos


def _features_json(image_shape: tuple[int, int, int], state_dim: int, action_dim: int) -> dict:
    def tensor(shape: tuple[int, ...], dtype: str = "float32") -> dict:
        return {"pythonClassName": "tensorflow_datasets.core.features.tensor_feature.Tensor",
                "tensor": {"dtype": dtype, "encoding": "none",
                           "shape": {"dimensions": [str(d) for d in shape]} if shape else {}}}

    image = {"pythonClassName": "tensorflow_datasets.core.features.image_feature.Image",
             "image": {"dtype": "uint8", "encodingFormat": "jpeg",
                       "shape": {"dimensions": [str(d) for d in image_shape]}}}
    text = {"pythonClassName": "tensorflow_datasets.core.features.text_feature.Text", "text": {}}
    obs = {"image": image, "wrist_image": image, "state": tensor((state_dim,)), "joint_state": tensor((7,))}
    step = {"action": tensor((action_dim,)), "discount": tensor(()), "reward": tensor(()),
            "is_first": tensor((), "bool"), "is_last": tensor((), "bool"), "is_terminal": tensor((), "bool"),
            "language_instruction": text, "observation": {"featuresDict": {"features": obs}}}
    return {"featuresDict": {"features": {
        "episode_metadata": {"featuresDict": {"features": {"file_path": text}}},
        "steps": {"sequence": {"feature": {"featuresDict": {"features": step}}, "length": "-1"}}}}}


@dataclass
class RldsEpisode:
    """One episode to write: JPEG bytes per view (``image``, ``wrist_image``), states, actions, instruction."""

    images: dict[str, list[bytes]]
    state: np.ndarray
    action: np.ndarray
    instruction: str
    file_path: str = ""

    @classmethod
    def from_arrays(cls, image: np.ndarray, wrist: np.ndarray, state: np.ndarray, action: np.ndarray,
                    instruction: str, quality: int = 95) -> RldsEpisode:
        """An episode from uint8 (T, H, W, 3) frames, JPEG-encoded as TFDS does (4:2:0)."""
        return cls({"image": [encode_jpeg(f, quality) for f in image],
                    "wrist_image": [encode_jpeg(f, quality) for f in wrist]}, state, action, instruction)


def _example(ep: RldsEpisode) -> bytes:
    t = len(ep.action)
    last = np.arange(t) == t - 1
    return encode_example({
        "steps/observation/image": ep.images["image"], "steps/observation/wrist_image": ep.images["wrist_image"],
        "steps/observation/state": np.asarray(ep.state, np.float32).ravel(),
        "steps/observation/joint_state": np.zeros(t * 7, np.float32),
        "steps/action": np.asarray(ep.action, np.float32).ravel(),
        "steps/discount": np.ones(t, np.float32), "steps/reward": last.astype(np.float32),
        "steps/is_first": (np.arange(t) == 0).astype(np.int64), "steps/is_last": last.astype(np.int64),
        "steps/is_terminal": last.astype(np.int64),
        "steps/language_instruction": [ep.instruction.encode()] * t,
        "episode_metadata/file_path": [ep.file_path.encode()]})


def write_rlds(vdir: Path, name: str, episodes: list[RldsEpisode], *, shards: int = 1,
               image_shape: tuple[int, int, int] = (256, 256, 3)) -> list[Path]:
    """Write a TFDS-layout RLDS version dir (``<suite>_no_noops/1.0.0``) with shard prefix ``name``."""
    vdir.mkdir(parents=True, exist_ok=True)
    per_shard = np.array_split(np.arange(len(episodes)), shards)
    files, sizes = [], 0
    for i, idx in enumerate(per_shard):
        path = vdir / DEFAULT_TEMPLATE.format(DATASET=name, SPLIT="train", FILEFORMAT="tfrecord",
                                              SHARD_X_OF_Y=f"{i:05d}-of-{shards:05d}")
        with path.open("wb") as f:
            for j in idx:
                f.write(frame_record(_example(episodes[j])))
        files.append(path)
        sizes += path.stat().st_size
    state_dim = np.asarray(episodes[0].state).reshape(len(episodes[0].action), -1).shape[1]
    action_dim = np.asarray(episodes[0].action).reshape(len(episodes[0].action), -1).shape[1]
    (vdir / FEATURES).write_text(json.dumps(_features_json(image_shape, state_dim, action_dim), indent=2))
    info = {"fileFormat": "tfrecord", "name": name, "version": vdir.name,
            "splits": [{"filepathTemplate": DEFAULT_TEMPLATE, "name": "train", "numBytes": str(sizes),
                        "shardLengths": [str(len(idx)) for idx in per_shard]}]}
    (vdir / INFO).write_text(json.dumps(info, indent=2))
    return files
