from __future__ import annotations

import pytest

from sfbench.config.sweep import expand_sweeps
from sfbench.core.errors import InvalidConfig


def test_sweeps_expand_to_the_cartesian_product_in_hydra_order():
    jobs = expand_sweeps(["data.fraction=0.05,0.25,1.0", "policy=a,b", "train.steps=10", "eval.tasks=[0,1]"])
    assert len(jobs) == 6
    assert jobs[0] == ["data.fraction=0.05", "policy=a", "train.steps=10", "eval.tasks=[0,1]"]
    assert jobs[1][:2] == ["data.fraction=0.05", "policy=b"]
    assert jobs[-1][:2] == ["data.fraction=1.0", "policy=b"]


def test_no_sweep_is_one_job():
    assert expand_sweeps(["a=1"]) == [["a=1"]]


def test_unparsable_override_is_a_user_error():
    with pytest.raises(InvalidConfig):
        expand_sweeps(["a=[1,2"])
