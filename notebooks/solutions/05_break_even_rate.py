def break_even_rate(poll_bytes, push_bytes, interval_s):
    """The event rate above which polling's overhead per event is below push's.

    Polling spends poll_bytes per request and makes 1 / (rate x interval)
    requests per event; push spends push_bytes per event. Equal when
    rate = poll_bytes / (push_bytes x interval).
    """
    if poll_bytes <= 0 or push_bytes <= 0 or interval_s <= 0:
        raise ValueError("bytes and the interval must be positive")
    return poll_bytes / (push_bytes * interval_s)
