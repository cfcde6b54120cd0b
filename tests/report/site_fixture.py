"""A small results folder for the report tests: runs (one with a real MP4), reference rows, an experiment."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from sfbench.eval.records import RECORDS_DIR, append_record
from sfbench.eval.video import write_mp4
from sfbench.report.leaderboard import write_leaderboard
from tests.conftest import REPO
from tests.report.test_aggregate import rec

CLAIMS_POLICIES = {"OpenVLA-OFT": "openvla_oft"}


def _run(results: Path, run_id: str, records, *, video: bool = False) -> Path:
    run_dir = results / "runs" / run_id
    for r in records:
        append_record(run_dir / RECORDS_DIR / "x.jsonl", replace(r, run_id=run_id))
    (run_dir / "config.yaml").write_text(f"run_id: {run_id}\npolicy:\n  name: {records[0].policy}\n")
    (run_dir / "protocol.json").write_text(json.dumps({"name": records[0].protocol, "hash": records[0].protocol_hash}))
    if video:
        frames = [np.full((32, 48, 3), 40 * i, np.uint8) for i in range(6)]
        write_mp4(run_dir / "videos" / "task000_ep0000.mp4", frames, fps=5)
    return run_dir


def make_results(root: Path) -> Path:
    """``root/results``: an OFT run over all of libero_spatial (45/50 on task 0..9 x 5), an ALOHA run with a
    video and a failure reason, the committed reference rows, and one experiment (README with a figure,
    a committed curve and probe)."""
    results = root / "results"
    oft = [replace(rec(t, ep, not (t == 0 and ep < 5), suite="libero_spatial"), policy="openvla_oft",
                   checkpoint="ck1", protocol="libero_oft", protocol_hash="hoft") for t in range(10) for ep in range(5)]
    _run(results, "oft-full", oft)
    aloha = [replace(rec(0, ep, ep == 0, failure="policy_nan" if ep == 2 else None, suite="aloha_transfer_cube"),
                     policy="tiny_vla", checkpoint="ck2", protocol="aloha", protocol_hash="hal",
                     video_path="videos/task000_ep0000.mp4" if ep == 0 else None) for ep in range(4)]
    _run(results, "aloha-run", aloha, video=True)
    shutil.copytree(REPO / "results" / "reference", results / "reference")
    exp = results / "experiments" / "demo_exp"
    (exp / "fig").mkdir(parents=True)
    shutil.copy(REPO / "results" / "figures" / "render_profiles.png", exp / "fig" / "plot.png")
    (exp / "README.md").write_text("# Demo experiment\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n![plot](fig/plot.png)\n\n"
                                   "See [the plot](fig/plot.png) and [a missing file](nothing/here.txt).\n")
    src = REPO / "results" / "experiments" / "sf_tiny_spatial3"
    shutil.copytree(src / "convergence", exp / "convergence")
    shutil.copytree(src / "probe", exp / "probe")
    write_leaderboard(results)
    return results
