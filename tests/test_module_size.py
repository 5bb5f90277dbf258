"""Issue 16: every module fits in a reader's head.

No module in ``servers/`` or ``lab/`` is over 300 lines, and each transport's
teaching core (the module a learner opens from the notebook and reads top to
bottom) is under 200: hardening lives in modules beside it. The failure
names every offender with its line count, so one run shows the whole list.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULE_LIMIT = 300
CORE_LIMIT = 200
# The teaching cores (docs/architecture.md, "The layout").
CORES = (
    "servers/polling.py",
    "servers/streaming.py",
    "servers/sse.py",
    "servers/websocket.py",
    "servers/fanout.py",
    "servers/webhooks/provider.py",
    "servers/webhooks/receiver.py",
)


def line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def modules() -> list[Path]:
    found = []
    for folder in ("servers", "lab"):
        found += [p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts]
    return sorted(found)


def test_the_scan_sees_the_servers_and_the_lab():
    names = {p.relative_to(ROOT).as_posix() for p in modules()}
    assert "servers/runtime.py" in names and "lab/recorder.py" in names
    assert set(CORES) <= names, f"a teaching core is missing: {sorted(set(CORES) - names)}"


def test_no_module_in_servers_or_lab_is_over_300_lines():
    offenders = [
        f"{p.relative_to(ROOT).as_posix()}: {n} lines"
        for p in modules()
        if (n := line_count(p)) > MODULE_LIMIT
    ]
    assert not offenders, (
        f"{len(offenders)} modules over {MODULE_LIMIT} lines (split each by what it is):\n  "
        + "\n  ".join(offenders)
    )


def test_each_teaching_core_is_under_200_lines():
    offenders = [
        f"{name}: {n} lines"
        for name in CORES
        if (ROOT / name).exists() and (n := line_count(ROOT / name)) > CORE_LIMIT
    ]
    assert not offenders, (
        f"{len(offenders)} teaching cores over {CORE_LIMIT} lines (move hardening beside it):\n  "
        + "\n  ".join(offenders)
    )
