"""Every ``sfbench`` command line of README.md runs through its dry run, so a wrong README command fails CI.

Placeholders and machine-specific paths (``<demos>``, ``/data/openvla-7b``, ...) are replaced by small
fixtures made here in the real formats. A command whose inputs no fixture can stand in for (the
outputs of a long experiment, a RoboTwin checkout, a CUDA device) is still composed: its command,
config groups and keys must exist. Commands without a config (``status``, ``compare``, ...) have
their options checked against the command's own option list.
"""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sfbench.cli import COMMANDS, main
from sfbench.config.help import PLAIN_OPTIONS
from sfbench.policies.openvla_oft.tiny import write_tiny_checkpoint
from sfbench.policies.tiny_vla import TinyVLA, TinyVLAConfig
from sfbench.policies.tiny_vla.checkpoint import save_checkpoint
from tests.conftest import REPO
from tests.policies.test_tiny_vla import STATS
from tests.train.test_demos import write_file

DRY_RUN = {"eval": "eval.dry_run=true", "collect": "collect.dry_run=true", "train": "train.dry_run=true",
           "curves": "curves.dry_run=true"}
COMPOSED = ("eval", "collect", "train", "curves", "probe", "serve", "doctor")


def readme_commands() -> list[str]:
    """The ``sfbench ...`` lines of README.md's shell blocks, continuations joined, comments dropped."""
    blocks = re.findall(r"```(?:bash|sh|console)?\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    commands = []
    for block in blocks:
        current = ""
        for line in block.splitlines():
            line = line.strip()
            if not current and not line.startswith("sfbench "):
                continue
            current = f"{current} {line}".strip()
            if current.endswith("\\"):
                current = current[:-1]
                continue
            commands.append(re.sub(r"\s+#.*$", "", current).strip())
            current = ""
    return commands


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict[str, str]:
    """Fixtures in the real formats, keyed by the README text they stand in for."""
    root = tmp_path_factory.mktemp("readme")
    demos = root / "demos"
    write_file(demos / "task_demo.hdf5", 2)
    oft = write_tiny_checkpoint(root / "tiny_oft")
    sf = root / "sf_ckpt"
    torch.manual_seed(0)
    config = TinyVLAConfig(name="tiny_vla_sf")
    save_checkpoint(sf, TinyVLA(config), config, STATS, step=300)
    rlds = REPO / "tests" / "train" / "data" / "rlds" / "libero_spatial_no_noops"
    return {"<demos with depth>": str(demos), "<demos>": str(demos), "results/demos/spatial01/demos": str(demos),
            "results/demos/<run>/demos": str(demos), "results/train/sf01/checkpoints/step_000300": str(sf),
            "/data/openvla-7b-oft-finetuned-libero-spatial": str(oft), "/data/oft-libero-10": str(oft),
            "/data/openvla-7b": str(oft), "/tmp/tiny_oft": str(oft), "/tmp/tiny_base": str(oft),
            "/data/libero/libero_spatial_no_noops": str(rlds), "/data/modified_libero_rlds/libero_spatial_no_noops":
            str(rlds), "/data/HuggingFaceVLA/libero": str(REPO / "tests" / "train" / "data" / "lerobot_v30_images"),
            "gpu-box": "127.0.0.1"}


@pytest.fixture(scope="module")
def server() -> str:
    """A real ``sfbench serve`` on a free loopback port, for the README's remote-policy commands."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("sfbench")
    proc = subprocess.Popen([str(exe), "serve", "policy=zero", f"serve.port={port}"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    yield str(port)
    proc.terminate()
    proc.wait(30)


def _substitute(command: str, fixtures: dict[str, str], port: str) -> list[str]:
    for text in sorted(fixtures, key=len, reverse=True):
        command = command.replace(text, fixtures[text])
    command = command.replace("port=8000", f"port={port}")
    if "policy=remote" in command and "policy.port=" not in command:
        command += f" policy.port={port}"
    return shlex.split(command)[1:]


def _check_options(command: str, args: list[str]) -> None:
    if command not in PLAIN_OPTIONS:
        return
    names = [o.split("=")[0] for o in PLAIN_OPTIONS[command]]  # "leaderboard.suite|policy": two keys
    known = {f"{n.rpartition('.')[0]}.{alt}".lstrip(".") for n in names for alt in n.rpartition(".")[2].split("|")}
    for arg in args:
        assert arg.split("=")[0] in known, f"sfbench {command}: unknown option {arg!r}; known: {sorted(known)}"


@pytest.mark.parametrize("line", readme_commands())
def test_readme_command_passes_its_dry_run(line, workspace, server, tmp_path, monkeypatch, capsys):
    from sfbench.config.compose import compose_config

    args = _substitute(line, workspace, server)
    if "--help" in args:
        assert main(args) == 0 and "keys (key=value" in capsys.readouterr().out
        return
    command, overrides = args[0], args[1:]
    assert command in COMMANDS, f"README names an unknown command: {line}"
    monkeypatch.chdir(tmp_path)
    unresolved = [a for a in overrides if "<" in a or a == "..." or ("cuda" in a and not torch.cuda.is_available())]
    overrides = [a for a in overrides if a != "..."]  # an abbreviated line: its other keys are still checked
    if command not in DRY_RUN or unresolved or command == "curves":  # curves: README's runs are an experiment's
        _check_options(command, overrides)
        if command in COMPOSED:  # groups and keys must exist; a placeholder value becomes a plain word
            sweep = overrides[0] in ("-m", "--multirun")
            plain = [re.sub(r"<([^<>]*)>", lambda m: re.sub(r"\W", "_", m.group(1)), o) for o in overrides[sweep:]]
            compose_config(command, [o.split(",")[0] if sweep else o for o in plain])
        return
    rc = main([command, *overrides, DRY_RUN[command]])
    out = capsys.readouterr()
    assert rc == 0, f"{line}\n{out.err}"
    assert f"dry run of sfbench {command}: nothing was created" in out.out, out.out
    assert list(tmp_path.iterdir()) == [], f"a dry run created {list(tmp_path.iterdir())}"
