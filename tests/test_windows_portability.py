"""The servers, clients, benchmarks and notebooks must run on Windows too.

A scan of the source for POSIX-only calls (``os.fork``, ``resource``,
``fcntl``, signals Windows lacks, ``/proc``, ``SO_REUSEPORT``, ``/tmp``...).
Every hit must be listed in ``ALLOWED`` with the guard that makes it safe on
Windows (a regex that must match within a few lines of the hit) and a reason,
so a new unguarded call cannot slip in, and a stale entry fails too.
docs/instructor.md ("Windows notes") lists what remains POSIX-only.

The second half checks the one Windows fallback that needs behaviour, not a
guard: deleting the webhook outbox while something still holds it open.
"""

from __future__ import annotations

import io
import re
import sqlite3
import tokenize
from pathlib import Path

import nbformat
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("servers", "lab", "benchmarks", "notebooks")
WINDOW = 8  # lines either side of a hit where its guard must appear

RULES: dict[str, str] = {
    "os.fork": r"\bos\.fork(pty)?\s*\(",
    "resource module": (
        r"^\s*(import resource\b|from resource import)|\bresource\.(get|set)rlimit\b"
    ),
    "POSIX-only module": r"^\s*(import|from)\s+(fcntl|termios|pwd|grp|pty|tty|posix)\b",
    "select.poll/epoll/kqueue": r"\bselect\.(poll|epoll|kqueue)\s*\(",
    "POSIX-only os call": (
        r"\bos\.(getuid|geteuid|getgid|getegid|setsid|setpgrp|getpgid|killpg|nice|sysconf"
        r"|mkfifo|getloadavg|uname|wait3|wait4|fchmod|fchown|chown)\b"
    ),
    "os.kill": r"\bos\.kill\s*\(",
    "POSIX-only signal": (
        r"\bsignal\.(SIGKILL|SIGHUP|SIGUSR1|SIGUSR2|SIGCHLD|SIGALRM|SIGPIPE|SIGQUIT|SIGSTOP"
        r"|SIGCONT|alarm|setitimer|pause|siginterrupt|pthread_kill|pthread_sigmask)\b"
    ),
    "SIGTERM sent to a process": r"send_signal\s*\(\s*signal\.SIGTERM",
    "loop.add_signal_handler": r"\.add_signal_handler\s*\(",
    "/proc or /dev path": r"[\"']/(proc|dev|sys)/",
    "hard-coded /tmp": r"[\"']/tmp\b",
    "SO_REUSEPORT": r"\bSO_REUSEPORT\b",
    "AF_UNIX": r"\bAF_UNIX\b",
    "preexec_fn / start_new_session": r"\b(preexec_fn|start_new_session)\s*=",
    "fork start method": r"(get_context|set_start_method)\s*\(\s*[\"'](fork|forkserver)[\"']",
    "default multiprocessing context": r"\b(multiprocessing|mp)\.(Process|Pool)\s*\(",
    "chmod": r"(\bos\.chmod|\.chmod)\s*\(",
    "psutil num_fds": r"\.num_fds\s*\(",
    "psutil rlimit": r"\.rlimit\s*\(",
    "POSIX-only clock": r"\btime\.(pthread_getcpuclockid|clock_gettime|clock_settime|CLOCK_\w+)",
    # Text I/O without encoding= uses the locale's encoding: cp1252 on most Windows machines.
    "text I/O without encoding": (
        r"\.(read|write)_text\((?!.*encoding)|\bopen\((?!.*encoding)[^)]*[\"'][rwax]\+?t?[\"']\s*\)"
    ),
}
ASCII_JSON = (
    r"json\.(dumps?|loads?)",
    "JSON written by json.dump(s) (ensure_ascii=True) is ASCII, read and written alike in any "
    "locale encoding; test_results_json_is_ascii keeps the stored results ASCII",
)

