"""Webhooks: a provider that POSTs signed events to registered URLs, and a
receiver that verifies and deduplicates them.

* ``signing``: Standard Webhooks v1 signatures (sign, verify, rotation).
* ``receiver``: the Tornado endpoint a subscriber runs: store, acknowledge, process.
* ``inbox``: the receiver's SQLite file: messages stored before the 2xx, the
  dedup record, the work committed with the mark "processed".
* ``bodylimit``: oversized request bodies refused while they are read.
* ``provider``: subscriptions, the dispatcher, retries and dead letters.
* ``outbox``: the SQLite file that makes deliveries survive a restart.
* ``ssrf``: which URLs a provider may be asked to call.
* ``wire``: the keep-alive HTTP client the provider delivers with.

Run both standalone: ``python -m servers.webhooks --port 8000`` (its API
needs the token it prints).
"""

from . import inbox, outbox, provider, receiver, signing, ssrf
from .provider import ProviderHandle, RetryPolicy, provider_app
from .receiver import Receiver

__all__ = [
    "ProviderHandle",
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
