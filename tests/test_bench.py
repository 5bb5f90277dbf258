"""The benchmark harness: byte counting at the socket, percentile maths, the
results schema, and a quick run of the real thing (no timing asserted)."""

from __future__ import annotations

import copy
import socket
import time

import pytest

from benchmarks import harness, schema
from benchmarks.stats import latency_summary, percentile
from lab.wire.relay import CountingRelay
from servers import polling
from servers.runtime import ServerThread


# -- percentiles -----------------------------------------------------------------
@pytest.mark.parametrize(
    "values, p, expected",
    [
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50, 5.5),
        ([10, 20, 30, 40], 95, 38.5),
        ([10, 20, 30, 40], 0, 10),
        ([10, 20, 30, 40], 100, 40),
        ([40, 10, 30, 20], 25, 17.5),
        ([7.0], 99, 7.0),
        (list(range(101)), 99, 99.0),
        (list(range(1, 1001)), 99.9, 999.001),
    ],
)
def test_percentile(values, p, expected):
    assert percentile(values, p) == pytest.approx(expected)


def test_percentile_matches_numpy_linear():
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(1)
    for _ in range(20):
        values = list(rng.exponential(2.0, rng.integers(1, 300)))
        for p in (50, 95, 99, 100):
            assert percentile(values, p) == pytest.approx(float(np.percentile(values, p)))


@pytest.mark.parametrize("p", [-1, 100.5, float("nan")])
def test_percentile_refuses_bad_p(p):
    with pytest.raises(ValueError):
        percentile([1, 2], p)


def test_percentile_of_nothing():
    with pytest.raises(ValueError):
        percentile([], 50)
    assert latency_summary([]) == {"p50": None, "p95": None, "p99": None, "max": None}


def test_latency_summary_does_not_reorder_input():
    values = [3.0, 1.0, 2.0]
    assert latency_summary(values) == {"p50": 2.0, "p95": 2.9, "p99": 2.98, "max": 3.0}
    assert values == [3.0, 1.0, 2.0]


# -- byte counting at the socket -------------------------------------------------
def _exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while data := sock.recv(65536):  # Connection: close -> the server ends it
            chunks.append(data)
    return b"".join(chunks)


