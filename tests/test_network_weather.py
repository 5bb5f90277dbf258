"""Notebook 06 (network weather): the pieces behind it, each bounded in time.

The HTTP-aware buffering middlebox, the presets and their sources, the
clients' heartbeat watchdogs, request timeouts and resume through a relay
that forgets idle connections, one race under the train tunnel, and the
exercise checkers tested both ways.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from benchmarks import harness
from benchmarks import weather as bench_weather
from lab.clients import LongPollingClient, NDJSONStreamClient
from lab.clients.websocket import RoomClient
from lab.exercises import load_solution
from lab.exercises.network_weather import check_heartbeat_plan, check_process_once
from lab.waiting import wait_until
from lab.weather.httpframe import complete_prefix
from lab.weather.lanes import LANES, Webhooks
from lab.weather.presets import DEMO_FACTOR, PRESETS, preset
from lab.weather.race import Race, by_transport
from lab.weather.relay import Weather, WeatherRelay
from servers import polling, streaming, websocket
from servers.runtime import ServerThread

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "06_network_weather.ipynb"


# -- the buffering middlebox reads HTTP ----------------------------------------------
def test_complete_prefix_finds_where_responses_end():
    fixed = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
    assert complete_prefix(fixed) == (len(fixed), False)
    assert complete_prefix(fixed[:-1]) == (0, False)
    assert complete_prefix(fixed + fixed[:9]) == (len(fixed), False)  # the next one is held
    assert complete_prefix(chunked) == (0, False)  # a stream that has not ended
    assert complete_prefix(chunked + b"0\r\n\r\n") == (len(chunked) + 5, False)
    upgrade = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi"
    assert complete_prefix(upgrade) == (len(upgrade), True)
    assert complete_prefix(b"not http\r\n\r\n") == (0, False)


def test_buffering_releases_a_whole_response_on_a_kept_alive_connection():
    """A Content-Length answer goes through although the connection stays open;
    a chunked stream is held until it ends."""

    def serve(conn: socket.socket) -> None:
        conn.recv(1000)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        conn.recv(1000)
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\none\r\n")
        time.sleep(0.4)
        conn.sendall(b"0\r\n\r\n")
        conn.recv(1000)  # hold the connection open

    listener = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=lambda: serve(listener.accept()[0]), daemon=True).start()
    port = listener.getsockname()[1]
    try:
        with WeatherRelay(port, Weather(buffer_bytes=1 << 20)) as relay:
            with socket.create_connection(("127.0.0.1", relay.port), timeout=2) as sock:
                sock.sendall(b"GET /a HTTP/1.1\r\n\r\n")
                assert sock.recv(1000).endswith(b"\r\n\r\nok")
                sock.sendall(b"GET /b HTTP/1.1\r\n\r\n")
                start = time.perf_counter()
                body = sock.recv(1000)
                assert time.perf_counter() - start >= 0.3  # held until the last chunk
                assert body.endswith(b"one\r\n0\r\n\r\n")
    finally:
        listener.close()


# -- presets -------------------------------------------------------------------------
def test_every_preset_names_its_source_and_compresses_only_slow_timers():
    assert set(PRESETS) == {"good Wi-Fi", "busy 4G", "train tunnel", "corporate proxy",
                            "carrier NAT 30 s"}  # fmt: skip
    for p in PRESETS.values():
        assert "illustrative" in p.source or "RFC" in p.source or "measured" in p.source
        demo = p.demo()
        assert demo.latency_ms == p.weather.latency_ms
    nat = preset("carrier NAT 30 s")
    assert "RFC 5382" in nat.source and nat.demo().idle_timeout_s == 30 / DEMO_FACTOR
    with pytest.raises(ValueError, match="unknown preset"):
        preset("dial-up")


# -- clients through a NAT that forgets ----------------------------------------------
@pytest.fixture
def ndjson_server():
    with ServerThread(streaming.make_app, name="weather-test-ndjson") as server:
        yield server


def test_ndjson_server_heartbeats_and_refuses_a_bad_interval(ndjson_server):
    with requests.get(f"{ndjson_server.url}/stream/ndjson?heartbeat=0.1", stream=True,
                      timeout=(2, 2)) as resp:  # fmt: skip
        line = next(resp.iter_lines())
    assert line == b'{"type":"heartbeat"}'
    bad = requests.get(f"{ndjson_server.url}/stream/ndjson?heartbeat=soon", timeout=2)
    assert bad.status_code == 400 and "heartbeat" in bad.text


def _publish_around_a_pause(server, pause: float) -> int:
    server.publish("t", {})
    time.sleep(pause)
    return server.publish("t", {}).seq


def test_ndjson_without_heartbeats_is_stuck_and_its_watchdog_saves_it(ndjson_server):
    with WeatherRelay(ndjson_server.port, Weather(idle_timeout_s=0.2)) as relay:
        stuck = NDJSONStreamClient(relay.url).start()
        watched = NDJSONStreamClient(relay.url, watchdog_s=0.5).start()
        try:
            assert wait_until(lambda: stuck.connections and watched.connections, 3)
            last = _publish_around_a_pause(ndjson_server, 0.6)
            assert watched.recorder.wait_for(last, 3) and watched.watchdog_reconnects >= 1
            assert not stuck.recorder.wait_for(last, 0.5) and stuck.connections == 1
        finally:
            stuck.stop()
            watched.stop()


def test_ndjson_heartbeats_keep_the_nat_from_forgetting(ndjson_server):
    with WeatherRelay(ndjson_server.port, Weather(idle_timeout_s=0.3)) as relay:
        with NDJSONStreamClient(relay.url, heartbeat_s=0.1, watchdog_s=0.25) as client:
            assert wait_until(lambda: client.connections, 3)
            last = _publish_around_a_pause(ndjson_server, 0.8)
            assert client.recorder.wait_for(last, 3)
            assert relay.stats().silent_drops == 0 and client.heartbeats >= 3
            assert client.connections == 1


def test_websocket_ping_finds_a_forgotten_connection_and_resumes():
    with ServerThread(websocket.app_factory(), name="weather-test-ws") as server:
        with WeatherRelay(server.port, Weather(idle_timeout_s=0.15)) as relay:
            with RoomClient(f"{relay.ws_url}/ws/room", ping_interval=0.3) as client:
                assert client.wait_connected(3)
                last = _publish_around_a_pause(server, 0.7)
                assert client.recorder.wait_for(last, 3)
                assert client.pings_sent >= 1 and client.connections >= 2
                assert client.recorder.lost() == 0


def test_long_poll_answer_lost_to_the_nat_is_asked_again():
    with ServerThread(polling.make_app, name="weather-test-poll") as server:
        with WeatherRelay(server.port, Weather(idle_timeout_s=0.2)) as relay:
            with LongPollingClient(relay.url, wait=0.6, slack=0.3) as client:
                time.sleep(0.3)  # the first poll is parked, then forgotten by the NAT
                event = server.publish("t", {})
                assert client.recorder.wait_for(event.seq, 4)
                assert relay.stats().silent_drops >= 1 and client.errors  # a timed-out poll


def test_webhook_provider_retries_a_delivery_cut_by_a_flap():
    weather = Weather(latency_ms=150)
    lane = Webhooks(weather, None).start()
    try:
        last = [lane.publish() for _ in range(3)][-1]
        time.sleep(0.1)  # the POSTs are on their way through the relay
        lane.relay.reset_all()  # the link goes down under them
        weather.latency_ms = 0
        assert lane.recorder.wait_for(last.seq, 5)
        assert lane.retries() >= 1 and lane.undelivered(settle_s=15) == 0
        assert lane.recorder.duplicates == 0  # the inbox processed each once
    finally:
        lane.stop()


# -- the race ------------------------------------------------------------------------
def test_train_tunnel_loses_nothing_and_processes_nothing_twice():
    with Race(heartbeat_s=0.5) as race:
        race.set_weather("train tunnel")
        rows = race.run(events=15, spacing_s=0.1, settle_s=5)
    assert all(r["lost"] == 0 and r["processed_twice"] == 0 for r in rows), rows
    assert by_transport(rows)["sse"]["resets"] >= 1


def test_benchmark_weather_rows_and_cli():
    rows = bench_weather.measure("good Wi-Fi", events=4, rate=20.0)
    assert [r["transport"] for r in rows] == list(LANES)
    assert all(r["lost"] == 0 and r["latency_ms"]["p50"] > 0 for r in rows)
    doc = {"rows": rows}
    assert bench_weather.table(doc).count("| good Wi-Fi |") == 6
    with pytest.raises(SystemExit):
        harness.main(["--weather", "dial-up"])


# -- the exercises, both ways --------------------------------------------------------
def test_heartbeat_plan_checker_both_ways():
    assert check_heartbeat_plan(load_solution("06_heartbeat_plan")["heartbeat_plan"])
    at_the_timeout = check_heartbeat_plan(lambda idle: (idle, idle))
    assert not at_the_timeout and "shorter than the idle timeout" in str(at_the_timeout)
    assert "late heartbeat" in str(check_heartbeat_plan(lambda idle: (idle * 0.9, idle * 3)))
    assert "reconnects a healthy" in str(check_heartbeat_plan(lambda idle: (idle / 3, idle / 3)))
    assert "for nothing" in str(check_heartbeat_plan(lambda idle: (idle / 50, idle / 20)))
    assert "unnoticed" in str(check_heartbeat_plan(lambda idle: (idle / 3, idle * 10)))
    assert not check_heartbeat_plan(lambda idle: 1 / 0)
    assert not check_heartbeat_plan("10 s")


def test_process_once_checker_both_ways():
    assert check_process_once(load_solution("06_process_once")["OnceProcessor"])

    class Always:
        def __init__(self, apply):
            self.apply = apply

        def handle(self, event):
            self.apply(event)
            return True

    class HighWaterMark(Always):
        last = 0

        def handle(self, event):
            if event.seq <= self.last:
                return False
            self.last = event.seq
            self.apply(event)
            return True

    assert "more than once" in str(check_process_once(Always))
    assert "out of order" in str(check_process_once(HighWaterMark))
    assert not check_process_once(lambda apply: None)  # no handle(): feedback, no crash
    assert not check_process_once(None)


def test_notebook_uses_the_checkers_and_the_race():
    text = NOTEBOOK.read_text(encoding="utf-8")
    for name in ("check_heartbeat_plan", "check_process_once", "Race(", "WeatherDials("):
        assert name in text
