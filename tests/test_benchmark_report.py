"""The README's measured tables are rendered from the saved benchmark JSON."""

from __future__ import annotations

from benchmarks import report


def test_every_saved_result_renders():
    text = report.render()
    assert "unexpected shape" not in text
    for name, title, _ in report.SECTIONS:
        if report.load(name) is not None:
            assert title in text


def test_readme_shows_the_current_rendering():
    readme = (report.ROOT / "README.md").read_text(encoding="utf-8")
    assert report.BEGIN in readme and report.END in readme
    block = readme.split(report.BEGIN)[1].split(report.END)[0].strip()
    assert block == report.render().strip(), "run: python -m benchmarks.report --readme"
