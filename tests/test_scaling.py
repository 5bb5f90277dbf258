"""Scale-out pieces: a real local Redis, the Redis backplane across server
processes, failover with resume, the load generator's guarantees (bounded,
leaves no process behind), resource readings and the exercise checkers."""

from __future__ import annotations

import os
import time

import psutil
import pytest

from lab.exercises import load_solution
from lab.exercises.scaling import check_max_connections
from lab.lessons import scaling as scaling_lesson
from lab.scale import cluster, redis_server
from lab.scale.loadgen import LoadGenerator
from servers import fanout
from servers.runtime import ServerThread

needs_redis = pytest.mark.skipif(
    not redis_server.available(), reason="redis-server is not installed (CI installs it with apt)"
)


def children() -> set[int]:
    """Our child processes, except multiprocessing's resource tracker (one per
    parent, started with the first spawn-context queue, by design long-lived)."""
    out = set()
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(
                p.cmdline()
            ):
                out.add(p.pid)
        except psutil.Error:
            pass
    return out


@pytest.fixture
def redis():
    with redis_server.RedisServer() as r:
        yield r


@pytest.fixture
def no_leftovers():
    before = children()
    yield
    end = time.monotonic() + 5
    while children() - before and time.monotonic() < end:
        time.sleep(0.05)
    assert children() - before == set(), "a process was left behind"


@needs_redis
def test_local_redis_starts_and_stops_cleanly(no_leftovers):
    r = redis_server.RedisServer().start()
    port, workdir, pid = r.port, r._dir, r.proc.pid
    assert redis_server.ping(port)
    assert r.url == f"redis://127.0.0.1:{port}/0"
    assert os.listdir(workdir) == []  # no persistence: nothing written
    r.stop()
    r.stop()  # idempotent
    assert not redis_server.ping(port)
    assert not os.path.exists(workdir)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_missing_redis_binary_is_reported_clearly(monkeypatch):
    monkeypatch.setattr(redis_server.shutil, "which", lambda name: None)
    assert not redis_server.available()
    with pytest.raises(redis_server.RedisUnavailable, match="not installed.*apt-get"):
        redis_server.RedisServer().start()


@needs_redis
def test_backplane_across_processes_and_without_it(redis, no_leftovers):
    # Without a backplane: an event published on A never reaches B's clients.
    with cluster.ServerProcess("A") as a, cluster.ServerProcess("B") as b:
        with LoadGenerator([a.url, b.url], "ws", processes=1, lifetime=60) as gen:
            assert gen.connect(20, progress=False) == 20
            seq = a.publish("news", {})
            d = gen.report(seq, timeout=1.5)
            assert d.got_seq_by_server == {a.url: 10} and d.missing == 10
    # With Redis: every process fans out what any process published.
    with (
        cluster.ServerProcess("A", redis_url=redis.url) as a,
        cluster.ServerProcess("B", redis_url=redis.url) as b,
    ):
        assert a.health()[1]["backplane"] == "redis"
        with LoadGenerator([a.url, b.url], "ws", processes=1, lifetime=60) as gen:
            assert gen.connect(20, progress=False) == 20
            s1 = a.publish("news", {"from": "A"})
            s2 = b.publish("news", {"from": "B"})
            assert s2 == s1 + 1, "sequence numbers are global (one Redis counter)"
            d = gen.report(s2, timeout=15)
            assert d.delivered == 20 and d.missing == 0 and d.dups == 0 and d.gaps == 0
            assert d.got_seq_by_server == {a.url: 10, b.url: 10}
            assert len(d.latencies_ms_by_server[b.url]) == 10


@needs_redis
def test_killed_server_clients_resume_on_a_survivor_without_loss(redis, no_leftovers):
    with (
        cluster.ServerProcess("A", redis_url=redis.url) as a,
        cluster.ServerProcess("B", redis_url=redis.url) as b,
    ):
        with LoadGenerator([a.url, b.url], "sse", processes=1, lifetime=60) as gen:
            assert gen.connect(10, progress=False) == 10
            for i in range(3):
                b.publish("tick", {"i": i})
            a.kill()
            for i in range(3, 6):
                b.publish("tick", {"i": i})
            last = b.publish("tick", {"i": 6})
            d = gen.report(last, timeout=20)
            assert d.delivered == 10 and d.missing == 0
            assert d.gaps == 0 and d.dups == 0
            assert d.reconnects >= 5 and d.per_server == {b.url: 10}


