"""The one home of the benchmarks: ``python -m benchmarks.<topic>``.

* ``choosing``: the six transports of notebook 05, the same events, measured
  alike (``harness.py`` runs them, ``drivers.py`` has one driver per
  transport, ``stats.py`` the percentiles, ``schema.py`` the results file);
  notebook 05 imports ``benchmarks.harness`` and runs it live.
* ``webhooks``, ``websockets``, ``streaming``, ``scaling``: one topic each,
  with the baselines they compare against.
* ``report``: the README's measured tables, from ``results/*.json``.

Importing ``benchmarks`` imports nothing else: each script pulls in only what
it measures.
"""
