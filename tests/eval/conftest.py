from __future__ import annotations

import pytest

from sfbench.config.tree import load_protocol
from sfbench.eval.shards import RunSpec
from tests.fakes import FAKE_SUITE

PROTOCOL = load_protocol("libero_oft")


@pytest.fixture
def spec(weird_tmp_path):
    """A run of the zero policy on the fake reach suite (no simulator)."""
    names = {t: f"reach_{t}" for t in range(FAKE_SUITE.num_tasks)}
    return RunSpec("run", weird_tmp_path / "run", FAKE_SUITE, PROTOCOL, {"name": "zero"}, videos_per_task=1,
                   task_names=names, instructions=names)
