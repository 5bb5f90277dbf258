"""Network weather: a relay on 127.0.0.1 that makes the link between a
client and a lab server slow, jittery, flaky, NAT-like or buffering.

``relay`` (the relay and its dials, ``Weather``), ``httpframe`` (where an
HTTP response ends, for the buffering middlebox), ``presets`` (named
networks and their sources), ``lanes`` (each transport's server, relay and
client), ``race`` (the same events over all six, measured), ``panel`` (the
dials as widgets, with a live table). Notebook 06 uses them.
"""