# (file, rule) -> (guard regex near every hit, or None for a known gap; reason)
ALLOWED: dict[tuple[str, str], tuple[str | None, str]] = {
    ("lab/scale/loadgen_worker.py", "resource module"): (
        r"except \(ImportError",
        "workers raise their soft fd limit where `resource` exists; on Windows the import "
        "fails and is skipped (there is no fd limit to raise)",
    ),
    ("lab/lessons/scaling.py", "resource module"): (
        r"except ImportError|resource is None",
        "fd_limit() returns None on Windows, the notebook prints 'none (Windows)'",
    ),
    ("lab/lessons/scaling.py", "psutil num_fds"): (
        r"hasattr\(proc, \"num_fds\"\)",
        "Windows has handles, not fds: psutil's num_handles() instead",
    ),
    ("lab/lessons/scaling.py", "psutil rlimit"): (
        r"except \(AttributeError",
        "psutil.Process.rlimit is Linux-only; falls back to fd_limit() (None on Windows)",
    ),
    ("benchmarks/webhooks.py", "POSIX-only os call"): (
        r"except \(AttributeError",
        "load average is recorded as None on Windows",
    ),
    ("benchmarks/webhooks.py", "POSIX-only clock"): (
        r"except \(AttributeError",
        "per-thread CPU clocks are skipped on Windows (the figure is then absent)",
    ),
    ("benchmarks/websockets.py", "POSIX-only os call"): (
        r"hasattr\(os, \"getloadavg\"\)",
        "load average is recorded as None on Windows",
    ),
    ("benchmarks/streaming.py", "POSIX-only os call"): (
        r"hasattr\(os, \"getloadavg\"\)",
        "load average is recorded as NaN on Windows",
    ),
    ("benchmarks/harness.py", "POSIX-only os call"): (
        r"hasattr\(os, \"getloadavg\"\)",
        "load average is left out of the results on Windows",
    ),
    ("benchmarks/websockets.py", "text I/O without encoding"): ASCII_JSON,
    ("benchmarks/streaming.py", "text I/O without encoding"): ASCII_JSON,
    ("benchmarks/webhooks.py", "text I/O without encoding"): ASCII_JSON,
    ("benchmarks/scaling.py", "text I/O without encoding"): ASCII_JSON,
    ("benchmarks/scaling.py", "psutil num_fds"): (
        None,
        "KNOWN GAP (benchmark only, not used by notebooks or tests): counts the server "
        "process's fds; on Windows psutil has num_handles() instead. Listed in "
        "docs/instructor.md, Windows notes",
    ),
}


def _code_lines(source: str) -> list[str]:
    """The source's lines with comments blanked (strings are kept: paths live there)."""
    lines = source.splitlines()
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return [line.split("#", 1)[0] if line.lstrip().startswith("#") else line for line in lines]
    for tok in reversed(tokens):
        if tok.type == tokenize.COMMENT:
            row, col = tok.start
            lines[row - 1] = lines[row - 1][:col]
    return lines


def _sources() -> dict[str, str]:
    """Every scanned file's code: .py files, and notebooks' code cells joined."""
    out: dict[str, str] = {}
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            out[path.relative_to(ROOT).as_posix()] = path.read_text(encoding="utf-8")
        for path in sorted((ROOT / top).rglob("*.ipynb")):
            if ".ipynb_checkpoints" in path.parts:
                continue
            nb = nbformat.read(path, as_version=4)
            cells = [c.source for c in nb.cells if c.cell_type == "code"]
            # IPython magics and shell escapes are not Python: comment them out.
            code = "\n".join(re.sub(r"^(\s*)([%!])", r"\1#\2", cell, flags=re.M) for cell in cells)
            out[path.relative_to(ROOT).as_posix()] = code
    return out


def scan(sources: dict[str, str]) -> list[tuple[str, str, int, str]]:
    """(file, rule, line number, line) for every POSIX-only call found."""
    hits = []
    for name, source in sources.items():
        lines = _code_lines(source)
        for number, line in enumerate(lines, 1):
            for rule, pattern in RULES.items():
                if re.search(pattern, line):
                    hits.append((name, rule, number, line.strip()))
    return hits


def unguarded(sources: dict[str, str]) -> list[str]:
    """Hits with no allowlist entry, or whose declared guard is not near them."""
    problems = []
    for name, rule, number, line in scan(sources):
        entry = ALLOWED.get((name, rule))
        if entry is None:
            problems.append(f"{name}:{number} [{rule}] {line}: not in ALLOWED (add a fallback)")
            continue
        guard = entry[0]
        if guard is None:
            continue
        lines = sources[name].splitlines()
        near = "\n".join(lines[max(0, number - 1 - WINDOW) : number + WINDOW])
        if not re.search(guard, near):
            problems.append(f"{name}:{number} [{rule}] {line}: its guard /{guard}/ is not nearby")
    return problems


@pytest.fixture(scope="module")
def sources() -> dict[str, str]:
    return _sources()


def test_the_scan_covers_the_notebooks_and_the_servers(sources):
    assert "servers/runtime.py" in sources and "lab/scale/loadgen.py" in sources
    assert "notebooks/00_start_here.ipynb" in sources
    assert any(name.startswith("benchmarks/") for name in sources)


def test_no_unguarded_posix_only_call(sources):
    assert unguarded(sources) == []


def test_every_allowlist_entry_still_matches(sources):
    found = {(name, rule) for name, rule, _, _ in scan(sources)}
    stale = sorted(set(ALLOWED) - found)
    assert stale == [], f"remove these ALLOWED entries, the code no longer has them: {stale}"


def test_every_allowlist_entry_gives_a_reason():
    for key, (_, reason) in ALLOWED.items():
        assert len(reason) > 20, key


