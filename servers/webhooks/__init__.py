"""Webhooks: a provider that POSTs signed events to registered URLs, and a
receiver that verifies and deduplicates them.

* ``signing``: Standard Webhooks v1 signatures (sign, verify, rotation).
* ``receiver``: the Tornado endpoint a subscriber runs.
* ``provider``: subscriptions, the dispatcher, retries and dead letters.
* ``outbox``: the SQLite file that makes deliveries survive a restart.
* ``ssrf``: which URLs a provider may be asked to call.
* ``wire``: the keep-alive HTTP client the provider delivers with.

Run both standalone: ``python -m servers.webhooks --port 8000``.
"""

from . import outbox, provider, receiver, signing, ssrf
from .provider import ProviderHandle, RetryPolicy, provider_app
from .receiver import Receiver

__all__ = [
    "ProviderHandle",
    "Receiver",
    "RetryPolicy",
    "outbox",
    "provider",
    "provider_app",
    "receiver",
    "signing",
    "ssrf",
]
