def pick_transport(consumer, sends, offline, rate):
    """consumer: "server" or "browser"; sends: bool; offline: must events
    survive the consumer being offline; rate: events per second."""
    if consumer == "server" and offline:
        return "webhooks"  # durable outbox + retries
    if sends:
        return "websocket"  # both directions on one connection
    if consumer == "server":
        return "ndjson" if rate > 10 else "webhooks"  # a POST per event gets expensive
    return "sse"  # one-way to a browser: EventSource, Last-Event-ID
