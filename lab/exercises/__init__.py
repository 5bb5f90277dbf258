"""Exercise checkers: specific feedback, not just pass/fail.

Each notebook's exercises have a checker here (``lab.exercises.<notebook>``,
named after it: ``start_here``, ``webhooks``, ... ``choosing``)
and a reference answer in ``notebooks/solutions/<name>.py``. A checker
returns ``Feedback``, which a notebook cell displays; a checkpoint cell then
proves, under nbval, that the checker accepts the solution and rejects a
wrong answer.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SOLUTIONS = Path(__file__).resolve().parents[2] / "notebooks" / "solutions"


@dataclass
class Feedback:
    exercise: str
    passed: bool = True
    messages: list[str] = field(default_factory=list)

    def fail(self, message: str) -> Feedback:
        self.passed = False
        self.messages.append(message)
        return self

    def note(self, message: str) -> Feedback:
        self.messages.append(message)
        return self

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        head = "✅ correct" if self.passed else "❌ not yet"
        return "\n".join([f"{self.exercise}: {head}", *(f"  - {m}" for m in self.messages)])

    def _repr_html_(self) -> str:
        color = "#1a7f37" if self.passed else "#b00"
        head = "correct" if self.passed else "not yet"
        items = "".join(f"<li>{html.escape(m)}</li>" for m in self.messages)
        return (
            f"<div style='border-left:4px solid {color};padding-left:8px'>"
            f"<b>{html.escape(self.exercise)}: {head}</b><ul>{items}</ul></div>"
        )


def load_solution(name: str) -> dict[str, Any]:
    """Run ``notebooks/solutions/<name>.py`` and return its names, so a
    checkpoint cell can check the reference answer without overwriting the
    learner's own."""
    path = SOLUTIONS / f"{name}.py"
    if not path.exists():  # e.g. the package is installed, not in a checkout
        path = Path("solutions") / f"{name}.py"
    namespace: dict[str, Any] = {"__name__": f"solution_{name}"}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)
    return namespace
