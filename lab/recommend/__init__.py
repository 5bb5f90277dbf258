"""Which transport? Plain decision rules, each with its reason and its evidence.

The rules are a table (``RULES``), read top to bottom: the first rule whose
conditions all hold picks the transport. Then every matching row of
``CAVEATS`` adds a warning. Each reason points at the notebook section that
*showed* it live (``Evidence``), so a recommendation is never just an
opinion::

    >>> from lab.recommend import Needs, recommend
    >>> rec = recommend(Needs(consumer="server", must_survive_offline=True))
    >>> rec.transport
    'webhooks'

``FEATURES`` is the decision notebook's feature matrix (one row per
property, one column per transport), each cell with its evidence too;
``tests/test_recommend.py`` checks every evidence link points at a heading
that exists, and that every "shown" cell's section asserts something about
its transport (``unproven_cells``).

Some answers are none of the transports, and say why: a platform push
service for an app that may be closed, plain HTTP POSTs when most traffic
goes from the consumer to the server, polling for rare events at a server
nobody can reach. What the collection does not demonstrate is cited as a
``Source`` and marked "stated, not shown here".

Modules: ``evidence`` (the links and sources), ``rules`` (``Needs``,
``RULES``, ``recommend``), ``caveats`` (``CAVEATS``), ``matrix``
(``FEATURES``), ``panel`` (the widget).
"""

from .caveats import CAVEATS, Caveat
from .evidence import ANSWERS, NOTEBOOKS, TRANSPORTS, Evidence, Source, notebook_headings
from .matrix import (
    FEATURES,
    TRANSPORT_WORDS,
    all_evidence,
    broken_evidence,
    feature_matrix_markdown,
    unproven_cells,
)
from .panel import RecommenderPanel, recommendation_html
from .rules import (
    DIRECTIONS,
    HIGH_RATE_EPS,
    RARE_EPS,
    RULES,
    Needs,
    Recommendation,
    Rule,
    recommend,
)

__all__ = [
    "ANSWERS",
    "CAVEATS",
    "DIRECTIONS",
    "FEATURES",
    "HIGH_RATE_EPS",
    "NOTEBOOKS",
    "RARE_EPS",
    "RULES",
    "TRANSPORTS",
    "TRANSPORT_WORDS",
    "Caveat",
    "Evidence",
    "Needs",
    "Recommendation",
    "RecommenderPanel",
    "Rule",
    "Source",
    "all_evidence",
    "broken_evidence",
    "feature_matrix_markdown",
    "notebook_headings",
    "recommend",
    "recommendation_html",
    "unproven_cells",
]
