from __future__ import annotations

from dataclasses import replace

from sfbench.eval.records import RECORDS_DIR, append_record, load_records
from tests.report.test_aggregate import rec


def test_append_and_load_round_trip(weird_tmp_path):
    path = weird_tmp_path / RECORDS_DIR / "a.jsonl"
    for ep in range(3):
        append_record(path, rec(0, ep, ep % 2 == 0))
    loaded = load_records(weird_tmp_path)
    assert [r.episode_index for r in loaded] == [0, 1, 2]
    assert loaded[0] == rec(0, 0, True)


def test_truncated_last_line_is_skipped(tmp_path):
    path = tmp_path / RECORDS_DIR / "a.jsonl"
    append_record(path, rec(0, 0, True))
    with path.open("a") as f:
        f.write('{"run_id": "r", "suc')  # a write cut by a crash
    assert len(load_records(tmp_path)) == 1


def test_duplicate_episode_keys_keep_the_latest(tmp_path):
    first = replace(rec(0, 0, False), finished_at="2026-01-01T00:00:00")
    second = replace(rec(0, 0, True), finished_at="2026-01-02T00:00:00")
    append_record(tmp_path / RECORDS_DIR / "b.jsonl", second)
    append_record(tmp_path / RECORDS_DIR / "a.jsonl", first)
    (only,) = load_records(tmp_path)
    assert only.success, "the record finished last must win"
