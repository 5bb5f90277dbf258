"""The server runtime: start/stop, leaks, thread safety, bad input."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time

import psutil
import pytest
import requests
from tornado.web import Application, RequestHandler

from servers import HubClosedError, PortInUseError, ServerStoppedError, ServerThread, runtime
from servers.common import app_with
from servers.polling import routes as polling_routes
from servers.streaming import routes as streaming_routes

APP = app_with(polling_routes, streaming_routes)


def server_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("server-")]


def open_fds() -> int:
    return psutil.Process().num_fds() if os.name != "nt" else psutil.Process().num_handles()


def listening_ports() -> set[int]:
    """Ports this process listens on. (Other processes on a shared machine may
    bind a port we just freed: connecting to it would not tell us apart.)"""
    return {c.laddr.port for c in psutil.Process().net_connections() if c.status == "LISTEN"}


def test_start_returns_once_listening_and_serves_blocking_calls():
    with ServerThread(APP, name="t") as server:
        assert server.url.startswith("http://127.0.0.1:")
        # A blocking call from this (the "cell's") thread is answered at once.
        resp = requests.get(f"{server.url}/events", timeout=5)
        assert resp.status_code == 200
        assert resp.json() == {"events": [], "last_seq": 0, "resync": None}


def test_start_stop_200_times_leaks_no_thread_port_or_fd():
    def cycle() -> int:
        server = ServerThread(APP, name="cycle").start()
        requests.get(f"{server.url}/events", timeout=5).close()
        port = server.port
        server.stop()
        return port

    for _ in range(5):  # warm up: imports, requests' pools, lazily created objects
        cycle()
    threads_before = threading.active_count()
    fds_before = open_fds()
    ports = [cycle() for _ in range(200)]
    assert server_threads() == []
    assert threading.active_count() == threads_before
    assert open_fds() <= fds_before + 2  # small slack for the interpreter's own
    assert not set(ports) & listening_ports()


def test_stop_frees_the_port_so_the_same_port_binds_again():
    server = ServerThread(APP, name="a").start()
    port = server.port
    server.stop()
    again = ServerThread(APP, name="b", port=port).start()
    try:
        assert again.port == port
    finally:
        again.stop()


def test_restart_keeps_the_port_and_the_event_log():
    server = ServerThread(APP, name="restart").start()
    port = server.port
    server.publish("before")
    server.stop()
    server.start()
    try:
        assert server.port == port
        events = requests.get(f"{server.url}/events", timeout=5).json()["events"]
        assert [e["type"] for e in events] == ["before"]
    finally:
        server.stop()


def test_concurrent_publishes_from_four_threads_lose_nothing():
    with ServerThread(APP, name="pub") as server:
        # Room for every event: this test is about publishing from threads,
        # not about the slow-reader policy (tested in test_polling_and_stream).
        server.hub.queue_size = 5000
        resp = requests.get(f"{server.url}/stream/ndjson", stream=True, timeout=(5, 10))
        lines = resp.iter_lines()
        barrier = threading.Barrier(4)

        def publish_many() -> None:
            barrier.wait()
            for _ in range(500):
                server.publish("t")

        workers = [threading.Thread(target=publish_many) for _ in range(4)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        seqs = [int(__import__("json").loads(next(lines))["seq"]) for _ in range(2000)]
        resp.close()
    # Every event arrived once, in sequence order, none skipped.
    assert seqs == list(range(1, 2001))


def test_stop_with_clients_connected_returns_within_2s():
    with ServerThread(APP, name="busy") as server:
        stream = requests.get(f"{server.url}/stream/ndjson", stream=True, timeout=(5, 30))
        long_poll_started = threading.Event()
        long_poll_result: list = []

        def long_poll() -> None:
            long_poll_started.set()
            try:
                requests.get(f"{server.url}/events/wait?timeout=25", timeout=30)
            except requests.RequestException as exc:
                long_poll_result.append(exc)

        t = threading.Thread(target=long_poll)
        t.start()
        long_poll_started.wait()
        idle = socket.create_connection(("127.0.0.1", server.port))  # connected, silent
        deadline = time.monotonic() + 5  # until the server has accepted all three
        while server.open_connections < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.open_connections >= 3
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 2.0
        # The held requests saw their connection end, they did not hang.
        t.join(5)
        assert not t.is_alive() and long_poll_result
        assert idle.recv(1) == b""
        idle.close()
        stream.close()


def test_stopping_twice_is_harmless():
    server = ServerThread(APP).start()
    server.stop()
    server.stop()
    assert not server.running


def test_publish_after_stop_says_so():
    server = ServerThread(APP).start()
    server.stop()
    with pytest.raises(HubClosedError, match="stopped"):
        server.publish("late")
    with pytest.raises(ServerStoppedError):
        _ = server.url


def test_fixed_port_in_use_gives_a_clear_error():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PortInUseError, match="already in use.*port=0"):
            ServerThread(APP, port=port).start()
    assert server_threads() == []


def test_registry_replaces_a_server_started_under_the_same_name():
    first = runtime.start("same-name", APP)
    second = runtime.start("same-name", APP)
    try:
        assert not first.running and second.running
        assert list(runtime.running()) == ["same-name"]
    finally:
        runtime.stop_all()
    assert runtime.running() == {}
    assert server_threads() == []


def test_concurrent_starts_of_one_name_leave_one_server_and_stop_all_stops_it():
    # Issue 15 item 8: four threads got four servers, two of them unregistered,
    # which stop_all() then left running.
    ports_before = listening_ports()
    servers: list[ServerThread] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        servers.append(runtime.start("race", APP))

    workers = [threading.Thread(target=start) for _ in range(8)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(30)
    try:
        assert len(servers) == 8
        assert [s for s in servers if s.running] == [runtime.running()["race"]]
    finally:
        runtime.stop_all()
    assert server_threads() == []
    assert listening_ports() - ports_before == set()


def test_stop_all_waits_for_a_start_in_progress_and_stops_it_too():
    entered, release = threading.Event(), threading.Event()

    def slow_factory(hub):
        entered.set()
        release.wait(10)
        return APP(hub)

    starter = threading.Thread(target=runtime.start, args=("slow", slow_factory))
    starter.start()
    entered.wait(10)
    stopper = threading.Thread(target=runtime.stop_all)
    stopper.start()
    release.set()
    starter.join(10)
    stopper.join(10)
    assert runtime.running() == {}
    assert server_threads() == []


def test_factory_errors_reach_the_caller_and_leak_nothing():
    def broken(hub):
        raise ValueError("bad app")

    with pytest.raises(ValueError, match="bad app"):
        ServerThread(broken).start()
    assert server_threads() == []


def test_call_runs_on_the_server_loop():
    with ServerThread(APP) as server:

        async def where() -> str:
            await asyncio.sleep(0)
            return threading.current_thread().name

        assert server.call(where) == "server-server"
        assert server.call(lambda: threading.current_thread().name) == "server-server"


def test_client_disconnecting_mid_stream_is_cleaned_up():
    with ServerThread(APP) as server:
        for _ in range(20):
            resp = requests.get(f"{server.url}/stream/ndjson", stream=True, timeout=5)
            resp.close()
        server.publish("wake")  # a write to a closed client also ends its handler
        deadline = time.monotonic() + 5
        while server.call(lambda: server.hub.subscriber_count) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.call(lambda: server.hub.subscriber_count) == 0


def test_shutdown_hooks_run_on_the_loop():
    ran: list[str] = []

    class Ping(RequestHandler):
        def get(self) -> None:
            self.write("pong")

    server = ServerThread(lambda hub: Application([(r"/", Ping)])).start()
    server.add_shutdown_hook(lambda: ran.append(threading.current_thread().name))
    server.stop()
    assert ran == ["server-server"]


def test_state_is_what_the_app_was_given():
    marker = object()
    server = ServerThread(lambda hub: Application([], state=marker), name="state-test")
    with pytest.raises(ServerStoppedError):
        server.state  # noqa: B018 (the property raises before a start)
    server.start()
    try:
        assert server.state is marker
    finally:
        server.stop()


def test_close_codes_compare_equal_to_their_numbers():
    from servers.close_codes import CloseCode

    assert CloseCode.TRY_AGAIN_LATER == 1013 and CloseCode(1009) is CloseCode.MESSAGE_TOO_BIG
