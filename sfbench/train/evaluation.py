"""Evaluation during training (``train.eval_every``): each saved checkpoint becomes an ordinary eval run.

The trainer asks for one ``sfbench eval`` per checkpoint and goes on training: locally a
subprocess per checkpoint, on SLURM one job per checkpoint (the eval runs in that job with the
local launcher). Each eval run has the default run id of its config, the same id ``sfbench curves``
computes for that checkpoint, so curves, ``status``, ``merge``, ``compare`` and the leaderboard
find it like any other run. The trainer knows no shards or records: it writes a request and
reads the summary the eval leaves beside it.

```
<train run>/evals/step_<N>.json        the request: eval config, overrides, cwd (written before launch)
               step_<N>.done.json       written by the eval when it ends: run id and dir, successes, n
               step_<N>.log             the local subprocess's output
```
Results are logged as they arrive, at their checkpoint's step: evals run side by side, so a later
checkpoint's result can come first. A resumed trainer relaunches every request without a
``.done.json`` (the eval run resumes from its records) and logs every result not yet in ``metrics.jsonl``.

    python -m sfbench.train.evaluation <train run>/evals/step_<N>.json   # what each launch runs
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from sfbench.config.compose import compose_config
from sfbench.config.schema import make_config
from sfbench.config.tree import make_suite_config
from sfbench.core.errors import InvalidConfig, SfbenchError
from sfbench.core.io import check_output_dir, write_json_atomic
from sfbench.core.protocol import Protocol
from sfbench.envs import check_suite, task_id
from sfbench.launch.executors import LauncherConfig, job_error, submit_calls
from sfbench.policies import family_of, make_policy_config

log = logging.getLogger(__name__)

EVALS = "evals"  # folder of a train run holding the requests and results
EVAL_LAUNCHERS = ("local", "slurm")
SUCCESS = "eval/success"  # metrics.jsonl keys of an eval result, logged at the checkpoint's step


@dataclass
class TrainEvalSettings:
    """``train.eval``: how each checkpoint is evaluated during training (used when ``train.eval_every`` > 0).

    Args:
        suite: Suite to evaluate on (required), e.g. ``libero_spatial``.
        protocol: Protocol profile; null = the suite's default protocol.
        tasks: Task ids or names; null = every task of the suite.
        episodes_per_task: Episodes per task and checkpoint (the same init states for every checkpoint).
        first_episode: Each task's first init state (keep training init states out with it).
        episodes_per_shard: Episodes per shard of each eval run.
        num_workers: Env worker processes of each eval run.
        num_threads: torch CPU threads of each eval process (OMP_NUM_THREADS).
        launcher: ``local`` (a subprocess per checkpoint, on this machine) or ``slurm`` (a job per
            checkpoint); SLURM settings go in ``overrides`` (``launcher.partition=...``).
        output_dir: Where the eval runs go (``sfbench curves``'s ``output_dir``).
        overrides: Further ``sfbench eval`` overrides, e.g. ``[protocol.max_steps.libero_spatial=100]``.
    """

    suite: str | None = None
    protocol: str | None = None
    tasks: list[int | str] | None = None
    episodes_per_task: int = 10
    first_episode: int = 0
    episodes_per_shard: int = 10
    num_workers: int = 1
    num_threads: int = 1
    launcher: str = "local"
    output_dir: str = "results/runs"
    overrides: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.suite is None:
            raise InvalidConfig("train.eval_every needs train.eval.suite=<suite to evaluate on>")
        if self.launcher not in EVAL_LAUNCHERS:
            raise InvalidConfig(f"train.eval.launcher={self.launcher!r}; choices: {', '.join(EVAL_LAUNCHERS)} "
                                "(local: a subprocess per checkpoint, slurm: a job per checkpoint)")
        bad = [k for k in ("episodes_per_task", "episodes_per_shard", "num_workers", "num_threads")
               if getattr(self, k) < 1]
        if bad or self.first_episode < 0:
            raise InvalidConfig(f"train.eval.{(bad or ['first_episode'])[0]} must be positive")


def eval_request(settings: TrainEvalSettings, policy: dict[str, Any], checkpoint: str) -> dict[str, Any]:
    """The eval config of one checkpoint (a container), the overrides that reproduce it, and the launcher node.

    The policy is the train run's ``policy`` section with ``checkpoint`` set, as ``sfbench curves``
    builds it, so both arrive at the same eval run id. The eval itself runs with the local launcher
    (in its subprocess or SLURM job); ``launcher`` is the node of ``train.eval.launcher`` with the
    ``launcher.*`` overrides, which submits it.
    """
    policy = dict(policy) | {"checkpoint": checkpoint}  # nulls kept: they are part of the run id
    groups = [f"suite={settings.suite}", *([f"protocol={settings.protocol}"] if settings.protocol else []),
              f"policy={policy['name']}", "launcher=local", f"output_dir={settings.output_dir}"]
    section = {"tasks": settings.tasks, "episodes_per_task": settings.episodes_per_task,
               "first_episode": settings.first_episode, "episodes_per_shard": settings.episodes_per_shard,
               "num_workers": settings.num_workers, "videos_per_task": 0, "progress": False}
    keys = [f"eval.{k}={json.dumps(v) if isinstance(v, list) else v}" for k, v in section.items() if v is not None]
    keys += [f"policy.{k}={json.dumps(v) if isinstance(v, list | dict) else v}" for k, v in policy.items()
             if k != "name" and v is not None]
    launch = [o for o in settings.overrides if o.startswith("launcher.")]
    user = [o for o in settings.overrides if o not in launch]
    cfg = OmegaConf.to_container(compose_config("eval", [*groups, *user]))
    cfg["policy"] = policy
    cfg["eval"] = cfg["eval"] | {k: v for k, v in section.items() if v is not None or k == "tasks"}
    launcher = OmegaConf.to_container(compose_config("eval", [f"launcher={settings.launcher}", *launch]))["launcher"]
    return {"config": cfg, "overrides": [*groups, *keys, *user], "launcher": launcher}


def check_train_eval(values: dict[str, Any], policy: dict[str, Any]) -> TrainEvalSettings:
    """Validate ``train.eval`` for ``policy`` before anything is created: suite, protocol, tasks, episodes."""
    settings = make_config(TrainEvalSettings, values, what="train.eval")
    if any(o.startswith(("policy.", "policy=")) for o in settings.overrides):
        raise InvalidConfig("train.eval.overrides cannot change the policy: each checkpoint is evaluated as trained")
    request = eval_request(settings, policy, "<checkpoint>")
    cfg = request["config"]
    suite = make_suite_config(cfg["suite"])
    protocol = Protocol.from_dict(cfg["protocol"])
    tasks = list(range(suite.num_tasks)) if settings.tasks is None else [task_id(suite, t) for t in settings.tasks]
    if not tasks:
        raise InvalidConfig("train.eval.tasks=[] selects no task (give task ids, or null for every task)")
    suite.check_task_ids(tasks)
    last = settings.first_episode + settings.episodes_per_task
    if last > suite.num_init_states:
        raise InvalidConfig(f"train.eval asks for episodes {settings.first_episode}..{last - 1}, but suite "
                            f"{suite.name} has {suite.num_init_states} init states per task")
    protocol.max_steps_for(suite.protocol_suite)
    check_suite(suite)
    if family_of(policy).reads_depth(make_policy_config(policy)) and not protocol.depth:
        from sfbench.eval.run import check_depth_given

        check_depth_given(protocol, f"policy {policy['name']}")
    make_config(LauncherConfig, request["launcher"], what="launcher")
    check_output_dir(Path(settings.output_dir))
    return settings


@dataclass
class CheckpointEval:
    """One checkpoint's eval run, from its request file (picklable: a SLURM job runs it)."""

    request: Path

    def __call__(self) -> dict[str, Any]:
        """Run (or resume) the eval; write and return its ``.done.json`` (the error, if it could not run)."""
        from sfbench.eval.run import run_eval

        request = json.loads(self.request.read_text())
        os.chdir(request["cwd"])  # relative paths (checkpoint, output_dir) are the train command's
        if request.get("num_threads"):
            import torch

            torch.set_num_threads(int(request["num_threads"]))
        try:
            spec, summary = run_eval(OmegaConf.create(request["config"]), request["overrides"])
            o = summary["overall"]
            result = {"step": request["step"], "run_id": spec.run_id, "run_dir": str(spec.run_dir),
                      "successes": o["successes"], "n": o["n"], "planned": request["planned"]}
        except SfbenchError as e:
            result = {"step": request["step"], "error": str(e)}
        write_json_atomic(done_file(self.request), result)
        return result


def done_file(request: Path) -> Path:
    """Where the eval of ``request`` writes its result."""
    return request.with_name(request.name.removesuffix(".json") + ".done.json")


@dataclass
class _Launched:
    request: Path
    handle: Any  # subprocess.Popen (local) or a submitit job (slurm)


class CheckpointEvals:
    """The evaluations of one train run: launch one per checkpoint, collect results as they arrive."""

    def __init__(self, run_dir: Path, settings: TrainEvalSettings, policy: dict[str, Any]):
        self.folder, self.settings, self.policy = Path(run_dir) / EVALS, settings, policy
        self.launched: dict[int, _Launched] = {}

    def launch(self, step: int, checkpoint: Path) -> Path:
        """Write the request of ``checkpoint`` (step ``step``) and start its eval; returns the request file."""
        request = eval_request(self.settings, self.policy, str(checkpoint))
        cfg = request["config"]
        planned = self.settings.episodes_per_task * len(
            cfg["eval"]["tasks"] or range(make_suite_config(cfg["suite"]).num_tasks))
        path = self.folder / f"step_{step:06d}.json"
        write_json_atomic(path, {"step": step, "checkpoint": str(checkpoint), "cwd": os.getcwd(),
                                 "planned": planned, "num_threads": self.settings.num_threads, **request})
        self._start(step, path)
        return path

    def _start(self, step: int, path: Path) -> None:
        done_file(path).unlink(missing_ok=True)
        if self.settings.launcher == "local":
            env = os.environ | {"OMP_NUM_THREADS": str(self.settings.num_threads),
                                "MKL_NUM_THREADS": str(self.settings.num_threads)}
            with path.with_name(path.name.removesuffix(".json") + ".log").open("ab") as out:
                handle = subprocess.Popen([sys.executable, "-m", "sfbench.train.evaluation", str(path)],
                                          stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        else:
            node = json.loads(path.read_text())["launcher"] | {"wait": False}
            launcher = make_config(LauncherConfig, node, what="launcher")
            (handle,) = submit_calls(launcher, [CheckpointEval(path)], folder=self.folder / "submitit",
                                     name=f"sfbench-eval-{self.folder.parent.name}")
        log.info("Evaluating step %d (%s): %s", step, self.settings.launcher, path)
        self.launched[step] = _Launched(path, handle)

    def resume(self, logged: set[int]) -> list[dict[str, Any]]:
        """After a restart: relaunch requests left without a result; return results not yet ``logged``."""
        for path in sorted(self.folder.glob("step_*[0-9].json")):
            step = int(json.loads(path.read_text())["step"])
            if not done_file(path).is_file() or "error" in json.loads(done_file(path).read_text()):
                self._start(step, path)
            elif step not in logged:
                self.launched[step] = _Launched(path, None)
        return self.poll()

    def _ended(self, item: _Launched) -> bool:
        if item.handle is None:
            return True
        if isinstance(item.handle, subprocess.Popen):
            return item.handle.poll() is not None
        return item.handle.done()

    def poll(self) -> list[dict[str, Any]]:
        """Results of the evals that have ended since the last call (each once), in step order."""
        results = []
        for step in sorted(self.launched):
            item = self.launched[step]
            done = done_file(item.request)
            if not done.is_file() and not self._ended(item):
                continue
            del self.launched[step]
            if done.is_file():
                results.append(json.loads(done.read_text()))
            else:
                reason = f"exit status {item.handle.returncode}" if isinstance(item.handle, subprocess.Popen) \
                    else job_error(item.handle) if item.handle is not None else "no result file"
                results.append({"step": step, "error": f"ended without a result ({reason}); rerun the same "
                                                       "sfbench train command to evaluate it again"})
        for r in results:
            if "error" in r:
                log.warning("Eval of step %d failed: %s", r["step"], r["error"])
        return results

    def wait(self, poll_s: float = 1.0) -> list[dict[str, Any]]:
        """Block until every launched eval has ended; their results."""
        results = []
        while self.launched:
            results += self.poll()
            if self.launched:
                time.sleep(poll_s)
        return results


def metrics_line(result: dict[str, Any], wall_s: float) -> dict[str, Any] | None:
    """The ``metrics.jsonl`` line of an eval result (None for a failed eval): success at the checkpoint's step."""
    if "error" in result or not result.get("n"):
        return None
    return {"step": int(result["step"]), "wall_s": round(wall_s, 3), SUCCESS: result["successes"] / result["n"],
            "eval/successes": result["successes"], "eval/episodes": result["n"]}


def main() -> None:
    """``python -m sfbench.train.evaluation <request.json>``: the eval of one checkpoint."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    result = CheckpointEval(Path(sys.argv[1]))()
    sys.exit(2 if "error" in result else 0)


if __name__ == "__main__":
    main()