@needs_redis
def test_sigterm_drains_with_1001_and_a_late_joiner_resumes(redis, no_leftovers):
    a = cluster.ServerProcess("A", redis_url=redis.url).start()
    b = cluster.ServerProcess("B", redis_url=redis.url).start()
    try:
        with LoadGenerator([a.url], "ws", processes=1, lifetime=60) as gen:
            assert gen.connect(5, progress=False) == 5
            seq = a.publish("e", {})
            assert gen.report(seq, timeout=10).delivered == 5
            gen.set_urls([b.url])
            a.stop()  # SIGTERM: drain (1001), then exit
            assert not a.alive
            last = b.publish("e", {})
            d = gen.report(last, timeout=15)
            assert d.close_codes.get(1001) == 5
            assert d.delivered == 5 and d.gaps == 0 and d.dups == 0
    finally:
        a.kill()
        b.stop()


@needs_redis
def test_in_process_server_with_redis_backplane_closes_its_connections(redis):
    server = ServerThread(fanout.factory(redis.url), name="fanout-redis").start()
    try:
        server.call(lambda: server.state.started, timeout=10)
        with LoadGenerator(server.url, "ws", processes=1, lifetime=60) as gen:
            assert gen.connect(3, progress=False) == 3
            server.publish("hello", {})  # hub -> Redis -> back -> clients
            assert gen.report(1, timeout=10).delivered == 3
    finally:
        server.stop()
    assert not server.running


def test_loadgen_closes_every_worker(no_leftovers):
    with ServerThread(fanout.make_app, name="fanout-lg") as server:
        gen = LoadGenerator(server.url, "ws", processes=2, lifetime=60).start()
        pids = gen.pids
        assert gen.connect(10, progress=False) == 10
        seq = server.publish("x", {}).seq
        assert gen.report(seq, timeout=10).delivered == 10
        gen.close()
        gen.close()  # idempotent
        assert gen.alive == 0
        assert not any(psutil.pid_exists(p) and psutil.Process(p).is_running() for p in pids) or (
            all(
                psutil.Process(p).status() == psutil.STATUS_ZOMBIE
                for p in pids
                if psutil.pid_exists(p)
            )
        )


def test_loadgen_workers_end_by_themselves_after_their_lifetime(no_leftovers):
    gen = LoadGenerator("http://127.0.0.1:9", "ws", processes=1, lifetime=1.0).start()
    end = time.monotonic() + 15
    while gen.alive and time.monotonic() < end:
        time.sleep(0.1)
    assert gen.alive == 0, "a worker outlived its lifetime"
    gen.close()


def test_loadgen_to_a_dead_port_gives_up_in_bounded_time(no_leftovers):
    with socket_port() as port:
        pass  # the port is free again: nobody listens
    started = time.monotonic()
    with LoadGenerator(f"http://127.0.0.1:{port}", "sse", processes=1, lifetime=60) as gen:
        assert gen.connect(3, progress=False, timeout=30) == 0
        assert gen.failed == 3
    assert time.monotonic() - started < 30


def test_bad_kind_is_refused():
    with pytest.raises(ValueError, match="kind"):
        LoadGenerator("http://127.0.0.1:1", kind="mqtt")


class socket_port:
    def __enter__(self) -> int:
        import socket

        self.s = socket.socket()
        self.s.bind(("127.0.0.1", 0))
        return self.s.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        self.s.close()


def test_resource_snapshot_and_per_connection_maths():
    snap = scaling_lesson.snapshot()
    assert snap.pid == os.getpid() and snap.rss_bytes > 0 and snap.fds > 0
    limit = scaling_lesson.fd_limit()
    assert limit is None or limit >= snap.fds
    later = scaling_lesson.Snapshot(
        snap.pid, snap.rss_bytes + 100 * 1024 * 10, snap.fds + 100, limit, snap.cpu_seconds + 1
    )
    r = scaling_lesson.per_connection(snap, later, 100)
    assert r["kib_per_connection"] == pytest.approx(10.0)
    assert r["fds_in_use"] == snap.fds + 100
    assert "KiB" in scaling_lesson.resource_table({"WebSocket": r})


def test_exercise_checkers_accept_solutions_and_reject_wrong_answers():
    assert check_max_connections(load_solution("04_max_connections")["max_connections"])
    memory_only = check_max_connections(lambda ram, kib, fd, reserved=64: int(ram // (kib * 1024)))
    assert not memory_only and any("fd limit" in m for m in memory_only.messages)
    crashing = check_max_connections(lambda *a: 1 / 0)
    assert not crashing and "raised" in crashing.messages[0]
