"""sfbench serve and policy=remote on loopback: protocol, batching, and every fault bounded."""

from __future__ import annotations

import dataclasses
import http.server
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import msgpack
import numpy as np
import pytest

from sfbench.config.tree import load_protocol
from sfbench.core.errors import InvalidConfig
from sfbench.eval.rollout import Episode, LocalSlot, RolloutLoop
from sfbench.policies.base import PolicyTimeout, PolicyUnavailable
from sfbench.policies.remote import RemoteConfig, RemotePolicy
from sfbench.serve.wire import packb, unpackb
from tests.fakes import ReachEnv
from tests.serve.helpers import TASK, ReachConfig, ReachPolicy, raw_server, sfbench_server

OBS = {"proprio": np.array([0.0, 1.0, 0, 0, 0, 0, 0, 0], np.float32), "instruction": "reach"}


def remote(port: int, **kw) -> RemotePolicy:
    return RemotePolicy(RemoteConfig(port=port, connect_tries=2, backoff_s=0.05, **kw))


def test_arrays_are_encoded_as_openpi_does_with_bytes_keys():
    frame = packb({"a": np.arange(3, dtype=np.int16), "s": np.float32(2.5)})
    raw = msgpack.unpackb(frame, raw=False)
    assert raw["a"] == {b"__ndarray__": True, b"data": np.arange(3, dtype=np.int16).tobytes(), b"dtype": "<i2",
                        b"shape": [3]}
    assert raw["s"] == {b"__npgeneric__": True, b"data": 2.5, b"dtype": "<f4"}
    back = unpackb(frame)
    assert back["a"].tolist() == [0, 1, 2] and back["s"] == np.float32(2.5)


def test_metadata_first_then_chunks_and_healthz():
    import urllib.request

    server, batcher = sfbench_server()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5) as r:
            assert r.status == 200 and r.read() == b"OK\n"
        policy = remote(server.port)
        assert policy.metadata["policy"] == "reach" and policy.layout == "sfbench"
        policy.reset(TASK, seed=3)
        chunk = policy.act(OBS)
        assert chunk.shape == (8, 7) and chunk[0, 0] == pytest.approx(1.0)
        assert policy.record_info["metadata"]["policy"] == "reach"
    finally:
        server.stop()
        batcher.close()


def test_concurrent_clients_are_answered_in_one_batch():
    server, batcher = sfbench_server(max_wait_ms=200)
    try:
        clients = [remote(server.port) for _ in range(4)]
        with ThreadPoolExecutor(4) as pool:
            chunks = list(pool.map(lambda c: c.act(OBS), clients))
        assert all(c.shape == (8, 7) for c in chunks)
        assert max(batcher.batches) > 1, f"batches answered: {batcher.batches}"
    finally:
        server.stop()
        batcher.close()


def test_api_key_is_required_when_the_server_has_one():
    server, batcher = sfbench_server(api_key="s3cret")
    try:
        with pytest.raises(InvalidConfig, match="missing or wrong policy.api_key"):
            remote(server.port)
        assert remote(server.port, api_key="s3cret").act(OBS).shape == (8, 7)
    finally:
        server.stop()
        batcher.close()


def test_malformed_and_oversized_frames_get_errors_and_the_server_stays_up():
    from websockets.sync.client import connect

    server, batcher = sfbench_server(max_frame_mb=0.01)
    try:
        with connect(f"ws://127.0.0.1:{server.port}") as ws:
            ws.recv(timeout=5)  # metadata
            ws.send(b"\xc1 not msgpack")
            assert "bad request: not a msgpack-numpy frame" in ws.recv(timeout=5)
        with connect(f"ws://127.0.0.1:{server.port}", max_size=None) as ws:
            ws.recv(timeout=5)
            ws.send(packb({"proprio": np.zeros(100_000, np.float32)}))
            with pytest.raises(Exception) as closed:
                ws.recv(timeout=5)
            assert "1009" in str(closed.value)
        assert remote(server.port).act(OBS).shape == (8, 7), "other clients are still served"
    finally:
        server.stop()
        batcher.close()


