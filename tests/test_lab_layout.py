"""lab/ is laid out by what things are: sizes, old paths gone, library internals we rely on."""

from __future__ import annotations

import re
from pathlib import Path

import urllib3

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "lab"
MAX_LINES = 300

# Module paths that moved in issue 16 (lab/ by kind): nothing may point at them.
# (servers/ is not scanned: it never imports lab/, and is being reshaped alongside.)
OLD = [
    "lab.clients.wait_until", "lab.sse_client", "lab.ws_client", "lab.browser", "lab.ws_wire",
    "lab.experiments", "lab.webhooks_ui", "lab.ws_experiments", "lab.streaming_ui",
    "lab.scaling_ui", "lab.exercises.streaming", "lab.cluster", "lab.redis_local",
    "lab.loadgen", "lab.reaper", "lab.bench.relay",
]  # fmt: skip


def _lab_modules() -> list[Path]:
    return [p for p in LAB.rglob("*.py") if "bench" not in p.relative_to(LAB).parts]


def test_no_lab_module_is_over_300_lines():
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
             for p in _lab_modules()}  # fmt: skip
    offenders = {name: n for name, n in sorted(sizes.items()) if n > MAX_LINES}
    print("\n".join(f"{name}: {n} lines" for name, n in offenders.items()))
    assert offenders == {}, f"modules over {MAX_LINES} lines: {offenders}"


def test_nothing_points_at_an_old_lab_path():
    pattern = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, OLD)) + r")(?![\w])")
    files = [
        *ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("tests/**/*.py"), *ROOT.glob("benchmarks/*.py"),
        *LAB.rglob("*.py"), ROOT / "README.md",
        *ROOT.glob("docs/*.md"),
    ]  # fmt: skip
    hits = []
    for path in files:
        if path == Path(__file__):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            slashed = line.replace("/", ".").replace(".py", "")
            for text in (line, slashed):
                match = pattern.search(text)
                if match:
                    hits.append(f"{path.relative_to(ROOT)}:{number}: {match[1]}")
                    break
    assert hits == [], "\n".join(hits)


def test_each_notebook_has_its_lesson_and_exercise_module():
    names = {"00": "start_here", "01": "webhooks", "02": "websockets", "03": "http_streaming",
             "04": "scaling"}  # fmt: skip
    for number, name in names.items():
        assert (ROOT / "notebooks" / f"{number}_{name}.ipynb").exists(), number
        assert (LAB / "lessons" / f"{name}.py").exists(), name
        assert (LAB / "exercises" / f"{name}.py").exists(), name
    assert (LAB / "exercises" / "choosing.py").exists()


def test_urllib3_still_exposes_the_connection_under_a_response():
    # lab/clients/base.py _socket_of: cutting a streaming response from another
    # thread needs its socket; urllib3 2.x gives it through this public property.
    assert isinstance(getattr(urllib3.response.HTTPResponse, "connection", None), property), (
        "urllib3.response.HTTPResponse.connection is gone: lab/clients/base.py "
        "cut_connection() can no longer reach the socket of a streaming response"
    )
