"""Gather queries from many clients into batched forward passes.

A worker thread takes the first waiting query, then waits up to ``max_wait_ms`` for more: at most
``max_batch``, and no longer once every open session has sent one. It answers them together: a
``batchable`` policy with one ``act_batch`` per group of queries of one suite, any other policy
one query at a time with its own instance per session. A session is one client (a websocket
connection, or an in-process caller); the first query of each episode carries its task, on which
the session's policy is reset.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sfbench.core.task import TaskSpec
from sfbench.policies.base import Policy
from sfbench.serve.layouts import task_of


@dataclass(eq=False)
class Session:
    """One client: its current task and, for a stateful policy, its own policy instance."""

    task: TaskSpec
    seed: int | None = None
    policy: Policy | None = None


@dataclass(eq=False)
class _Query:
    session: Session
    obs: dict[str, Any]
    episode: dict[str, Any] | None
    future: Future = field(default_factory=Future)


class Batcher:
    """Answers :meth:`submit` calls from any thread; batched forward passes run on one worker thread."""

    def __init__(self, make_policy: Callable[[], Policy], default_task: TaskSpec, *, max_batch: int = 8,
                 max_wait_ms: float = 5.0):
        self.make_policy, self.default_task = make_policy, default_task
        self.max_batch, self.max_wait_s = max_batch, max_wait_ms / 1000
        self.shared = make_policy()  # the instance of a batchable policy; a template otherwise
        self.batchable = type(self.shared).batchable
        self.sessions: set[Session] = set()
        self.batches: deque[int] = deque(maxlen=10_000)  # sizes of the latest batches (benchmarks, tests)
        self._queue: queue.Queue[_Query | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="sfbench-batcher", daemon=True)
        self._thread.start()

    @property
    def metadata(self) -> dict[str, Any]:
        """What the served policy is (sent to each client on connect)."""
        p = self.shared
        req = p.requirements
        return {"policy": type(p).name, "name": getattr(p.config, "name", type(p).name),
                "checkpoint_id": p.checkpoint_id, "action_dim": p.action_dim,
                "sfbench": {"requirements": {"views": list(req.views), "depth": req.depth,
                                             "privileged": req.privileged},
                            "batchable": self.batchable, "max_batch": self.max_batch}}

    def open(self) -> Session:
        """A new client session, on the default task until its first episode entry."""
        session = Session(self.default_task)
        self.sessions.add(session)
        return session

    def end(self, session: Session) -> None:
        """Forget a closed session (its queries still waiting are dropped by their cancelled futures)."""
        self.sessions.discard(session)

    def submit(self, session: Session, obs: dict[str, Any], episode: dict[str, Any] | None = None) -> Future:
        """Queue one query; the future holds its action chunk (or the policy's exception)."""
        query = _Query(session, obs, episode)
        self._queue.put(query)
        return query.future

    def pending(self) -> int:
        """Queries waiting for the worker thread."""
        return self._queue.qsize()

    def close(self) -> None:
        """Stop the worker thread after the queries already queued."""
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _gather(self) -> list[_Query] | None:
        first = self._queue.get()
        if first is None:
            return None
        batch, deadline = [first], time.monotonic() + self.max_wait_s
        # every open session has a query in (each waits for its answer): no one else can join
        while len(batch) < min(self.max_batch, max(1, len(self.sessions))):
            try:
                nxt = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if nxt is None:
                self._queue.put(None)
                break
            batch.append(nxt)
        return [q for q in batch if q.future.set_running_or_notify_cancel()]  # cancelled: client gone

    def _loop(self) -> None:
        while (batch := self._gather()) is not None:
            if batch:
                self.batches.append(len(batch))
                self._answer(batch)

    def _answer(self, batch: list[_Query]) -> None:
        for q in batch:
            if q.episode is not None:
                q.session.task, q.session.seed = task_of(q.episode)
        if not self.batchable:
            for q in batch:
                self._settle([q], lambda qs: [self._session_policy(qs[0]).act(qs[0].obs)])
            return
        groups: dict[tuple, list[_Query]] = {}
        for q in batch:
            groups.setdefault((q.session.task.suite, q.session.task.action_dim), []).append(q)
        for group in groups.values():
            self._settle(group, self._act_shared)

    def _act_shared(self, group: list[_Query]) -> list[np.ndarray]:
        self.shared.reset(group[0].session.task, seed=group[0].session.seed)  # suite-level state only
        return self.shared.act_batch([q.obs for q in group])

    def _session_policy(self, q: _Query) -> Policy:
        """The session's own instance, reset at its first query and at each episode entry."""
        fresh = q.session.policy is None
        if fresh:
            q.session.policy = self.make_policy()
        if fresh or q.episode is not None:
            q.session.policy.reset(q.session.task, seed=q.session.seed)
        return q.session.policy

    @staticmethod
    def _settle(queries: list[_Query], fn: Callable[[list[_Query]], list[np.ndarray]]) -> None:
        try:
            chunks = fn(queries)
        except Exception as e:  # the policy's error goes back to these clients only
            for q in queries:
                q.future.set_exception(e)
            return
        for q, chunk in zip(queries, chunks, strict=True):
            q.future.set_result(chunk)
