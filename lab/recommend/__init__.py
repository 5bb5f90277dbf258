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
that exists.

Modules: ``evidence`` (the links), ``rules`` (``Needs``, ``RULES``,
``CAVEATS``, ``recommend``), ``matrix`` (``FEATURES``), ``panel`` (the
widget).
"""

from .evidence import NOTEBOOKS, TRANSPORTS, Evidence, notebook_headings
from .matrix import FEATURES, all_evidence, broken_evidence, feature_matrix_markdown
from .panel import RecommenderPanel, recommendation_html
from .rules import CAVEATS, HIGH_RATE_EPS, RULES, Caveat, Needs, Recommendation, Rule, recommend

__all__ = [
    "CAVEATS",
    "FEATURES",
    "HIGH_RATE_EPS",
    "NOTEBOOKS",
    "RULES",
    "TRANSPORTS",
    "Caveat",
    "Evidence",
    "Needs",
    "Recommendation",
    "RecommenderPanel",
    "Rule",
    "all_evidence",
    "broken_evidence",
    "feature_matrix_markdown",
    "notebook_headings",
    "recommend",
    "recommendation_html",
]
