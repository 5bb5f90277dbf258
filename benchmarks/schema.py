"""The results file: its JSON Schema, a validator and the writer.

One document per run::

    {"schema": "event-api-lab/bench/1", "created": ..., "command": ..., "mode": "quick"|"full",
     "machine": {...}, "method": {...}, "transports": [<one row per transport>],
     "cost_vs_rate": [<optional rows>]}

The notebook and the README read it; ``tests/test_bench.py`` validates a
quick run against ``SCHEMA``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA_ID = "event-api-lab/bench/1"
TRANSPORTS = ("short_polling", "long_polling", "webhooks", "websocket", "ndjson", "sse")

_num = {"type": "number", "minimum": 0}
_num_or_null = {"type": ["number", "null"], "minimum": 0}

ROW = {
    "type": "object",
    "required": [
        "transport",
        "label",
        "events",
        "warmup_events",
        "delivered",
        "lost",
        "duplicates",
        "latency_ms",
        "latencies_ms",
        "throughput_eps",
        "bytes_per_event",
        "connections_opened",
        "server_cpu_s_per_1000",
        "notes",
    ],
    "properties": {
        "transport": {"enum": list(TRANSPORTS)},
        "label": {"type": "string"},
        "events": {"type": "integer", "minimum": 1},
        "warmup_events": {"type": "integer", "minimum": 0},
        "delivered": {"type": "integer", "minimum": 0},
        "lost": {"type": "integer", "minimum": 0},
        "duplicates": {"type": "integer", "minimum": 0},
        "latency_ms": {
            "type": "object",
            "required": ["p50", "p95", "p99", "max"],
            "properties": {k: _num_or_null for k in ("p50", "p95", "p99", "max")},
        },
        "latencies_ms": {"type": "array", "items": _num},
        "throughput_eps": _num_or_null,
        "burst_events": {"type": "integer", "minimum": 0},
        "bytes_per_event": {
            "type": "object",
            "required": ["to_consumer", "from_consumer"],
            "properties": {"to_consumer": _num, "from_consumer": _num},
        },
        "connections_opened": {"type": "integer", "minimum": 0},
        "requests_made": {"type": ["integer", "null"], "minimum": 0},
        "server_cpu_s_per_1000": _num,
        "notes": {"type": "string"},
    },
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["schema", "created", "command", "mode", "machine", "method", "transports"],
    "properties": {
        "schema": {"const": SCHEMA_ID},
        "created": {"type": "string"},
        "command": {"type": "string"},
        "mode": {"enum": ["quick", "full"]},
        "machine": {
            "type": "object",
            "required": ["python", "platform", "cpus"],
        },
        "method": {
            "type": "object",
            "required": ["clock", "warmup", "payload", "payload_bytes", "byte_counting"],
        },
        "transports": {"type": "array", "minItems": 1, "items": ROW},
        "cost_vs_rate": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["transport", "rate_eps", "events", "bytes_per_event", "requests"],
            },
        },
    },
}


def validate(doc: dict) -> list[str]:
    """Every way ``doc`` departs from ``SCHEMA`` (an empty list: valid)."""
    import jsonschema  # installed with nbformat (Jupyter); only needed here

    validator = jsonschema.Draft202012Validator(SCHEMA)
    return [
        f"{'/'.join(str(p) for p in err.absolute_path) or '<root>'}: {err.message}"
        for err in validator.iter_errors(doc)
    ]


def write(doc: dict, path: str | Path) -> Path:
    problems = validate(doc)
    if problems:
        raise ValueError("results do not match the schema: " + "; ".join(problems[:5]))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return path


def read(path: str | Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))
