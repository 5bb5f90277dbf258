"""Every transport also runs on its own (``python -m servers.<name>``), for
curl or a browser: it listens on 127.0.0.1, answers, and stops on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

SERVERS = Path(__file__).resolve().parent.parent / "servers"
# Every module with a ``__main__`` entry, found rather than listed: a new
# standalone server cannot be left out of this test.
MODULES = sorted(
    [p.stem for p in SERVERS.glob("*.py") if 'if __name__ == "__main__"' in p.read_text()]
    + [p.parent.name for p in SERVERS.glob("*/__main__.py")]
)


@pytest.mark.skipif(os.name == "nt", reason="sends SIGINT, which Windows delivers differently")
@pytest.mark.parametrize("name", MODULES)
def test_runs_standalone_and_stops_on_ctrl_c(name, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", f"servers.{name}", "--port", "0", "--tick", "0.2"],
        cwd=tmp_path,  # the webhooks outbox file lands here, not in the repository
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # A shell's background job (`cmd &` in a script) inherits SIGINT
        # ignored, and Python then installs no KeyboardInterrupt handler: give
        # the server the default, as a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if "http://127.0.0.1:" in line:
                found.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert found.wait(20), "".join(lines)
        url = re.search(r"http://127\.0\.0\.1:\d+", "".join(lines))[0]
        assert requests.get(url, timeout=5).status_code < 500
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