@pytest.mark.parametrize(
    ("snippet", "rule"),
    [
        ("import fcntl\n", "POSIX-only module"),
        ("pid = os.fork()\n", "os.fork"),
        ("import resource\n", "resource module"),
        ("proc.send_signal(signal.SIGTERM)\n", "SIGTERM sent to a process"),
        ("proc.send_signal(signal.SIGKILL)\n", "POSIX-only signal"),
        ("os.kill(pid, 9)\n", "os.kill"),
        ("p = select.poll()\n", "select.poll/epoll/kqueue"),
        ("open('/proc/self/status')\n", "/proc or /dev path"),
        ("s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)\n", "SO_REUSEPORT"),
        ("subprocess.Popen(cmd, start_new_session=True)\n", "preexec_fn / start_new_session"),
        ("ctx = mp.get_context('fork')\n", "fork start method"),
        ("Path('/tmp/outbox.sqlite')\n", "hard-coded /tmp"),
        ("os.chmod(path, 0o600)\n", "chmod"),
        ("loop.add_signal_handler(signal.SIGTERM, stop)\n", "loop.add_signal_handler"),
        ("n = psutil.Process().num_fds()\n", "psutil num_fds"),
        ("text = Path('notes.md').read_text()\n", "text I/O without encoding"),
        ("with open(path, 'w') as fh:\n    fh.write(text)\n", "text I/O without encoding"),
    ],
)
def test_the_scan_catches_new_posix_only_calls(snippet, rule):
    problems = unguarded({"servers/new_module.py": snippet})
    assert len(problems) == 1 and f"[{rule}]" in problems[0], problems


def test_results_json_is_ascii():
    """The notebooks read benchmarks/results/*.json without encoding=: keep them ASCII."""
    files = sorted((ROOT / "benchmarks" / "results").glob("*.json"))
    assert files
    for path in files:
        assert path.read_bytes().isascii(), (
            f"{path.name}: write it with json.dumps(ensure_ascii=True)"
        )


def test_comments_do_not_count():
    assert unguarded({"lab/x.py": "x = 1  # os.fork() would not work on Windows\n"}) == []


def test_a_guard_must_be_near_the_hit():
    far = "\n" * 30
    source = (
        f"try:\n    import resource\nexcept ImportError:\n    pass\n{far}resource.getrlimit(1)\n"
    )
    problems = unguarded({"lab/lessons/scaling.py": source})
    assert len(problems) == 1 and ":35 " in problems[0], problems


# -- the webhook outbox on Windows: a file cannot be deleted while it is open ----------


def _windows_unlink(file: Path) -> None:
    """Path.unlink with Windows semantics: PermissionError while this process
    holds the file open (read from psutil's list of open files)."""
    held = {Path(f.path).resolve() for f in psutil.Process().open_files()}
    if file.resolve() in held:
        raise PermissionError(13, "The process cannot access the file because it is in use")
    file.unlink(missing_ok=True)


def test_outbox_reset_releases_what_holds_the_file(tmp_path, monkeypatch):
    from lab.provider_handle import ProviderHandle
    from servers import runtime
    from servers.webhooks import outbox, sqlitefiles
    from servers.webhooks.provider import provider_app

    monkeypatch.setattr(sqlitefiles, "_unlink", _windows_unlink)
    path = tmp_path / "webhooks-outbox.sqlite3"
    provider = runtime.start("wh-windows-reset", provider_app(path, allow_loopback=True))
    other = runtime.start("wh-windows-other", provider_app(tmp_path / "other.sqlite3"))
    try:
        ProviderHandle(provider).subscribe("http://127.0.0.1:9/hook", ["a"], None)
        with sqlite3.connect(path) as db:  # a notebook reading the file, never closed
            assert db.execute("SELECT count(*) FROM subscriptions").fetchone()[0] == 1
        with pytest.raises(PermissionError):
            _windows_unlink(path)  # the simulation really refuses an open file

        outbox.reset(path)

        assert not any(f.exists() for f in sqlitefiles.files(path))
        assert not provider.running  # stopped, so its connection was closed
        assert other.running  # another outbox's provider is left alone
        with pytest.raises(sqlite3.ProgrammingError):
            db.execute("SELECT 1")  # the forgotten connection was closed
    finally:
        runtime.stop_all()


def test_outbox_reset_is_plain_delete_where_the_os_allows_it(tmp_path):
    from servers import runtime
    from servers.webhooks import outbox
    from servers.webhooks.provider import provider_app

    path = tmp_path / "outbox.sqlite3"
    provider = runtime.start("wh-posix-reset", provider_app(path))
    try:
        outbox.reset(path)  # POSIX: the running provider is not touched
        assert not path.exists() and provider.running
    finally:
        runtime.stop_all()