def test_a_client_leaving_mid_request_drops_its_query():
    gate = threading.Event()

    class Slow(ReachPolicy):
        name = "slow"
        config_class = ReachConfig

        def act_batch(self, obs_batch):
            gate.wait(10)
            return super().act_batch(obs_batch)

    server, batcher = sfbench_server(Slow)
    try:
        busy = remote(server.port)
        first = ThreadPoolExecutor(1).submit(busy.act, OBS)  # occupies the worker thread
        time.sleep(0.2)
        leaving = remote(server.port)
        leaving.ws.send(packb(OBS))
        time.sleep(0.2)
        leaving.close()  # gone while its query waits
        time.sleep(0.3)
        gate.set()
        assert first.result(10).shape == (8, 7)
        deadline = time.time() + 5
        while (len(batcher.sessions) > 1 or batcher.pending()) and time.time() < deadline:
            time.sleep(0.05)
        assert len(batcher.sessions) == 1 and batcher.pending() == 0, "no session or query left behind"
        assert sum(batcher.batches) == 1, f"the dropped query was never computed: {batcher.batches}"
    finally:
        gate.set()
        server.stop()
        batcher.close()


def test_a_silent_server_times_out():
    async def never(ws, obs):
        await ws.wait_closed()  # reads the request, never answers

    server = raw_server(never)
    try:
        policy = remote(server.port, timeout_s=0.5, layout="sfbench")
        start = time.time()
        with pytest.raises(PolicyTimeout, match="no answer"):
            policy.act(OBS)
        assert time.time() - start < 3
    finally:
        server.stop()


def _rollout(policy, episodes: int) -> list:
    protocol = dataclasses.replace(load_protocol("libero_oft"), num_steps_wait=0, open_loop_steps=1)
    slot = LocalSlot(lambda task_id: ReachEnv("fake_suite", task_id, protocol), protocol)
    outcomes = []
    RolloutLoop([slot], [policy], protocol).run([Episode(0, i, i, False) for i in range(episodes)],
                                                lambda e, out: outcomes.append(out))
    slot.close()
    return outcomes


def test_wrong_action_shape_from_the_remote_fails_the_episode_as_bad_action_shape():
    async def narrow(ws, obs):
        await ws.send(packb({"actions": np.zeros((8, 3), np.float32)}))

    server = raw_server(narrow)
    try:
        (out,) = _rollout(remote(server.port, layout="sfbench"), 1)
        assert out.failure_reason.startswith("bad_action_shape: got (8, 3)")
    finally:
        server.stop()


def test_a_server_dying_mid_episode_is_an_infrastructure_error_and_the_next_episode_reconnects():
    calls = {"n": 0}

    async def dies_once(ws, obs):
        calls["n"] += 1
        if calls["n"] == 3:  # the server process "dies" mid-episode: the connection drops
            await ws.close(1011, "killed")
            return
        x, target = obs["proprio"][:2]
        chunk = np.zeros((1, 7), np.float32)
        chunk[0, 0] = np.clip((target - x) * 10, -1, 1)
        await ws.send(packb({"actions": chunk}))

    server = raw_server(dies_once, {"sfbench": {"requirements": {"views": []}}})
    try:
        first, second = _rollout(remote(server.port), 2)
        assert first.failure_reason.startswith("infra_error: policy unavailable: lost the connection"), \
            f"a lost server is not the policy's failure: {first.failure_reason}"
        assert second.failure_reason is None and second.success
    finally:
        server.stop()
    with pytest.raises(InvalidConfig, match=r"cannot connect to ws://127.0.0.1:\d+ after 2 tries"):
        remote(server.port)


class _RaisingPolicy(ReachPolicy):
    name = "raising"
    config_class = ReachConfig

    def act(self, obs):
        raise ValueError("the model itself failed")


def test_a_policy_that_raises_on_the_server_stays_a_scored_policy_error():
    server, batcher = sfbench_server(_RaisingPolicy)
    try:
        (out,) = _rollout(remote(server.port), 1)
        assert out.failure_reason.startswith("policy_error: RemoteError: server error: policy error: ValueError"), \
            f"an error frame is the policy's own failure: {out.failure_reason}"
    finally:
        server.stop()
        batcher.close()


