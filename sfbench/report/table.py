"""``sfbench leaderboard`` output: the leaderboard rows, filtered, as a text table, Markdown, CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable

from sfbench.core.errors import UnknownChoice

FORMATS = ("table", "markdown", "csv", "json")
FILTERS = ("suite", "policy", "protocol", "tasks", "source")
NUMERIC = {"n_episodes": int, "success_rate": float, "ci_low": float, "ci_high": float}
SHOWN = ("protocol", "suite", "tasks", "policy", "checkpoint", "success", "95% CI", "n", "source")


def filter_rows(rows: list[dict[str, str]], **wanted: str | None) -> list[dict[str, str]]:
    """Rows whose fields equal every given filter (comma-separated values: any of them).

    Raises:
        UnknownChoice: a filter value that no row has (the values present are the choices).
    """
    for key, value in wanted.items():
        if value is None:
            continue
        allowed = {v.strip() for v in value.split(",") if v.strip()}
        present = {r[key] for r in rows}
        for v in sorted(allowed - present):
            raise UnknownChoice(f"leaderboard {key}", v, present)
        rows = [r for r in rows if r[key] in allowed]
    return rows


def _ordered(rows: Iterable[dict[str, str]]) -> list[dict[str, str]]:
    """Protocol first, so one protocol's rows stay together; best success first inside a suite."""
    return sorted(rows, key=lambda r: (r["protocol"], r["protocol_hash"], r["suite"], r["tasks"],
                                       -float(r["success_rate"]), r["policy"]))


def _cells(r: dict[str, str]) -> list[str]:
    protocol = f"{r['protocol']} {r['protocol_hash']}".strip()
    ci = f"[{100 * float(r['ci_low']):.1f}, {100 * float(r['ci_high']):.1f}]"
    return [protocol, r["suite"], r["tasks"], r["policy"], r["checkpoint"], f"{100 * float(r['success_rate']):.1f}%",
            ci, r["n_episodes"], r["source"]]


def _text_table(rows: list[dict[str, str]]) -> str:
    body = [_cells(r) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in body)) if body else len(h) for i, h in enumerate(SHOWN)]
    right = {"success", "95% CI", "n"}
    fmt = lambda cells: "  ".join(c.rjust(w) if h in right else c.ljust(w)  # noqa: E731
                                  for c, w, h in zip(cells, widths, SHOWN, strict=True)).rstrip()
    lines = [fmt(list(SHOWN)), fmt(["-" * w for w in widths])]
    previous = None
    for r, cells in zip(rows, body, strict=True):
        if previous is not None and (r["protocol"], r["protocol_hash"]) != previous:
            lines.append("")  # a blank line between protocols: their scores are never compared
        previous = (r["protocol"], r["protocol_hash"])
        lines.append(fmt(cells))
    return "\n".join(lines)


def _markdown(rows: list[dict[str, str]]) -> str:
    escape = lambda c: c.replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(SHOWN) + " |",
             "|" + "|".join("---:" if h in ("success", "n") else "---" for h in SHOWN) + "|"]
    lines += ["| " + " | ".join(escape(c) for c in _cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def _csv(rows: list[dict[str, str]], fields: list[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().rstrip("\n")


def _json(rows: list[dict[str, str]]) -> str:
    typed = [{k: NUMERIC[k](v) if k in NUMERIC else v for k, v in r.items()} for r in rows]
    return json.dumps(typed, indent=2)


def format_rows(rows: list[dict[str, str]], fmt: str, fields: list[str]) -> str:
    """``rows`` (leaderboard CSV rows) in ``fmt``; ``fields`` are the CSV columns (for ``csv``)."""
    if fmt not in FORMATS:
        raise UnknownChoice("leaderboard format", fmt, FORMATS)
    rows = _ordered(rows)
    if fmt == "table":
        return _text_table(rows)
    if fmt == "markdown":
        return _markdown(rows)
    return _csv(rows, fields) if fmt == "csv" else _json(rows)


def parse_options(overrides: list[str]) -> tuple[str, str, dict[str, str]]:
    """``results_dir=``, ``leaderboard.format=`` (or ``--format X``) and ``leaderboard.<filter>=`` options.

    Returns:
        (results_dir, format, filters): every option is checked before anything is written.
    """
    args, i = [], 0
    while i < len(overrides):  # `--format X` and `--format=X` are spelled leaderboard.format=X
        o = overrides[i]
        if o == "--format" and i + 1 < len(overrides):
            args.append(f"leaderboard.format={overrides[i + 1]}")
            i += 2
            continue
        args.append(f"leaderboard.format={o.removeprefix('--format=')}" if o.startswith("--format=") else o)
        i += 1
    keys = ["results_dir", "leaderboard.format", *(f"leaderboard.{f}" for f in FILTERS)]
    results_dir, fmt, filters = "results", "table", {}
    for o in args:
        key, sep, value = o.partition("=")
        if key not in keys or not sep:
            raise UnknownChoice("leaderboard option", key, [f"{k}=<value>" for k in keys])
        if key == "results_dir":
            results_dir = value
        elif key == "leaderboard.format":
            if value not in FORMATS:
                raise UnknownChoice("leaderboard format", value, FORMATS)
            fmt = value
        else:
            filters[key.removeprefix("leaderboard.")] = value
    return results_dir, fmt, filters


def leaderboard_text(path: str | object, fmt: str, filters: dict[str, str]) -> str:
    """The leaderboard CSV at ``path``, filtered, in ``fmt``."""
    with open(str(path), newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        fields = list(reader.fieldnames or [])
    return format_rows(filter_rows(rows, **filters), fmt, fields)
