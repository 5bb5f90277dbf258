"""docs/architecture.md names real files, and the README links it.

Every ``*.py`` path the page names must exist, so the page cannot drift from
the code: a module moved or renamed without updating the page fails here.
The one made-up transport of "Where to add a new transport" is exempt.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
# The worked example of a new transport: files a contributor would create.
EXAMPLE = {"servers/push.py", "lab/clients/push.py", "tests/test_push.py"}
PATH = re.compile(r"(?<![\w/.-])((?:servers|lab|benchmarks|tests|notebooks)/[\w/.-]*\.py)\b")


def named_paths() -> list[str]:
    return sorted(set(PATH.findall(DOC.read_text(encoding="utf-8"))))


def test_the_page_names_the_journey_and_the_layout():
    names = named_paths()
    assert len(names) > 40, names
    for hop in ("lab/widgets.py", "servers/runtime.py", "servers/hub.py", "lab/recorder.py"):
        assert hop in names, f"the journey of an event must name {hop}"


def test_every_module_the_page_names_exists():
    missing = [n for n in named_paths() if n not in EXAMPLE and not (ROOT / n).is_file()]
    assert not missing, (
        f"docs/architecture.md names {len(missing)} files that do not exist "
        "(update the page, or the code):\n  " + "\n  ".join(missing)
    )


def test_the_readme_links_the_page_from_how_it_is_built():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## How it is built", 1)[1].split("\n## ", 1)[0]
    assert "docs/architecture.md" in section
