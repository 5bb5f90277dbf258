"""``python -m servers.webhooks --port N``: a provider and a receiver on one port.

The provider's API (``/subscriptions``, ``/events``, ``/deliveries``,
``/dead-letters``) and the receiver's ``/webhook`` share one server; the
receiver is subscribed to every event type, and a ``tick`` event is
published every ``--tick`` seconds.

A demo, but not an open door: any local process could otherwise register
``http://127.0.0.1:ANYPORT/...`` and have this provider send signed POSTs
there. So, like Jupyter, the API needs the token printed at start
(``Authorization: Bearer <token>`` or ``?token=<token>``); URLs on loopback
are refused unless ``--allow-loopback`` is given (the built-in receiver is
the one exception, registered in-process); and no secret is printed. Try::

    curl -s -H "Authorization: Bearer $TOKEN" localhost:8000/deliveries | python -m json.tool
    curl -s -XPOST -H "Authorization: Bearer $TOKEN" localhost:8000/events \
         -d '{"type": "email.bounced", "data": {"to": "a@b.c"}}'
"""

from __future__ import annotations

import argparse
import secrets
from pathlib import Path

from ..runtime import ServerThread, tick_until_interrupted
from . import inbox, outbox, signing
from .provider import Provider, provider_app
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
    parser.add_argument("--inbox", default="webhooks-inbox.sqlite3", help="receiver's inbox file")
    parser.add_argument("--fresh", action="store_true", help="delete both files first")
    parser.add_argument(
        "--allow-loopback",
        action="store_true",
        help="let the API register URLs on 127.0.0.1/::1 (refused by default: SSRF)",
    )
    parser.add_argument("--token", help="the API token (default: a fresh random one)")
    args = parser.parse_args()
    if args.fresh:
        outbox.reset(args.outbox)
        inbox.reset(args.inbox)
    token = args.token or secrets.token_urlsafe(24)
    secret = signing.generate_secret()
    receiver = Receiver(secret, inbox_path=args.inbox)
    make_provider = provider_app(
        Path(args.outbox), allow_loopback=args.allow_loopback, api_token=token
    )

    def factory(hub):
        app = make_provider(hub)
        app.wildcard_router.add_rules(receiver_routes(receiver))
        return app

    server = ServerThread(factory, name="webhooks", port=args.port).start()
    provider: Provider = server.state
    # The one loopback URL allowed without --allow-loopback: our own receiver.
    own = f"{server.url}/webhook"
    sub, _ = server.call(
        lambda: provider.endpoints.add(own, ["*"], secret, allow_loopback=True), timeout=10
    )
    lines = [
        f"webhooks provider + receiver on {server.url} (Ctrl-C to stop)",
        f"API token: {token}",
        f"    {server.url}/deliveries?token={token}",
        f"subscription {sub.id} -> {sub.url} (its secret is not shown)",
    ]
    if args.allow_loopback:
        lines.append("--allow-loopback: the API accepts URLs on this machine's loopback")
    try:
        tick_until_interrupted(
            server,
            args.tick,
            lambda n: print(f"tick {n}: {receiver.summary()}", flush=True),
            announce="\n".join(lines),
        )
    finally:
        receiver.close()


if __name__ == "__main__":
    main()
