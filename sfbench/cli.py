"""``sfbench <command> [key=value ...]``: the only module that reads argv and the environment.

User errors (:class:`SfbenchError`) print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

from sfbench.errors import SfbenchError, UnknownChoice

USAGE = """usage: sfbench <command> [key=value ...]

commands:
  eval          evaluate a policy:  sfbench eval suite=libero_spatial policy=scripted eval.tasks=[0,1]
  leaderboard   write results/leaderboard.csv from results/runs and results/reference
  suites        list the suites and their task counts

Overrides use Hydra syntax; config groups: suite, protocol, policy, launcher (see configs/)."""


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def cmd_eval(overrides: list[str]) -> None:
    """Run or resume an evaluation, then print its summary table."""
    from sfbench.aggregate import format_summary
    from sfbench.compose import compose_config
    from sfbench.evaluation import run_eval

    run_dir, summary = run_eval(compose_config("eval", overrides))
    _out(format_summary(summary))
    _out(f"records: {run_dir / 'records'}\nsummary: {run_dir / 'summary.json'}")


def cmd_leaderboard(overrides: list[str]) -> None:
    """Rebuild the leaderboard CSV."""
    from sfbench.leaderboard import write_leaderboard

    results_dir = Path("results")
    for o in overrides:
        key, _, value = o.partition("=")
        if key != "results_dir":
            raise UnknownChoice("leaderboard option", key, ["results_dir"])
        results_dir = Path(value)
    _out(f"leaderboard: {write_leaderboard(results_dir)}")


def cmd_suites(overrides: list[str]) -> None:
    """List suites with their task counts and protocol keys."""
    from sfbench.config import SUITE_ALIASES, group_choices, load_suite

    for name in group_choices("suite"):
        s = load_suite(name)
        _out(f"{name:<34} {s.num_tasks:>3} tasks  {s.description}")
    _out("aliases: " + ", ".join(f"{a} -> {b}" for a, b in SUITE_ALIASES.items()))


COMMANDS: dict[str, Callable[[list[str]], None]] = {
    "eval": cmd_eval,
    "leaderboard": cmd_leaderboard,
    "suites": cmd_suites,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sfbench`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        _out(USAGE)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    command, overrides = argv[0], argv[1:]
    try:
        if command not in COMMANDS:
            raise UnknownChoice("command", command, COMMANDS)
        COMMANDS[command](overrides)
    except SfbenchError as e:
        sys.stderr.write(f"sfbench: error: {e}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("sfbench: interrupted; finished episodes are kept, rerun the same command to resume\n")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
