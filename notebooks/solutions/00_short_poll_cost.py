def short_poll_cost(poll_interval_s, events_per_minute):
    requests_per_minute = 60.0 / poll_interval_s  # one request per interval, news or not
    return {
        "requests_per_minute": requests_per_minute,
        "requests_per_event": requests_per_minute / events_per_minute,
        # An event lands at a random moment between two polls: it waits
        # half an interval on average.
        "mean_latency_s": poll_interval_s / 2,
    }
