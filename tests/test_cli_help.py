"""`sfbench <command> --help`: keys with defaults and types, config groups with choices, an example."""

from __future__ import annotations

import pytest

from sfbench.cli import COMMANDS, main


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_answers_help_and_creates_nothing(command, flag, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([command, "run_id=x", flag]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: sfbench {command}") and "example:  sfbench" in out
    assert list(tmp_path.iterdir()) == [], "help creates nothing"


def test_eval_help_lists_keys_defaults_types_and_group_choices(capsys):
    assert main(["eval", "--help"]) == 0
    out = capsys.readouterr().out
    assert "  eval.episodes_per_task = 50  (int)" in out
    assert "  policy=<" in out and "scripted" in out and "(default scripted)" in out
    assert "libero_spatial" in out.split("  suite=<", 1)[1].split("\n", 1)[0]


def test_train_help_shows_the_align_group(capsys):
    assert main(["train", "-h"]) == 0
    out = capsys.readouterr().out
    assert "  align=<openvla_sf|sf|tiny_vla_sf>" in out and "  align.alpha = 0.5  (float)" in out
