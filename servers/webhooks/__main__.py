"""``python -m servers.webhooks --port N``: a provider and a receiver on one port.

The provider's API (``/subscriptions``, ``/events``, ``/deliveries``,
``/dead-letters``) and the receiver's ``/webhook`` share one server; the
receiver is subscribed to every event type, and a ``tick`` event is
published every ``--tick`` seconds. Try::

    curl -s localhost:8000/deliveries | python -m json.tool
    curl -s -XPOST localhost:8000/events -d '{"type": "email.bounced", "data": {"to": "a@b.c"}}'
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..runtime import ServerThread, tick_until_interrupted
from . import outbox, signing
from .provider import ProviderHandle, provider_app
from .receiver import Receiver
from .receiver import routes as receiver_routes


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m servers.webhooks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument(
        "--tick", type=float, default=2.0, help="seconds between demo events (0: none)"
    )
    parser.add_argument("--outbox", default="webhooks-outbox.sqlite3", help="SQLite outbox file")
    parser.add_argument("--fresh", action="store_true", help="delete the outbox file first")
    args = parser.parse_args()
    if args.fresh:
        outbox.reset(args.outbox)
    secret = signing.generate_secret()
    receiver = Receiver(secret)
    make_provider = provider_app(Path(args.outbox), allow_loopback=True)

    def factory(hub):
        app = make_provider(hub)
        app.wildcard_router.add_rules(receiver_routes(receiver))
        return app

    server = ServerThread(factory, name="webhooks", port=args.port).start()
    handle = ProviderHandle(server)
    sub, _ = handle.subscribe(f"{server.url}/webhook", ["*"], secret)
    print(f"webhooks provider + receiver on {server.url} (Ctrl-C to stop)", flush=True)
    print(f"subscription {sub.id} -> {sub.url}; secret {secret}", flush=True)
    tick_until_interrupted(
        server, args.tick, lambda n: print(f"tick {n}: {receiver.summary()}", flush=True)
    )


if __name__ == "__main__":
    main()
