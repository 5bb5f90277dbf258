def reconnect_plan(status, content_type, last_event_id, retry_ms):
    """None: stop for good. (delay_s, headers): reconnect after delay_s with headers."""
    if status is not None:
        if status != 200:  # 204 included: the server says stop
            return None
        if (content_type or "").split(";")[0].strip().lower() != "text/event-stream":
            return None
    headers = {"Accept": "text/event-stream"}
    if last_event_id:  # the spec sends Last-Event-ID only when it is not empty
        headers["Last-Event-ID"] = last_event_id
    return retry_ms / 1000, headers