def test_bad_addresses_and_other_protocols_are_one_clear_error():
    with pytest.raises(InvalidConfig, match="cannot connect to ws://127.0.0.1:9 after 2 tries"):
        remote(9)
    httpd = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with pytest.raises(InvalidConfig, match="does not speak openpi's websocket protocol"):
            remote(httpd.server_address[1])
    finally:
        httpd.shutdown()
    server, batcher = sfbench_server()
    try:
        with pytest.raises(InvalidConfig, match="serves policy 'reach', not policy.expect_policy='scripted'"):
            remote(server.port, expect_policy="scripted")
    finally:
        server.stop()
        batcher.close()


def test_episodes_that_find_no_server_are_infrastructure_errors(tmp_path):
    server, batcher = sfbench_server()
    policy = remote(server.port)
    server.stop()
    batcher.close()
    in_flight, later = _rollout(policy, 2)
    assert in_flight.failure_reason.startswith("infra_error: policy unavailable: lost the connection"), \
        "the query in flight is not scored"
    assert later.failure_reason.startswith("infra_error: policy unavailable: cannot connect"), "not scored"
    with pytest.raises(PolicyUnavailable, match="no policy server address"):
        RemoteConfig(address_file=str(tmp_path / "server.json"), wait_s=0.5).located()


def test_cli_bad_input_is_one_line_and_creates_nothing(tmp_path):
    import socket

    from tests.conftest import run_cli

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_cli("serve", "policy=zero", f"serve.port={port}")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"sfbench: error: serve.port={port} is in use on 127.0.0.1; choose another port"]
    proc = run_cli("eval", "suite=libero_spatial", "policy=remote", "policy.port=9", "policy.connect_tries=1",
                   f"output_dir={tmp_path / 'runs'}")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == ["sfbench: error: cannot connect to ws://127.0.0.1:9 after 1 tries "
                                                "([Errno 111] Connection refused)"]
    assert not (tmp_path / "runs").exists()
    proc = run_cli("eval", "suite=libero_spatial", "policy=remote", "policy.layout=grpc")
    assert proc.returncode == 2 and "policy.layout" in proc.stderr and "openpi_libero" in proc.stderr


def test_servers_without_a_checkpoint_id_are_told_apart_by_what_they_serve_not_by_address():
    async def never(ws, obs):
        pass

    ids = {}
    for name, metadata in [("a1", {"policy": "pi0", "config": "a"}), ("a2", {"policy": "pi0", "config": "a"}),
                           ("b", {"policy": "pi0", "config": "b"})]:
        server = raw_server(never, metadata)
        try:
            policy = remote(server.port)
            ids[name] = (policy.checkpoint_id, RemotePolicy.content_id(policy.config))
            policy.close()
        finally:
            server.stop()
    assert ids["a1"] == ids["a2"], "one model on two ports is one model"
    assert ids["a1"] != ids["b"], "two models are never pooled, even at one address"
    assert all(i[0] == i[1] and i[0].startswith("meta-") and "127.0.0.1" not in i[0] for i in ids.values()), ids


def test_sigterm_under_client_traffic_stops_the_server_cleanly():
    """A signal that lands while a connection's task runs must not be swallowed by that task."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    from websockets.sync.client import connect

    from tests.conftest import REPO

    image = np.zeros((224, 224, 3), np.uint8)
    query = packb({"observation/image": image, "observation/wrist_image": image,
                   "observation/state": np.zeros(8, np.float32), "prompt": "pick"})

    def hammer(port: str) -> None:
        try:
            with connect(f"ws://127.0.0.1:{port}", max_size=None) as ws:
                ws.recv()
                while True:
                    ws.send(query)
                    ws.recv()
        except Exception:  # the server closing is how this client ends
            pass

    for _ in range(3):  # before the fix, 5 of 8 such trials kept serving past 30 s
        server = subprocess.Popen([str(Path(sys.executable).with_name("sfbench")), "serve", "policy=zero",
                                   "serve.port=0"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True)
        try:
            port = re.search(r"ws://127\.0\.0\.1:(\d+)", server.stdout.readline()).group(1)
            for _ in range(3):
                threading.Thread(target=hammer, args=(port,), daemon=True).start()
            time.sleep(1.5)
            server.terminate()
            assert server.wait(15) == 0, "SIGTERM stops the server and it exits 0"
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
