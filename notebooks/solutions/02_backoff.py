def reconnect_delay(attempt, rng):
    # Full jitter: anywhere between 0 and an exponentially growing ceiling,
    # which starts at 1 s and is capped at 30 s.
    ceiling = min(30.0, 1.0 * 2**attempt)
    return rng.uniform(0, ceiling)
