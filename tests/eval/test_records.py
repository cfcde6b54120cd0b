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


def test_duplicate_episode_keys_keep_the_first_finished(tmp_path, caplog):
    first = replace(rec(0, 0, False), finished_at="2026-01-01T00:00:00")
    second = replace(rec(0, 0, True), finished_at="2026-01-02T00:00:00")
    append_record(tmp_path / RECORDS_DIR / "a.jsonl", second)  # file order is not finishing order
    append_record(tmp_path / RECORDS_DIR / "b.jsonl", first)
    (only,) = load_records(tmp_path)
    assert not only.success, "the record finished first must win, whatever the file order"
    assert "recorded twice with different outcomes" in caplog.text
    assert "b.jsonl:1" in caplog.text, "the warning names the file and line of the scored record"


def test_a_bad_line_is_warned_once_per_process_with_file_and_line(tmp_path, caplog):
    path = tmp_path / RECORDS_DIR / "a.jsonl"
    append_record(path, rec(0, 0, True))
    with path.open("a") as f:
        f.write("not json\n")
    append_record(path, rec(0, 1, True))
    for _ in range(4):  # a command reads a run's records several times
        assert len(load_records(tmp_path)) == 2
    warnings = [r for r in caplog.records if "not an episode record" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert f"{path}:2" in warnings[0].getMessage()
