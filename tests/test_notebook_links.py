"""Links between notebooks land: every ``NN_name.ipynb#Heading`` link in a
notebook's markdown, the README or docs/ names a notebook that exists and a
heading in it (JupyterLab's heading id: the text with spaces as dashes).

Sections move between a core notebook and its in-depth companion; this test
is what notices a link left behind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_notebook_structure import NOTEBOOKS, read

ROOT = Path(__file__).resolve().parents[1]
# A markdown link to a notebook, with its anchor (which may hold balanced parentheses).
LINK = re.compile(
    r"\]\((?:\.\./)?(?:notebooks/)?(\d\d_\w+\.ipynb)(?:#((?:[^()\s]|\([^()\s]*\))+))?\)"
)


def anchors(path: Path) -> set[str]:
    return {
        line.lstrip("#").strip().replace(" ", "-")
        for cell in read(path).cells
        if cell.cell_type == "markdown"
        for line in cell.source.splitlines()
        if re.match(r"#{1,6} ", line)
    }


SOURCES = [
    *[(p.name, "\n".join(c.source for c in read(p).cells if c.cell_type == "markdown"))
      for p in NOTEBOOKS],
    *[(p.relative_to(ROOT).as_posix(), p.read_text(encoding="utf-8"))
      for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]],
]  # fmt: skip


@pytest.mark.parametrize("name, text", SOURCES, ids=[name for name, _ in SOURCES])
def test_links_to_notebook_sections_land(name, text):
    by_name = {p.name: p for p in NOTEBOOKS}
    broken = []
    for target, anchor in LINK.findall(text):
        if target not in by_name:
            broken.append(f"{target} (no such notebook)")
        elif anchor and anchor not in anchors(by_name[target]):
            broken.append(f"{target}#{anchor}")
    assert broken == [], f"{name}: links that do not land: {broken}"
