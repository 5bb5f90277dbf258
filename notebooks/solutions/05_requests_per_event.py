def requests_per_event(rate_eps, interval_s):
    """Poll requests per delivered event: polls per second over events per second."""
    if rate_eps <= 0:
        raise ValueError("no events: every request is wasted")
    return (1 / interval_s) / rate_eps
