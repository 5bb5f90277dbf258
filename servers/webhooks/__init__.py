"""Webhooks: a provider that POSTs signed events to registered URLs, and a
receiver that verifies and deduplicates them.

The teaching cores, each readable top to bottom:

* ``provider``: the delivery loop (take from the outbox, sign, POST,
  classify the answer, retry or dead-letter).
* ``receiver``: the endpoint a subscriber runs (verify, store, acknowledge,
  process).

What production adds, each beside them:

* ``intake``: events from the hub into the outbox, one row per endpoint.
* ``outbox``: the SQLite file that makes deliveries survive a restart.
* ``endpoints``: registered URLs (``Endpoint``), SSRF-checked, secret rotation.
* ``retry``: the schedule, jitter, ``Retry-After``, what each status means.
* ``provider_api``: the provider's HTTP API and ``provider_app``.
* ``health``: per-endpoint health (success rate, failure streak), alerts,
  disabling an endpoint that keeps failing, holding its deliveries,
  re-enabling and replaying them; ``health_api``: its HTTP routes.
* ``signing``: Standard Webhooks v1 signatures (sign, verify, rotation).
* ``ssrf``: which URLs a provider may be asked to call.
* ``wire``: the keep-alive HTTP client the provider delivers with.
* ``inbox``: the receiver's SQLite file: messages stored before the 2xx, the
  dedup record, the work committed with the mark "processed".
* ``bodylimit``: oversized request bodies refused while they are read.
* ``sqlitefiles``: ``reset`` for both files (Windows included).

The notebook drives a running provider with ``lab.provider_handle.ProviderHandle``.
Run both standalone: ``python -m servers.webhooks --port 8000`` (its API
needs the token it prints).
"""

from . import inbox, outbox, provider, receiver, signing, ssrf
from .provider import provider_app
from .receiver import Receiver
from .retry import RetryPolicy

__all__ = [
    "Receiver",
    "RetryPolicy",
    "inbox",
    "outbox",
    "provider",
    "provider_app",
    "receiver",
    "signing",
    "ssrf",
]
