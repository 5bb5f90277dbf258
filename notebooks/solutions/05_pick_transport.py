def pick_transport(needs):
    """needs: a lab.recommend.Needs. Returns a transport, or "push_service" /
    "http_posts" when none of the three fits."""
    if needs.direction == "from_consumer":
        return "http_posts"  # readings go up: a POST each, nothing to push
    if needs.consumer == "browser" and needs.may_be_closed:
        return "push_service"  # a closed app holds no connection: APNs, FCM, Web Push
    if needs.consumer == "server" and needs.reachable and needs.must_survive_offline:
        return "webhooks"  # durable outbox + retries
    if needs.direction == "both":
        return "websocket"  # both directions on one connection
    if needs.consumer == "server" and not needs.reachable:
        # nobody can POST to it: it dials out, and polls when events are rare
        return "short_polling" if needs.events_per_second < 0.01 else "ndjson"
    if needs.consumer == "server":
        return "ndjson" if needs.events_per_second > 10 else "webhooks"
    return "sse"  # one-way to a browser: EventSource, Last-Event-ID
