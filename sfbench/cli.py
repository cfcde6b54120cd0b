"""``sfbench <command> [key=value ...]``: the only module that reads argv and the environment.

User errors (:class:`SfbenchError`) print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from sfbench.config.help import command_help
from sfbench.core.errors import InvalidConfig, SfbenchError, UnknownChoice
from sfbench.core.logs import quiet_third_party_logs

USAGE = """usage: sfbench <command> [key=value ...]

commands:
  eval          evaluate a policy:  sfbench eval suite=libero_spatial policy=scripted eval.tasks=[0,1]
  collect       scripted-expert demos in LIBERO HDF5:  sfbench collect suite=libero_spatial collect.tasks=[0]
  train         train (-m: sweep; align=sf: Spatial Forcing):  sfbench train policy=tiny_vla_sf data.path=<demos>
  status        shards of a run: done / running / failed / missing:  sfbench status run=<run_id>
  merge         aggregate a run, list missing episodes and the command to finish:  sfbench merge run=<run_id>
  curves        success vs training step / data:  sfbench curves kind=convergence runs=[<train_a>,<train_b>]
  probe         depth probe on frozen visual tokens:  sfbench probe checkpoints=[<ckpt_a>,<ckpt_b>] probe.data=<demos>
  compare       paired comparison of two runs:  sfbench compare runs=[<run_a>,<run_b>]
  leaderboard   write results/leaderboard.csv, print it:  sfbench leaderboard leaderboard.suite=libero_10 --format json
  report        static site of the results (file://; `report serve`: localhost):  sfbench report report.output_dir=site
  serve         serve a policy over openpi's websocket protocol:  sfbench serve policy=scripted serve.port=8000
  suites        list the suites and their task counts:  sfbench suites
  doctor        check what a suite needs on this machine:  sfbench doctor suite=robotwin_clean
  robotwin-policy  a RoboTwin policy/<name>/ that queries sfbench serve:  sfbench robotwin-policy root=<RoboTwin>
  data          inspect a dataset or export it as LeRobot v3.0:  sfbench data info data.path=<hdf5|rlds|lerobot dir>

Overrides use Hydra syntax; `sfbench <command> --help` lists its keys, defaults and config groups.
eval, collect, train and curves take a dry run (e.g. eval.dry_run=true): validate, print the plan, create nothing.
sfbench --version prints the version (also in every episode record)."""
HELP_FLAGS = ("-h", "--help")
VERSION_FLAGS = ("-V", "--version")


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def cmd_eval(overrides: list[str]) -> None:
    """Run or resume an evaluation, then print its summary table."""
    from sfbench.config.compose import compose_config
    from sfbench.eval.run import run_eval
    from sfbench.report.aggregate import format_summary

    cfg = compose_config("eval", overrides)
    if cfg.eval.dry_run:
        from sfbench.eval.dry_run import format_eval_plan, plan_eval

        _out(format_eval_plan(plan_eval(cfg)))
        return
    spec, summary = run_eval(cfg, overrides)
    if summary is None:
        _out(f"submitted run {spec.run_id}\n  status: sfbench status run={spec.run_id} output_dir={spec.run_dir.parent}"
             f"\n  merge:  sfbench merge run={spec.run_id} output_dir={spec.run_dir.parent}")
        return
    _out(format_summary(summary))
    _out(f"records: {spec.run_dir / 'records'}\nsummary: {spec.run_dir / 'summary.json'}")


def _options(overrides: list[str], choices: dict[str, str]) -> dict[str, str]:
    """Parse ``key=value`` options of the run commands; ``choices`` maps key -> usage text."""
    opts = {"output_dir": "results/runs"}
    for o in overrides:
        key, sep, value = o.partition("=")
        if key not in choices or not sep:
            raise UnknownChoice("option", o, choices.values())
        opts[key] = value
    return opts


def _run_dir(overrides: list[str]) -> Path:
    """``run=<id>`` [``output_dir=<dir>``] -> the run directory."""
    opts = _options(overrides, {"run": "run=<run_id>", "output_dir": "output_dir=<dir>"})
    if "run" not in opts:
        raise SfbenchError("Missing run=<run_id> (see results/runs/ for run ids)")
    return Path(opts["output_dir"]) / opts["run"]


def cmd_status(overrides: list[str]) -> None:
    """Print each shard of a run: done / running / failed / missing, with its job id."""
    from collections import Counter

    from sfbench.eval.status import shard_status

    run_dir = _run_dir(overrides)
    rows = shard_status(run_dir)
    for r in rows:
        infra = f"  {r.infra_errors} infra errors to retry" if r.infra_errors else ""
        _out(f"task {r.task_id:>3} episodes {r.episodes[0]:>3}-{r.episodes[-1]:<3} {r.state:<8} "
             f"{r.recorded}/{len(r.episodes)} recorded{infra}  job {r.job_id or '-'} {r.job_state or ''}".rstrip())
    counts = Counter(r.state for r in rows)
    infra_total = sum(r.infra_errors for r in rows)
    _out(", ".join(f"{counts[s]} {s}" for s in ("done", "running", "failed", "missing"))
         + (f"; {infra_total} episodes with infrastructure errors to retry" if infra_total else ""))
    _out_unplanned(run_dir)


def _out_unplanned(run_dir: Path) -> None:
    """List the records of episodes outside the run's plan (never scored), with file and line."""
    from sfbench.eval.rundir import RunDir

    extra = RunDir(run_dir).unplanned_records()
    if extra:
        listed = ", ".join(f"{loc.where} (task {loc.record.task_id} ep {loc.record.episode_index})"
                           for loc in extra[:10]) + (" ..." if len(extra) > 10 else "")
        _out(f"{len(extra)} records outside the run's plan, not scored: {listed}")


def cmd_merge(overrides: list[str]) -> None:
    """Aggregate a run's shards, list missing episodes and the command that finishes them."""
    from sfbench.eval.rundir import RunDir
    from sfbench.eval.status import finish_command, merge
    from sfbench.report.aggregate import format_summary

    run_dir = _run_dir(overrides)
    summary, missing = merge(run_dir)
    _out(format_summary(summary))
    _out(f"summary: {run_dir / 'summary.json'}")
    if missing:
        infra = RunDir(run_dir).load_infra_errors()
        listed = ", ".join(f"task {t} ep {e}" + (f" ({infra[t, e][-1]})" if (t, e) in infra else "")
                           for t, e in missing[:20]) + (" ..." if len(missing) > 20 else "")
        _out(f"missing {len(missing)} episodes: {listed}\nfinish with: {finish_command(run_dir)}")
    else:
        _out("complete: every planned episode is recorded")
    _out_unplanned(run_dir)


def cmd_collect(overrides: list[str]) -> None:
    """Collect scripted-expert demonstrations; print the expert's success table and the files."""
    from sfbench.config.compose import compose_config
    from sfbench.report.aggregate import format_summary
    from sfbench.train.collect import plan_collect, run_collect

    cfg = compose_config("collect", overrides)
    if cfg.collect.dry_run:
        _out(plan_collect(cfg))
        return
    spec, summary = run_collect(cfg)
    _out(format_summary(summary))
    o = summary["overall"]
    _out(f"kept {o['successes']} of {o['n']} demos (expert success {100 * o['success_rate']:.1f}%) "
         f"in {spec.run_dir / 'demos'}")


def cmd_train(overrides: list[str]) -> None:
    """Train (``-m``: a sweep of runs); print each run directory and its final checkpoint or job."""
    from sfbench.train.run import plan_train, resolve_train, run_train

    multirun = bool(overrides) and overrides[0] in ("-m", "--multirun")
    resolved = resolve_train(overrides[1:] if multirun else overrides, multirun=multirun)
    plan = plan_train(resolved)
    if plan is not None:
        _out(plan)
        return
    for job, result in run_train(resolved):
        _out(f"{job.run_dir}: {result if isinstance(result, Path) else 'job ' + str(result.job_id)}")


def cmd_serve(overrides: list[str]) -> None:
    """Serve a policy until Ctrl-C (or SIGTERM)."""
    from sfbench.config.compose import compose_config
    from sfbench.serve.run import run_serve

    run_serve(compose_config("serve", overrides), announce=_out)


def cmd_compare(overrides: list[str]) -> None:
    """Paired comparison of two runs: success difference with a 95% interval and McNemar's test."""
    from sfbench.report.compare import compare

    opts = _options(overrides, {"runs": "runs=[<run_a>,<run_b>]", "output_dir": "output_dir=<dir>"})
    runs = [r.strip() for r in opts.get("runs", "").strip("[]").split(",") if r.strip()]
    if len(runs) != 2:
        raise SfbenchError(f"compare needs runs=[<run_a>,<run_b>], got {opts.get('runs')!r}")
    c = compare(Path(opts["output_dir"]) / runs[0], Path(opts["output_dir"]) / runs[1])
    _out(f"{c.n_pairs} paired episodes (same task and init state)\n"
         f"  A {runs[0]}: {100 * c.rate_a:.1f}%\n  B {runs[1]}: {100 * c.rate_b:.1f}%\n"
         f"  A - B: {100 * c.difference:+.1f} points, 95% CI [{100 * c.ci_low:+.1f}, {100 * c.ci_high:+.1f}]\n"
         f"  pairs: both {c.both}, only A {c.only_a}, only B {c.only_b}, neither {c.neither}; "
         f"McNemar exact p = {c.p_value:.4g}")


def cmd_curves(overrides: list[str]) -> None:
    """Evaluate train runs' checkpoints and write the curve (PNG, CSVs) with threshold crossings."""
    from sfbench.config.compose import compose_config
    from sfbench.curves.run import run_curves

    result = run_curves(compose_config("curves", overrides))
    _out(result["table"])
    _out("\n".join(f"{k}: {v}" for k, v in result["files"].items()))


def cmd_probe(overrides: list[str]) -> None:
    """Fit depth probes on frozen policies' visual tokens; print the test-split metrics."""
    from sfbench.config.compose import compose_config
    from sfbench.probe.run import run_probe

    result = run_probe(compose_config("probe", overrides))
    _out(f"layer {result['layer']}; {result['train_frames']} train / {result['test_frames']} test frames\n"
         + result["table"])
    _out(f"csv: {result['csv']}\n" + "\n".join(f"grid: {p}" for p in result["grids"].values()))


def cmd_leaderboard(overrides: list[str]) -> None:
    """Rebuild the leaderboard CSV and print it (leaderboard.format=table|markdown|csv|json, filters)."""
    from sfbench.report.leaderboard import write_leaderboard
    from sfbench.report.table import leaderboard_text, parse_options

    results_dir, fmt, filters = parse_options(overrides)
    path = write_leaderboard(Path(results_dir))
    _out(leaderboard_text(path, fmt, filters))
    if fmt in ("table", "markdown"):  # csv and json stay machine-readable; the path is logged
        _out(f"\nleaderboard: {path}")
    logging.getLogger(__name__).info("leaderboard: %s", path)


def cmd_report(overrides: list[str]) -> None:
    """Write the static report site (``serve`` first: then serve it on localhost)."""
    from sfbench.config.compose import compose_config
    from sfbench.report.site.run import run_report

    serve = bool(overrides) and overrides[0] == "serve"
    run_report(compose_config("report", overrides[serve:]), serve=serve, announce=_out)


def cmd_suites(overrides: list[str]) -> None:
    """List suites with their task counts and protocol keys."""
    from sfbench.config.tree import SUITE_ALIASES, group_choices, load_suite

    for name in group_choices("suite"):
        s = load_suite(name)
        _out(f"{name:<34} {s.num_tasks:>3} tasks  {s.description}")
    _out("aliases: " + ", ".join(f"{a} -> {b}" for a, b in SUITE_ALIASES.items()))


def cmd_doctor(overrides: list[str]) -> None:
    """Print one line per requirement of the suite; exit 1 when one is missing."""
    from sfbench.config.compose import compose_config
    from sfbench.envs.doctor import run_doctor

    checks = run_doctor(compose_config("doctor", overrides))
    for c in checks:
        _out(f"{'ok' if c.ok else 'MISSING':<8} {c.name}: {c.detail}")
    missing = [c.name for c in checks if not c.ok]
    _out(f"{len(checks) - len(missing)} of {len(checks)} requirements met" + (f"; missing: {', '.join(missing)}"
                                                                              if missing else ""))
    if missing:
        sys.exit(1)


def cmd_robotwin_policy(overrides: list[str]) -> None:
    """Write the RoboTwin policy folder and print how to run it."""
    import yaml

    from sfbench.envs.robotwin_export import write_policy_dir

    opts = {"name": "sfbench_remote", "host": "127.0.0.1", "port": "8000", "views": "[head,left_wrist,right_wrist]",
            "open_loop_steps": "25", "api_key": None, "mode": "remote", "sfbench_args": ""}
    choices = {k: f"{k}=<value>" for k in ("root", *opts)}
    given = _options(overrides, choices)
    given.pop("output_dir")
    if "root" not in given:
        raise SfbenchError("Missing root=<RoboTwin checkout> (the folder is written to <root>/policy/<name>/)")
    opts |= given
    try:
        port, steps, views = int(opts["port"]), int(opts["open_loop_steps"]), yaml.safe_load(opts["views"])
    except (TypeError, ValueError) as e:
        raise InvalidConfig(f"robotwin-policy: {e}") from None
    folder = write_policy_dir(opts["root"], opts["name"], opts["host"], port, views, steps,
                              api_key=opts["api_key"], mode=opts["mode"], sfbench_args=opts["sfbench_args"])
    serve = f"sfbench serve policy=<policy> serve.host=0.0.0.0 serve.port={port}, then " \
        if opts["mode"] == "remote" else ""
    _out(f"wrote {folder}\n  run: {serve}cd {folder.parent.parent} && bash policy/{opts['name']}/eval.sh "
         "beat_block_hammer demo_clean sfbench 0 0")


def cmd_data(overrides: list[str]) -> None:
    """``data info``: what a dataset holds; ``data export``: write it as a LeRobotDataset v3.0."""
    import yaml

    from sfbench.train.data.commands import check_export, dataset_info, export_dataset, format_info

    action, rest = (overrides[0], overrides[1:]) if overrides else ("", [])
    if action not in ("info", "export"):
        raise UnknownChoice("data action", action, ["info", "export"])
    keys = ("data.path", "data.suite", "data.keys", "data.to", "output", "data.video", "data.vcodec", "data.fps",
            "data.cache_dir")
    opts = _options(rest, {k: f"{k}=<value>" for k in keys})
    if "data.path" not in opts:
        raise SfbenchError("Missing data.path=<dataset> (LIBERO HDF5, an RLDS dir or a LeRobotDataset root)")
    try:
        data_keys = yaml.safe_load(opts["data.keys"]) if "data.keys" in opts else None
        video, fps = yaml.safe_load(opts.get("data.video", "false")), int(opts.get("data.fps", "10"))
    except (yaml.YAMLError, ValueError) as e:
        raise InvalidConfig(f"data: {e}") from None
    common = {"suite": opts.get("data.suite"), "keys": data_keys, "cache_dir": opts.get("data.cache_dir")}
    if action == "info":
        _out(format_info(dataset_info(opts["data.path"], **common)))
        return
    check_export(opts.get("data.to", "lerobot"), opts.get("output"), opts.get("data.vcodec", "libx264"))
    out, n = export_dataset(opts["data.path"], opts["output"], to=opts.get("data.to", "lerobot"), video=bool(video),
                            vcodec=opts.get("data.vcodec", "libx264"), fps=fps, **common)
    _out(f"wrote {n} episodes as LeRobotDataset v3.0 to {out}\n  check: sfbench data info data.path={out}")


COMMANDS: dict[str, Callable[[list[str]], None]] = {
    "eval": cmd_eval,
    "collect": cmd_collect,
    "train": cmd_train,
    "compare": cmd_compare,
    "curves": cmd_curves,
    "probe": cmd_probe,
    "leaderboard": cmd_leaderboard,
    "report": cmd_report,
    "serve": cmd_serve,
    "suites": cmd_suites,
    "doctor": cmd_doctor,
    "robotwin-policy": cmd_robotwin_policy,
    "data": cmd_data,
    "status": cmd_status,
    "merge": cmd_merge,
}


def _summary(command: str) -> str:
    """The command's line of :data:`USAGE`, without its name."""
    return next(line.strip().removeprefix(command).strip() for line in USAGE.splitlines()
                if line.strip().split(" ", 1)[0] == command)


class Terminated(BaseException):
    """SIGTERM (``kill``, a cluster's time limit): unwound like Ctrl-C, so workers are stopped."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sfbench`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in (*HELP_FLAGS, "help"):
        _out(USAGE)
        return 0
    if argv[0] in VERSION_FLAGS:
        from sfbench.core import provenance

        _out(f"sfbench {provenance.versions()['sfbench']}")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    quiet_third_party_logs()
    command, overrides = argv[0], argv[1:]
    try:
        if command not in COMMANDS:
            raise UnknownChoice("command", command, COMMANDS)
        if any(o in HELP_FLAGS for o in overrides):
            _out(command_help(command, _summary(command), [o for o in overrides if o not in HELP_FLAGS]))
            return 0
        signal.signal(signal.SIGTERM, _terminate)
        COMMANDS[command](overrides)
    except SfbenchError as e:
        sys.stderr.write(f"sfbench: error: {e}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("sfbench: interrupted; finished episodes are kept, rerun the same command to resume\n")
        return 130
    except Terminated:
        sys.stderr.write("sfbench: terminated; finished episodes are kept, rerun the same command to resume\n")
        return 143
    return 0


if __name__ == "__main__":
    sys.exit(main())