def test_relay_counts_exactly_the_bytes_of_a_known_request():
    request = b"GET /events?after=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    assert len(request) == 68
    with ServerThread(polling.make_app) as server, CountingRelay(server.port) as relay:
        server.publish("bench.tick", {"n": 1})
        response = _exchange(relay.port, request)
        head, _, body = response.partition(b"\r\n\r\n")
        length = int(
            next(
                line.split(b":", 1)[1]
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
        )
        assert len(body) == length and b'"seq":1' in body
        counts = relay.counts()
    assert counts.from_consumer == 68
    assert counts.to_consumer == len(response) == len(head) + 4 + length
    assert counts.connections == 1


def test_relay_names_directions_by_role():
    request = b"GET /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with ServerThread(polling.make_app) as server:
        with CountingRelay(server.port, connector_is_consumer=False) as relay:
            response = _exchange(relay.port, request)
            counts = relay.counts()
    # Here the side that connected is the event source (as a webhook provider is).
    assert counts.to_consumer == len(request)
    assert counts.from_consumer == len(response)


def test_relay_counts_connections_and_deltas():
    request = b"GET /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with ServerThread(polling.make_app) as server, CountingRelay(server.port) as relay:
        before = relay.counts()
        for _ in range(3):
            _exchange(relay.port, request)
        delta = relay.counts() - before
    assert delta.connections == 3
    assert delta.from_consumer == 3 * len(request)


def test_relay_to_a_stopped_server_resets_the_client_and_keeps_running():
    server = ServerThread(polling.make_app).start()
    port = server.port
    server.stop()
    with CountingRelay(port) as relay:
        with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as sock:
            sock.settimeout(5)
            try:
                assert sock.recv(10) == b""
            except ConnectionResetError:
                pass
        assert relay.counts().connections == 0
        assert relay._thread.is_alive()
    assert not relay._thread.is_alive()


# -- the results schema -----------------------------------------------------------
def _row(**over):
    row = {
        "transport": "sse", "label": "SSE", "events": 10, "warmup_events": 2,
        "delivered": 10, "lost": 0, "duplicates": 0,
        "latency_ms": {"p50": 1.0, "p95": 2.0, "p99": 2.5, "max": 3.0},
        "latencies_ms": [1.0] * 10, "throughput_eps": 1000.0, "burst_events": 5,
        "bytes_per_event": {"to_consumer": 200.0, "from_consumer": 0.0},
        "connections_opened": 1, "requests_made": 1, "server_cpu_s_per_1000": 0.4,
        "notes": "",
    }  # fmt: skip
    row.update(over)
    return row


def _doc(**over):
    doc = {
        "schema": schema.SCHEMA_ID, "created": "2026-01-01T00:00:00+00:00",
        "command": "python -m benchmarks.choosing --quick", "mode": "quick",
        "machine": {"python": "3.11", "platform": "x", "cpus": 2},
        "method": {"clock": "c", "warmup": "w", "payload": {}, "payload_bytes": 2,
                   "byte_counting": "relay"},
        "transports": [_row()],
    }  # fmt: skip
    doc.update(over)
    return doc


def test_schema_accepts_a_valid_document():
    assert schema.validate(_doc()) == []


@pytest.mark.parametrize(
    "change, where",
    [
        (lambda d: d.pop("method"), "<root>"),
        (lambda d: d.update(mode="slow"), "mode"),
        (lambda d: d["transports"][0].update(transport="carrier-pigeon"), "transports/0/transport"),
        (lambda d: d["transports"][0]["latency_ms"].pop("p99"), "transports/0/latency_ms"),
        (lambda d: d["transports"][0].update(lost=-1), "transports/0/lost"),
        (lambda d: d["transports"][0]["bytes_per_event"].update(to_consumer="200"),
         "transports/0/bytes_per_event/to_consumer"),
        (lambda d: d.update(transports=[]), "transports"),
    ],
)  # fmt: skip
def test_schema_rejects(change, where):
    doc = copy.deepcopy(_doc())
    change(doc)
    problems = schema.validate(doc)
    assert problems and any(p.startswith(where) for p in problems), problems


def test_write_refuses_an_invalid_document(tmp_path):
    with pytest.raises(ValueError, match="schema"):
        schema.write(_doc(mode="slow"), tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


def test_committed_full_run_is_valid():
    path = schema.Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "choosing.json"
    doc = schema.read(path)
    assert schema.validate(doc) == []
    assert doc["mode"] == "full"
    assert {r["transport"] for r in doc["transports"]} == set(schema.TRANSPORTS)


# -- the harness itself, quick mode -------------------------------------------------
def test_quick_run_measures_every_transport(tmp_path):
    doc = harness.run("quick", cost=False, progress=False)
    assert schema.validate(doc) == []
    rows = {r["transport"]: r for r in doc["transports"]}
    assert list(rows) == list(schema.TRANSPORTS)
    for key, row in rows.items():
        assert row["lost"] == 0 and row["duplicates"] == 0, key
        assert row["delivered"] == row["events"] == len(row["latencies_ms"]), key
        assert row["bytes_per_event"]["to_consumer"] > 0, key
        assert row["throughput_eps"] and row["throughput_eps"] > 0, key
        assert row["connections_opened"] >= 1, key
    # Push transports send nothing back once connected (no pings configured);
    # pollers and webhook receivers answer every event with HTTP.
    for key in ("websocket", "ndjson", "sse"):
        assert rows[key]["bytes_per_event"]["from_consumer"] == 0, key
    for key in ("short_polling", "long_polling", "webhooks"):
        assert rows[key]["bytes_per_event"]["from_consumer"] > 0, key
    path = schema.write(doc, tmp_path / "quick.json")
    assert schema.validate(schema.read(path)) == []
    table = harness.table(doc)
    assert table.count("\n") == 1 + len(rows)


def test_cost_vs_rate_rows():
    rows = harness.cost_vs_rate([20.0], transports=["short_polling", "sse"], window_s=0.3)
    assert [(r["transport"], r["rate_eps"]) for r in rows] == [
        ("short_polling", 20.0),
        ("sse", 20.0),
    ]
    assert all(r["events"] == 6 and r["bytes_per_event"] > 0 for r in rows)
    assert rows[0]["requests"] >= 1 and rows[1]["connections"] == 0


def test_nothing_left_running():
    import threading

    time.sleep(0.1)
    names = [t.name for t in threading.enumerate()]
    assert not [n for n in names if n.startswith(("server-bench", "counting-relay"))], names


def test_command_line_quick_run_writes_valid_json(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "cli.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.choosing", "--quick", "--only", "sse", "websocket",
         "--no-cost", "--json", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| SSE |" in proc.stdout and "| WebSocket |" in proc.stdout
    assert "warm-up: the first" in proc.stdout
    doc = schema.read(out)
    assert schema.validate(doc) == []
    assert (
        doc["command"]
        == f"python -m benchmarks.choosing --quick --only sse websocket --no-cost --json {out}"
    )
    assert [r["transport"] for r in doc["transports"]] == ["websocket", "sse"]
