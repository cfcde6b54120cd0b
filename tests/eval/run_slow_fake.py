"""Run two shards of the slow fake suite on 2 workers (the process that a signal test kills)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from sfbench.eval.shards import plan_shards, run_shards
from tests.eval.conftest import PROTOCOL
from tests.fakes import FAKE_SUITE

if __name__ == "__main__":
    from sfbench.eval.shards import RunSpec

    names = {t: f"reach_{t}" for t in range(FAKE_SUITE.num_tasks)}
    spec = RunSpec("run", Path(sys.argv[1]), replace(FAKE_SUITE, benchmark="tests.slow_fake"), PROTOCOL,
                   {"name": "zero"}, task_names=names, instructions=names)
    run_shards(spec, plan_shards([0, 1], range(4), 4), num_workers=2)
