"""Compose a Hydra config from ``configs/`` and CLI overrides, with errors a user can act on."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from sfbench.config.tree import SUITE_ALIASES, config_dir, group_choices
from sfbench.core.errors import InvalidConfig, UnknownChoice

GROUPS = ("suite", "protocol", "policy", "launcher", "teacher", "align")


def _split(override: str) -> tuple[str, str]:
    if "=" not in override:
        raise InvalidConfig(f"Bad override '{override}': expected key=value, e.g. suite=libero_spatial")
    key, value = override.split("=", 1)
    return key.strip(), value.strip()


def _resolve_group(key: str, value: str) -> str:
    value = SUITE_ALIASES.get(value, value) if key == "suite" else value
    if value not in group_choices(key):
        raise UnknownChoice(key, value, group_choices(key))
    return f"{key}={value}"


def config_groups(config_name: str) -> list[str]:
    """The config groups in the defaults list of ``configs/<config_name>.yaml`` (``optional`` ones too)."""
    import yaml

    defaults = yaml.safe_load((config_dir() / f"{config_name}.yaml").read_text()).get("defaults", [])
    return [next(iter(d)).removeprefix("optional ").removeprefix("override ") for d in defaults if isinstance(d, dict)]


def _dotted_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for k in cfg:
        keys.append(f"{prefix}{k}")
        if not OmegaConf.is_missing(cfg, k) and isinstance(cfg[k], DictConfig):  # ??? values are not read
            keys.extend(_dotted_keys(cfg[k], f"{prefix}{k}."))
    return keys


def _check_key(cfg: DictConfig, key: str) -> None:
    if key.lstrip("+~") != key:  # explicit additions and deletions are Hydra's business
        return
    parent_key, _, last = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key, default=None) if parent_key else cfg
    if not isinstance(parent, DictConfig) or last not in parent.keys():  # a required (???) key exists too
        raise UnknownChoice("config key", key, _dotted_keys(cfg))


def _hydra_compose(config_name: str, overrides: list[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return compose(config_name=config_name, overrides=overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise InvalidConfig(str(e).strip().splitlines()[0]) from None


def compose_config(config_name: str, overrides: list[str]) -> DictConfig:
    """Compose ``configs/<config_name>.yaml`` with ``overrides`` (Hydra syntax ``a.b=v``).

    Unknown group options and unknown keys are reported with the valid choices before Hydra
    sees them, so the user gets one line instead of a composition traceback.
    """
    group_overrides, key_overrides = [], []
    for override in overrides:
        key, value = _split(override)
        if key in GROUPS:
            if key not in config_groups(config_name):
                raise UnknownChoice(f"config group of sfbench {config_name}", key, config_groups(config_name))
            group_overrides.append(_resolve_group(key, value))
        else:
            key_overrides.append((key, override))
    base = _hydra_compose(config_name, group_overrides)
    if "protocol" in base and not any(o.startswith("protocol=") for o in group_overrides):
        default = base.suite.get("default_protocol", base.protocol.name)
        if default != base.protocol.name:  # the suite's own protocol (e.g. aloha) unless one is named
            group_overrides.append(_resolve_group("protocol", default))
            base = _hydra_compose(config_name, group_overrides)
    for key, _ in key_overrides:
        _check_key(base, key)
    cfg = _hydra_compose(config_name, group_overrides + [o for _, o in key_overrides])
    OmegaConf.resolve(cfg)
    return cfg
