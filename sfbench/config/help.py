"""``sfbench <command> --help``: a command's config keys (default, type), groups (choices), an example."""

from __future__ import annotations

import json
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

from sfbench.config.compose import compose_config, config_groups
from sfbench.config.docs import section_docs, yaml_comments
from sfbench.config.tree import config_dir, group_choices

# Commands without a Hydra config: their key=value options.
PLAIN_OPTIONS = {
    "status": ["run=<run_id> (required)", "output_dir=<dir> (default results/runs)"],
    "merge": ["run=<run_id> (required)", "output_dir=<dir> (default results/runs)"],
    "compare": ["runs=[<run_a>,<run_b>] (required)", "output_dir=<dir> (default results/runs)"],
    "leaderboard": ["results_dir=<dir> (default results)", "leaderboard.format=table|markdown|csv|json (or --format X)",
                    "leaderboard.suite|policy|protocol|tasks|source=<value>[,<value>] (filters)"],
    "suites": [],
    "data": ["info | export (first word)", "data.path=<dataset> (required: LIBERO HDF5, RLDS or LeRobotDataset)",
             "data.suite=<suite> (keep this suite's tasks)", "data.keys={agentview:..,wrist:..,proprio:..,action:..}",
             "data.to=lerobot (export: LeRobotDataset v3.0)", "output=<dir> (export: new or empty)",
             "data.video=false|true (export: mp4 instead of PNG)", "data.vcodec=libx264|libsvtav1 (export video)",
             "data.cache_dir=<dir> (LeRobot PNG frame cache; default ~/.cache/sfbench/lerobot)"],
    "robotwin-policy": ["root=<RoboTwin checkout> (required)", "name=<policy folder> (default sfbench_remote)",
                        "host=<server host> (default 127.0.0.1)", "port=<server port> (default 8000)",
                        "views=[head,left_wrist,right_wrist] (cameras sent)", "open_loop_steps=<n> (default 25)",
                        "api_key=<key> (default none)", "mode=remote|inprocess (default remote)",
                        "sfbench_args='policy=<name> ...' (inprocess: the sfbench policy)"],
}


def _type(value: Any) -> str:
    if isinstance(value, ListConfig | list):
        return "list"
    if isinstance(value, DictConfig | dict):
        return "mapping"
    return "null" if value is None else type(value).__name__


def _keys(cfg: DictConfig, docs: dict[str, str], prefix: str = "") -> list[str]:
    lines = []
    for key in cfg:
        value = cfg._get_node(key)._value() if OmegaConf.is_missing(cfg, key) else cfg[key]
        if isinstance(value, DictConfig) and len(value) and f"{prefix}{key}" not in docs:
            lines += _keys(value, docs, f"{prefix}{key}.")
        else:
            plain = OmegaConf.to_container(value) if isinstance(value, DictConfig | ListConfig) else value
            shown = "??? (required)" if OmegaConf.is_missing(cfg, key) else json.dumps(plain)
            lines.append(f"  {prefix}{key} = {shown}  ({_type(value)})")
            if f"{prefix}{key}" in docs:
                lines.append(f"      {docs[prefix + key]}")
    return lines


def _schemas(command: str, cfg: DictConfig) -> dict[str, type | None]:
    """The dataclass that validates each section of ``command``'s config (the one source of key docs)."""
    from sfbench.config.tree import SuiteConfig
    from sfbench.core.protocol import Protocol
    from sfbench.eval.run import CollectSettings, EvalSettings
    from sfbench.launch.executors import LauncherConfig
    from sfbench.policies import family_of

    schemas: dict[str, type | None] = {"suite": SuiteConfig, "protocol": Protocol, "launcher": LauncherConfig,
                                       "eval": EvalSettings, "collect": CollectSettings}
    if "policy" in cfg:
        schemas["policy"] = family_of(OmegaConf.to_container(cfg.policy)).config_class
    if command == "train":
        from sfbench.train.align import AlignSettings
        from sfbench.train.data.dataset import DataConfig
        from sfbench.train.trainer import TrainSettings

        schemas |= {"train": TrainSettings, "data": DataConfig, "align": AlignSettings}
    if "server" in cfg:
        from sfbench.serve.served_run import ServerSettings

        schemas["server"] = ServerSettings
    if command == "serve":
        from sfbench.serve.server import ServeConfig

        schemas["serve"] = ServeConfig
    return {k: v for k, v in schemas.items() if k in cfg}


def _key_docs(command: str, cfg: DictConfig) -> dict[str, str]:
    """Dotted key -> one line of meaning: the schema's docstring, else the config file's own comment."""
    docs = yaml_comments((config_dir() / f"{command}.yaml").read_text())
    for group in config_groups(command):
        name = cfg[group].get("name") if group in cfg and isinstance(cfg[group], DictConfig) else None
        path = config_dir() / group / f"{name}.yaml"
        if name and path.is_file():
            docs |= yaml_comments(path.read_text(), f"{group}.")
    return docs | section_docs(_schemas(command, cfg))


def _groups(command: str) -> list[str]:
    defaults = yaml.safe_load((config_dir() / f"{command}.yaml").read_text()).get("defaults", [])
    chosen = {next(iter(d)).split()[-1]: next(iter(d.values())) for d in defaults if isinstance(d, dict)}
    lines = []
    for group in config_groups(command):
        default = chosen.get(group)
        default = "chosen by ${policy} when configs/" + group + "/<policy>.yaml exists" if "${" in str(default) \
            else f"default {default}"
        choices = _trainable(group_choices(group)) if (command, group) == ("train", "policy") else group_choices(group)
        lines.append(f"  {group}=<{'|'.join(choices)}>  ({default})")
    return lines


def _trainable(policies: list[str]) -> list[str]:
    """The policy options whose family can be trained (``sfbench train`` refuses the others)."""
    from sfbench.policies import family_of
    from sfbench.policies.trainable import TrainablePolicy

    options = {p: yaml.safe_load((config_dir() / "policy" / f"{p}.yaml").read_text()) for p in policies}
    return [p for p, cfg in options.items() if issubclass(family_of(cfg), TrainablePolicy)]


def command_help(command: str, summary: str, overrides: list[str] | None = None) -> str:
    """The help text of one command; ``summary`` is its line of the top-level usage (with an example).

    Group choices among ``overrides`` (``policy=openvla_oft``) are composed in, so their keys are shown.
    """
    description, _, example = summary.partition(":  ")
    lines = [f"usage: sfbench {command} [key=value ...]", "", description.strip()]
    if example:
        lines += ["", f"example:  {example.strip()}"]
    if command in PLAIN_OPTIONS:
        options = PLAIN_OPTIONS[command]
        return "\n".join(lines + (["", "options:", *(f"  {o}" for o in options)] if options else []))
    groups = config_groups(command)
    cfg = compose_config(command, [o for o in overrides or [] if o.partition("=")[0] in groups])
    lines += ["", "config groups (group=option):", *_groups(command)]
    lines += ["", "keys (key=value, Hydra syntax; lists as [a,b]):", *_keys(cfg, _key_docs(command, cfg))]
    return "\n".join(lines)
